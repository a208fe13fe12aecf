"""ChestX-Det adapter: the real JSONs parse whole, polygons become masks, zips are read safely."""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from shardsmith.config import Settings
from shardsmith.demo.cxr_more import CHESTX_DET, write_chestx_det
from shardsmith.media.masks import coco_rle_decode
from shardsmith.sources.labelfiles import LabelFileError
from shardsmith.sources.medical.chestx_det import ChestXDet, unsafe_member
from shardsmith.sources.medical.stats import label_stats
from shardsmith.staging.runner import run_source

REAL = Path(os.environ.get("SHARDSMITH_REAL_SAMPLES") or "/nonexistent") / "chestx-det"
needs_real = pytest.mark.skipif(
    not (REAL / "ChestX_Det_train.json").is_file(),
    reason="SHARDSMITH_REAL_SAMPLES is unset or lacks chestx-det/ChestX_Det_{train,test}.json",
)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-chestx")


@needs_real
def test_real_jsons_parse_whole() -> None:
    src = ChestXDet()
    assert src.detect(REAL)
    result = src.read_labels(REAL)
    stats = label_stats(src.name, result)
    train = json.loads((REAL / "ChestX_Det_train.json").read_text())
    test = json.loads((REAL / "ChestX_Det_test.json").read_text())
    assert (len(train), len(test)) == (3025, 553)
    assert result.rows_read == stats["images"] == 3578 and result.quarantine == []
    assert Counter(i.split for i in result.items) == Counter({"train": 3025, "test": 553})
    empty = sum(1 for it in train + test if not it["syms"])
    assert empty == 547 + 64
    assert stats["abnormal"] == {"true": 3578 - empty, "false": 0, "unknown": empty}
    instances = Counter(src.map_label(s).canonical for it in train + test for s in it["syms"])
    assert stats["targets"] == dict(sorted(instances.items()))
    assert sum(instances.values()) == 9639
    images_with = Counter(src.map_label(s).canonical for it in train + test for s in set(it["syms"]))
    for label, count in images_with.items():
        assert stats["findings"][label] == {"present": count, "absent": 3578 - count, "uncertain": 0}
    assert len(stats["findings"]) == 13
    assert all(t.source_geometry == "polygon@1024" for i in result.items for t in i.targets)


def test_demo_end_to_end(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    raw = settings.raw_dir("chestx_det")
    write_chestx_det(raw)
    assert not (raw / "train_data").exists()  # train images only inside the zip
    counts = run_source(settings, ChestXDet())
    assert (counts.records, counts.quarantined) == (4, 0), counts.reasons
    assert not (raw / "train_data").exists()  # nothing was extracted into the raw tree
    records = {r["native_id"]: r for r in pq.read_table(settings.staging_dir("chestx_det") / "records.parquet")
               .to_pylist()}
    normal = records["36200.png"]
    assert normal["abnormal"] is None and normal["complete"] is False and normal["targets"] == []
    assert len(normal["findings"]) == 13 and {f["status"] for f in normal["findings"]} == {"absent"}
    assert normal["raw_path"] == "train_data.zip/train_data/36200.png" and normal["raw_sha256"]
    two = records["36204.png"]
    assert two["abnormal"] is True and [t["label"] for t in two["targets"]] == ["cardiomegaly", "nodule"]
    # the polygon (1024 grid) rasterised on the 256 px stored image
    want = np.zeros((256, 256), np.uint8)
    pts = np.array(CHESTX_DET["train"][1]["polygons"][0], dtype=np.float64) / 4
    cv2.fillPoly(want, [np.round(pts).astype(np.int32)], 1)
    got = coco_rle_decode(two["targets"][0]["mask_rle"])
    iou = (got & want.astype(bool)).sum() / (got | want.astype(bool)).sum()
    assert iou > 0.9
    x0, y0, x1, y1 = two["targets"][0]["box_xyxy"]
    assert abs(x0 - 387 / 4) <= 1.5 and abs(y1 - 734 / 4) <= 1.5
    assert records["40001.png"]["split"] == "test" and records["40001.png"]["raw_path"] == "test_data/40001.png"


def test_unsafe_zip_members_are_quarantined_never_extracted(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_chestx_det(raw)
    with zipfile.ZipFile(raw / "train_data.zip", "a") as zf:
        for name in ("../36210.png", "/abs/evil.png", "train_data/../../escape.png", "C:/win.png"):
            zf.writestr(name, b"not an image")
    src = ChestXDet()
    cat = src.catalog(raw)
    unsafe = [q for q in cat.quarantine if q["reason"] == "unsafe_archive_member"]
    assert len(unsafe) == 4
    assert {e.item.native_id for e in cat.entries} == {"36200.png", "36204.png", "36210.png", "40001.png"}
    assert not any(p.name in {"evil.png", "escape.png", "win.png"} for p in tmp_path.rglob("*"))
    assert unsafe_member("a/b.png") is None and unsafe_member("..\\x.png")


def test_bad_items_and_files(tmp_path: Path) -> None:
    items = [
        {"file_name": "1.png", "syms": ["Nodule"], "boxes": [], "polygons": []},
        {"file_name": "2.png", "syms": ["Lung Cancer"], "boxes": [[1, 1, 5, 5]], "polygons": [[[1, 1], [5, 1], [5, 5]]]},
        {"file_name": "3.png", "syms": ["Mass"], "boxes": [[1, 1, 9, 9]], "polygons": [[[1, 1]]]},
        {"file_name": "3.png", "syms": [], "boxes": [], "polygons": []},
    ]
    (tmp_path / "ChestX_Det_train.json").write_text(json.dumps(items))
    result = ChestXDet().read_labels(tmp_path)
    assert Counter(q["reason"] for q in result.quarantine) == Counter(
        {"misaligned_lists": 1, "unknown_label": 1, "duplicate_item": 1})
    assert "Lung Cancer" in next(q["detail"] for q in result.quarantine if q["reason"] == "unknown_label")
    (item,) = result.items  # a polygon too short to fill falls back to the annotated box
    assert item.targets[0].source_geometry == "xyxy@1024"
    (tmp_path / "ChestX_Det_test.json").write_text("[{")
    with pytest.raises(LabelFileError, match="ChestX_Det_test.json: line 1"):
        ChestXDet().read_labels(tmp_path)
