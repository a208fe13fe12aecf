"""Suites declare their columns: a renamed column, a missing frame, an empty table or an empty report
is a failure (never a silent skip), and Data Docs are rendered for a failing run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from shardsmith.validation.gx_runner import run_suites, run_tables, validate_with_docs
from shardsmith.validation.suites import FrameSuite, record_suites, suites_for

SUITE = {
    "items": FrameSuite([("ExpectColumnValuesToNotBeNull", {"column": "item_id"}),
                         ("ExpectColumnValuesToBeBetween", {"column": "size", "min_value": 0})]),
    "parts": FrameSuite([("ExpectColumnValuesToNotBeNull", {"column": "item_id"})], allow_empty=True),
}
GOOD = {"items": pd.DataFrame({"item_id": ["a", "b"], "size": [1, 2]}),
        "parts": pd.DataFrame({"item_id": ["a"]})}


def _failed(report, suite: str) -> list[dict]:
    return next(s.failed for s in report.suites if s.suite == suite)


def test_good_frames_pass():
    report = run_suites("t", GOOD, SUITE)
    assert report.success, report.to_json()
    assert [s.suite for s in report.suites] == ["t.items", "t.parts"]


def test_renamed_column_fails_its_declared_columns():
    frames = {**GOOD, "items": GOOD["items"].rename(columns={"size": "bytes"})}
    report = run_suites("t", frames, SUITE)
    assert not report.success
    failed = _failed(report, "t.items")
    declared = [f for f in failed if f["expectation"] == "expect_table_columns_to_match_set"]
    assert declared and declared[0]["details"]["mismatched"]["missing"] == ["size"], failed
    # the expectation on the renamed column fails too, instead of being dropped
    assert any(f["expectation"] == "expect_column_values_to_be_between" for f in failed), failed


def test_missing_frame_is_a_failed_suite_not_a_skip():
    report = run_suites("t", {"items": GOOD["items"]}, SUITE)
    assert not report.success
    failed = _failed(report, "t.parts")
    assert any(f["expectation"] == "expect_table_columns_to_match_set" for f in failed), failed


def test_empty_table_fails_unless_its_suite_allows_it():
    empty = {"items": GOOD["items"].iloc[:0], "parts": GOOD["parts"].iloc[:0]}
    report = run_suites("t", empty, SUITE)
    assert not report.success
    assert [f["expectation"] for f in _failed(report, "t.items")] == ["expect_table_row_count_to_be_between"]
    assert next(s for s in report.suites if s.suite == "t.parts").success  # allow_empty=True
    relaxed = {"items": FrameSuite(SUITE["items"].expectations, allow_empty=True), "parts": SUITE["parts"]}
    assert run_suites("t", empty, relaxed).success


def test_report_without_suites_is_not_success():
    assert not run_tables({"t": (GOOD, {})})["t"].success


def test_release_suites_declare_columns_and_emptiness():
    records = record_suites()
    assert not records["records"].allow_empty and records["targets"].allow_empty
    assert {"record_id", "split", "raw_sha256"} <= set(records["records"].columns)
    assert record_suites(allow_empty=True)["records"].allow_empty
    for table in ("volumes", "games", "utterances", "votes"):
        assert not suites_for(table)[table].allow_empty, table


def test_data_docs_rendered_for_a_failing_run(tmp_path: Path):
    frames = {**GOOD, "items": GOOD["items"].rename(columns={"size": "bytes"})}
    report, index = validate_with_docs("partition_7", frames, SUITE, tmp_path / "docs")
    assert not report.success
    assert index == report.docs_index == tmp_path / "docs" / "index.html" and index.is_file()
    pages = [p.read_text() for p in (tmp_path / "docs").rglob("*.html")]
    assert any("partition_7.items" in p for p in pages)


def test_release_refused_when_a_staged_column_is_renamed(tmp_path: Path, monkeypatch):
    from shardsmith.config import Settings
    from shardsmith.demo.cxr_core import write_vindr
    from shardsmith.pipeline.releases import ValidationFailedError, build_release
    from shardsmith.sources.registry import get_source
    from shardsmith.staging.runner import run_source

    monkeypatch.setenv("SHARDSMITH_WORKERS", "1")
    settings = Settings(home=tmp_path)
    write_vindr(settings.raw_dir("vindr_cxr"))
    assert run_source(settings, get_source("vindr_cxr")).records > 0
    path = next(settings.staging_dir("vindr_cxr").rglob("records*.parquet"))  # whatever the staging layout
    table = pq.read_table(path)
    pq.write_table(table.rename_columns(["Modality" if c == "modality" else c for c in table.column_names]), path)
    with pytest.raises(ValidationFailedError) as err:
        build_release(settings, "medical", ["vindr_cxr"])
    assert "modality" in str(err.value) and "expect_table_columns_to_match_set" in str(err.value)
    assert not (settings.releases / "medical").exists() or not any((settings.releases / "medical").iterdir())


def test_partition_check_fails_a_partition_that_lost_everything(tmp_path: Path):
    import pyarrow as pa

    from shardsmith.schemas.records import RECORDS_SCHEMA
    from shardsmith.validation.partition import check_records_partition

    path = tmp_path / "records-7.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=RECORDS_SCHEMA), path)
    assert check_records_partition("vindr_cxr", path, inputs=0, docs_out=tmp_path / "docs0").success
    report = check_records_partition("vindr_cxr", path, inputs=3, docs_out=tmp_path / "docs3")
    assert not report.success
    assert report.docs_index is not None and report.docs_index.is_file()
    assert report.docs_index.parent == tmp_path / "docs3"
