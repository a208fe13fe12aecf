"""MS-CXR adapter: phrase + box per target, phrases joined in the record text, both file versions.

MS-CXR is credentialed PhysioNet data; no real copy is available to tests, so these use the demo
sample, which follows the published header and path layout.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shardsmith.config import Settings
from shardsmith.demo.cxr_more import MS_CXR_IMAGES, write_ms_cxr
from shardsmith.sources.labelfiles import LabelFileError
from shardsmith.sources.medical.ms_cxr import MsCxr
from shardsmith.staging.runner import run_source

V1_HEADER = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-mscxr")


def test_labels_tie_each_phrase_to_its_box(tmp_path: Path) -> None:
    write_ms_cxr(tmp_path)
    src = MsCxr()
    assert src.detect(tmp_path)
    result = src.read_labels(tmp_path)
    assert result.quarantine == [] and result.rows_read == 4
    by_id = {i.native_id: i for i in result.items}
    (first_id, _, _, _, first_rows), (second_id, *_) = MS_CXR_IMAGES
    first = by_id[first_id]
    assert first.text == "small left pleural effusion\nthe heart is enlarged"
    assert [(t.label, t.text) for t in first.targets] == [
        ("pleural_effusion", "small left pleural effusion"), ("cardiomegaly", "the heart is enlarged")]
    assert first.targets[0].geometry == {"type": "box_xywh", "coords": [250.0, 200.0, 90.0, 70.0],
                                         "space": [384.0, 320.0]}
    assert {(f.label, f.status) for f in first.findings} == {("pleural_effusion", "present"),
                                                             ("cardiomegaly", "present")}
    assert (first.abnormal, first.complete, first.split) == (True, False, "train")
    assert (first.patient_raw, first.study_raw) == ("p10000032", "s50414267")
    second = by_id[second_id]
    assert second.text == "bilateral patchy opacities concerning for pneumonia"  # one phrase, two boxes
    assert len(second.targets) == 2 and second.split == "test"
    assert len(second.findings) == 1


def test_end_to_end_boxes_in_stored_pixels(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    write_ms_cxr(settings.raw_dir("ms_cxr"))
    counts = run_source(settings, MsCxr())
    assert (counts.records, counts.quarantined) == (2, 0), counts.reasons
    recs = {r["native_id"]: r for r in pq.read_table(settings.staging_dir("ms_cxr") / "records.parquet").to_pylist()}
    rec = recs[MS_CXR_IMAGES[0][0]]
    assert (rec["width"], rec["height"]) == (384, 320)
    assert rec["targets"][0]["box_xyxy"] == [250.0, 200.0, 340.0, 270.0]
    assert rec["text"].split("\n") == ["small left pleural effusion", "the heart is enlarged"]
    assert rec["patient_id"] != "p10000032" and rec["split"] == "train"


def test_v1_0_without_split_and_bad_rows(tmp_path: Path) -> None:
    rows = [
        "aaa,Pneumothorax,left apical pneumothorax,files/p12/p12000001/s51000001/aaa.jpg,10,10,40,30,1024,1024",
        "bbb,Lung Nodule,a nodule,files/p12/p12000002/s51000002/bbb.jpg,10,10,40,30,1024,1024",
        "ccc,Edema,edema,files/p12/p12000003/s51000003/ccc.jpg,10,10,40,30,1024,1024",
        "ccc,Edema,edema,files/p12/p12000003/s51000003/ccc.jpg,10,10,40,30,2048,2048",
        "ddd,Edema,edema,files/p12/p12000004/s51000004/other.jpg,10,10,40,30,1024,1024",
        "eee,Edema,edema,files/p12/p12000005/s51000005/eee.jpg,ten,10,40,30,1024,1024",
    ]
    (tmp_path / "MS_CXR_Local_Alignment_v1.0.0.csv").write_text("\n".join([V1_HEADER, *rows]) + "\n")
    result = MsCxr().read_labels(tmp_path)
    (item,) = result.items
    assert item.native_id == "aaa" and item.split is None  # no split column: deterministic patient split
    assert Counter(q["reason"] for q in result.quarantine) == Counter(
        {"unknown_label": 1, "contradictory_labels": 1, "bad_path": 1, "box_not_numeric": 1})
    assert "Lung Nodule" in next(q["detail"] for q in result.quarantine if q["reason"] == "unknown_label")
    (tmp_path / "MS_CXR_Local_Alignment_v1.0.0.csv").write_text("dicom_id,category_name\nx,Edema\n")
    with pytest.raises(LabelFileError, match="MS_CXR_Local_Alignment_v1.0.0.csv: line 1"):
        MsCxr().read_labels(tmp_path)


def test_write_demo_is_deterministic(tmp_path: Path) -> None:
    """All five samples: same bytes on every run (demo release digests must reproduce)."""
    import hashlib

    from shardsmith.demo.cxr_more import SOURCES, write_demo

    digests = []
    for run in ("a", "b"):
        write_demo(tmp_path / run)
        digests.append({str(p.relative_to(tmp_path / run)): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted((tmp_path / run).rglob("*")) if p.is_file()})
    assert digests[0] == digests[1]
    assert {k.split("/")[0] for k in digests[0]} == set(SOURCES)
