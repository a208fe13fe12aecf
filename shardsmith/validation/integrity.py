"""Checks that need more than one row or more than one table, as plain code."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    detail: str = ""
    examples: list = field(default_factory=list)


def patients_in_one_split(records: pd.DataFrame) -> CheckOutcome:
    """No patient may span two splits (leakage between train and test)."""
    df = records.dropna(subset=["patient_id"])
    per = df.groupby(["source", "patient_id"])["split"].nunique()
    bad = per[per > 1]
    return CheckOutcome("patients_in_one_split", bad.empty,
                        f"{len(bad)} patient(s) in more than one split",
                        [f"{s}/{p}" for s, p in bad.index[:5]])


def normal_has_no_abnormality(records: pd.DataFrame, targets: pd.DataFrame,
                              findings: pd.DataFrame) -> CheckOutcome:
    """``abnormal = false`` never sits beside an abnormality target or a present finding."""
    normal_ids = set(records.loc[records["abnormal"].eq(False), "record_id"])
    with_targets = set(targets.loc[targets["kind"].eq("abnormality"), "record_id"])
    with_present = set(findings.loc[findings["status"].eq("present"), "record_id"])
    bad = sorted(normal_ids & (with_targets | with_present))
    return CheckOutcome("normal_has_no_abnormality", not bad,
                        f"{len(bad)} normal record(s) carry an abnormality", bad[:5])


def reconcile(inputs: int, published_items: int, quarantined: int) -> CheckOutcome:
    ok = inputs == published_items + quarantined
    return CheckOutcome("inputs_reconcile", ok,
                        f"inputs {inputs} = published {published_items} + quarantined {quarantined}"
                        + ("" if ok else " does NOT hold"))


def record_integrity(frames: dict[str, pd.DataFrame]) -> list[CheckOutcome]:
    r, t, f = frames["records"], frames["targets"], frames["findings"]
    return [patients_in_one_split(r), normal_has_no_abnormality(r, t, f)]
