"""RSNA Pneumonia adapter: real label file facts, class-info semantics, patientId never in a record."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shardsmith.config import Settings
from shardsmith.demo.cxr_more import RSNA_PATIENTS, write_rsna
from shardsmith.pseudonym import stable_id
from shardsmith.sources.labelfiles import LabelFileError
from shardsmith.sources.medical.rsna_pneumonia import RsnaPneumonia
from shardsmith.sources.medical.stats import label_stats
from shardsmith.staging.runner import run_source

REAL = os.environ.get("SHARDSMITH_REAL_SAMPLES")
REAL_ZIP = Path(REAL or "/nonexistent") / "cxr-labels" / "kaggle_stage_2_train_labels.csv.zip"
needs_real = pytest.mark.skipif(
    not REAL_ZIP.is_file(),
    reason="SHARDSMITH_REAL_SAMPLES is unset or lacks cxr-labels/kaggle_stage_2_train_labels.csv.zip",
)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-rsna")


@needs_real
def test_real_labels_give_published_facts(tmp_path: Path) -> None:
    (tmp_path / "stage_2_train_labels.csv.zip").symlink_to(REAL_ZIP)
    src = RsnaPneumonia()
    assert src.detect(tmp_path)
    result = src.read_labels(tmp_path)
    stats = label_stats(src.name, result)

    # independent count straight from the file
    with zipfile.ZipFile(REAL_ZIP) as zf, zf.open("stage_2_train_labels.csv") as fh:
        rows = list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")))
    boxes_per_patient = Counter(r["patientId"] for r in rows if r["Target"] == "1")
    assert len(rows) == result.rows_read == 30227
    assert stats["images"] == len({r["patientId"] for r in rows}) == 26684
    assert stats["findings"]["lung_opacity"]["present"] == len(boxes_per_patient) == 6012
    assert stats["findings"]["lung_opacity"]["absent"] == 26684 - 6012
    assert stats["targets"] == {"lung_opacity": 9555}
    per_patient = Counter(len(i.targets) for i in result.items if i.targets)
    assert per_patient == Counter(boxes_per_patient.values()) == Counter({1: 2614, 2: 3266, 3: 119, 4: 13})
    # without the class-info file a negative is only "no lung opacity": abnormal unknown
    assert stats["abnormal"] == {"true": 6012, "false": 0, "unknown": 20672}
    assert stats["quarantined_rows"] == 0


def test_class_info_semantics_and_repeated_rows(tmp_path: Path) -> None:
    write_rsna(tmp_path)
    result = RsnaPneumonia().read_labels(tmp_path)
    assert result.quarantine == []
    by_id = {i.native_id: i for i in result.items}
    (pos2, boxes2, _, _), (normal, *_), (not_normal, *_), (pos1, *_) = RSNA_PATIENTS
    assert len(by_id[pos2].targets) == len(boxes2) == 2  # class rows repeat per box, items do not
    assert (by_id[pos2].abnormal, by_id[pos2].complete) == (True, False)
    assert by_id[normal].abnormal is False and by_id[normal].complete is True
    assert [(f.label, f.status) for f in by_id[normal].findings] == [("lung_opacity", "absent")]
    assert by_id[not_normal].abnormal is True and by_id[not_normal].complete is False
    assert [(f.label, f.status) for f in by_id[not_normal].findings] == [("lung_opacity", "absent")]
    assert by_id[pos1].targets[0].geometry == {"type": "box_xywh", "coords": [600.0, 300.0, 180.0, 260.0],
                                               "space": [1024, 1024]}
    labels_rows = sum(max(1, len(p[1])) for p in RSNA_PATIENTS)
    assert result.rows_read == 2 * labels_rows  # labels + class info


def test_end_to_end_never_leaks_patient_id(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    write_rsna(settings.raw_dir("rsna_pneumonia"))
    counts = run_source(settings, RsnaPneumonia())
    assert (counts.records, counts.quarantined) == (4, 0) and counts.reconciles
    records = pq.read_table(settings.staging_dir("rsna_pneumonia") / "records.parquet").to_pylist()
    raw_ids = [p[0] for p in RSNA_PATIENTS]
    for rec in records:
        rec.pop("image")
        text = json.dumps(rec, default=str)
        assert not any(pid in text for pid in raw_ids), "a raw patientId reached a record field"
        # nor an unkeyed hash of it (which would let anyone confirm a guessed patientId)
        assert all(rec["record_id"] != stable_id("rsna_pneumonia", pid) for pid in raw_ids)
        assert rec["modality"] == "CR" and rec["height"] == 256
    positive = next(r for r in records if len(r["targets"]) == 2)
    # x, y, w, h in 1024 space -> corners on the 256 px stored image
    assert sorted(tuple(t["box_xyxy"]) for t in positive["targets"]) == [
        (66.0, 38.0, 119.25, 132.75), (140.5, 38.0, 204.5, 151.25)]
    assert {r["view"] for r in records} == {"AP", "PA"}


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_contradictions_and_unknown_class_are_quarantined(tmp_path: Path) -> None:
    _write(tmp_path / "stage_2_train_labels.csv",
           "patientId,x,y,width,height,Target\n"
           "p-normal-but-box,10,10,100,100,1\n"
           "p-odd-class,,,,,0\n"
           "p-mixed,,,,,0\n"
           "p-mixed,10,10,50,50,1\n"
           "p-bad-target,,,,,2\n"
           "p-ok,,,,,0\n")
    _write(tmp_path / "stage_2_detailed_class_info.csv",
           "patientId,class\n"
           "p-normal-but-box,Normal\n"
           "p-odd-class,Possibly Normal\n"
           "p-ok,No Lung Opacity / Not Normal\n"
           "p-orphan,Normal\n")
    src = RsnaPneumonia()
    result = src.read_labels(tmp_path)
    assert [i.native_id for i in result.items] == ["p-ok"]
    reasons = Counter(q["reason"] for q in result.quarantine)
    assert reasons == Counter({"contradictory_labels": 2, "unknown_label": 1, "bad_target": 1,
                               "class_without_labels": 1})
    unknown = next(q for q in result.quarantine if q["reason"] == "unknown_label")
    assert "Possibly Normal" in unknown["detail"]
    assert all(not (q["native_id"] or "").startswith("p-") for q in result.quarantine)  # pseudonymised


def test_missing_column_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "stage_2_train_labels.csv", "patientId,x,y,width,height\nabc,,,,\n")
    with pytest.raises(LabelFileError, match=r"stage_2_train_labels.csv: line 1: .*Target"):
        RsnaPneumonia().read_labels(tmp_path)
