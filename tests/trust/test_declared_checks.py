"""Integrity checks are declared by name beside each table (``TableSpec.checks``) and resolved in
``validation.checks``: no table names a check that does not exist, and no check is owned by nobody."""

from __future__ import annotations

import pandas as pd
import pytest

from shardsmith.schemas.tables import TABLES
from shardsmith.validation.checks import CHECKS, CheckInput, UnknownCheckError, run_checks


def test_every_declared_check_exists_and_every_check_is_declared():
    declared = {name for spec in TABLES.values() for name in spec.checks}
    assert declared <= set(CHECKS), declared - set(CHECKS)
    assert set(CHECKS) <= declared, set(CHECKS) - declared


def test_an_undeclared_name_is_an_error_not_a_skip():
    with pytest.raises(UnknownCheckError, match="no_such_check"):
        run_checks(["no_such_check"], CheckInput())


def test_scope_splits_chunk_checks_from_whole_table_checks():
    splits = pd.DataFrame({"source": ["a", "a"], "patient_id": ["p", "p"], "split": ["train", "test"]})
    records = TABLES["records"].checks
    whole = run_checks(records, CheckInput(splits=[splits]), "table")
    assert [o.name for o in whole] == ["patients_in_one_split"] and not whole[0].passed
    assert run_checks(records, CheckInput(splits=[splits]), "chunk") == []  # chunk checks lack their frames
