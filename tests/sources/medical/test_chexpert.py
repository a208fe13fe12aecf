"""CheXpert adapter: the real train.csv's four label states per column, counted independently."""

from __future__ import annotations

import csv
import gzip
import os
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shardsmith.config import Settings
from shardsmith.demo.cxr_more import CHEXPERT_HEADER, write_chexpert
from shardsmith.sources.labelfiles import LabelFileError
from shardsmith.sources.medical.base import LabelResult
from shardsmith.sources.medical.chexpert import CheXpert
from shardsmith.sources.medical.stats import label_stats
from shardsmith.staging.runner import run_source

REAL_CSV = Path(os.environ.get("SHARDSMITH_REAL_SAMPLES") or "/nonexistent") / "cxr-labels" / "chexpert_train.csv.gz"
needs_real = pytest.mark.skipif(
    not REAL_CSV.is_file(), reason="SHARDSMITH_REAL_SAMPLES is unset or lacks cxr-labels/chexpert_train.csv.gz"
)
LABEL_COLUMNS = CHEXPERT_HEADER[6:]  # the 13 observations after "No Finding"
STATE = {"1.0": "present", "0.0": "absent", "-1.0": "uncertain", "": "unknown"}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-chexpert")


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabelResult, dict]:
    """Parse the 223k-row file once per module: (adapter result, facts counted with the csv module)."""
    if not REAL_CSV.is_file():
        pytest.skip("SHARDSMITH_REAL_SAMPLES is unset or lacks cxr-labels/chexpert_train.csv.gz")
    root = tmp_path_factory.mktemp("chexpert")
    (root / "CheXpert-v1.0-small").mkdir()
    (root / "CheXpert-v1.0-small" / "train.csv.gz").symlink_to(REAL_CSV)
    result = CheXpert().read_labels(root)
    states: dict[str, Counter] = defaultdict(Counter)
    facts = {"rows": 0, "normal": 0, "patients": set(), "states": states}
    with gzip.open(REAL_CSV, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        assert header == CHEXPERT_HEADER
        cols = [(header.index(c), c) for c in LABEL_COLUMNS]
        nf, path = header.index("No Finding"), header.index("Path")
        for cells in reader:
            facts["rows"] += 1
            facts["normal"] += cells[nf] == "1.0"
            facts["patients"].add(cells[path].split("/")[2])
            for i, col in cols:
                states[col][STATE[cells[i]]] += 1
    return result, facts


@needs_real
def test_real_counts_per_label_match_the_file(real) -> None:
    result, facts = real
    src = CheXpert()
    assert facts["rows"] == len(result.items) == result.rows_read == 223414
    assert result.quarantine == []
    expected = facts["states"]
    got: dict[str, Counter] = defaultdict(Counter)
    for item in result.items:
        for f in item.findings:
            got[f.source_label][f.status] += 1
    for col in LABEL_COLUMNS:
        got[col]["unknown"] = len(result.items) - sum(got[col].values())  # unknown = no Finding entry
        assert got[col] == expected[col], col
    stats = label_stats("chexpert", result)
    for col in LABEL_COLUMNS:  # the canonical view agrees (no two CheXpert columns share a label)
        canonical = src.map_label(col).canonical
        assert stats["findings"][canonical] == {s: expected[col][s] for s in ("present", "absent", "uncertain")}
    # spot values from the published file
    assert expected["Pleural Effusion"] == Counter(present=86187, absent=35396, uncertain=11628, unknown=90203)
    assert expected["Support Devices"]["present"] == 116001


@needs_real
def test_real_normals_views_and_ids(real) -> None:
    result, facts = real
    normal = facts["normal"]
    assert normal == 22381
    stats = label_stats("chexpert", result)
    assert stats["abnormal"]["false"] == normal
    assert all(i.complete == (i.abnormal is False) for i in result.items)
    assert Counter(i.view for i in result.items) == Counter({"AP": 161590, "PA": 29420, "LAT": 32387, "LL": 16, "RL": 1})
    first = result.items[0]
    assert first.native_id == "train/patient00001/study1/view1_frontal"
    assert first.image_relpath == "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"
    assert (first.patient_raw, first.study_raw, first.split) == ("patient00001", "patient00001/study1", "train")
    assert {i.patient_raw for i in result.items} == facts["patients"]


def test_demo_four_states_and_end_to_end(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    raw = settings.raw_dir("chexpert")
    write_chexpert(raw)
    src = CheXpert()
    assert src.detect(raw)
    counts = run_source(settings, src)
    assert (counts.records, counts.quarantined) == (5, 0), counts.reasons
    recs = {r["native_id"]: r for r in pq.read_table(settings.staging_dir("chexpert") / "records.parquet").to_pylist()}
    nf = recs["train/patient00001/study1/view1_frontal"]
    assert (nf["abnormal"], nf["complete"], nf["view"], nf["sex"]) == (False, True, "AP", "F")
    assert {f["source_label"]: f["status"] for f in nf["findings"]} == {"Pneumothorax": "absent",
                                                                        "Support Devices": "present"}
    mixed = recs["train/patient00002/study2/view1_frontal"]
    states = {f["source_label"]: f["status"] for f in mixed["findings"]}
    assert states == {"Cardiomegaly": "uncertain", "Lung Opacity": "present", "Edema": "uncertain",
                      "Pleural Effusion": "absent"}  # blank columns have no entry at all
    assert mixed["abnormal"] is True and mixed["view"] == "PA"
    lateral = recs["train/patient00002/study2/view2_lateral"]
    assert lateral["view"] == "LAT" and lateral["study_id"] == mixed["study_id"]
    assert lateral["patient_id"] != "patient00002"
    uncertain_only = recs["train/patient00003/study1/view1_frontal"]
    assert uncertain_only["abnormal"] is None and uncertain_only["complete"] is False
    valid = recs["valid/patient64541/study1/view1_frontal"]
    assert valid["split"] == "val" and len(valid["findings"]) == 13
    assert {r["split"] for r in recs.values()} == {"train", "val"}


def _csv(path: Path, rows: list[list[str]], header: list[str] = CHEXPERT_HEADER) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")


def _row(path: str, **values: str) -> list[str]:
    cells = {c: "" for c in CHEXPERT_HEADER}
    cells.update(Path=path, Sex="Male", Age="50", **{"Frontal/Lateral": "Frontal", "AP/PA": "PA"})
    for k, v in values.items():
        cells[k.replace("_", " ")] = v
    return [cells[c] for c in CHEXPERT_HEADER]


def test_bad_rows_quarantined_and_unknown_column_fails(tmp_path: Path) -> None:
    _csv(tmp_path / "train.csv", [
        _row("CheXpert-v1.0/train/patient1/study1/view1_frontal.jpg", No_Finding="1.0", Edema="1.0"),
        _row("CheXpert-v1.0/train/patient2/study1/view1_frontal.jpg", Edema="2.0"),
        _row("CheXpert-v1.0/train/../../etc/passwd", Edema="1.0"),
        _row("CheXpert-v1.0/train/patient3/study1/view1_frontal.jpg", Edema="-1.0"),
    ])
    result = CheXpert().read_labels(tmp_path)  # the raw root may be the dataset folder itself
    assert Counter(q["reason"] for q in result.quarantine) == Counter(
        {"contradictory_labels": 1, "bad_value": 1, "bad_path": 1})
    (item,) = result.items
    assert item.image_relpath == "train/patient3/study1/view1_frontal.jpg"
    _csv(tmp_path / "valid.csv", [_row("x")], header=CHEXPERT_HEADER + ["Hernia"])
    with pytest.raises(LabelFileError, match=r"valid.csv: line 1: column 'Hernia'"):
        CheXpert().read_labels(tmp_path)
