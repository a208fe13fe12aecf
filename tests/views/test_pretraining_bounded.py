"""The pretraining views are built a bucket at a time (``views.pretraining_stage``): the tables they
write do not depend on the bucket or batch size, and are those of the whole-release computation
(``pretrain_table`` and ``pair_rows`` over one table of every radiograph)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardsmith.schemas.pretraining import PAIRS_SCHEMA
from shardsmith.schemas.records import RECORDS_SCHEMA
from shardsmith.views.pairs import pair_rows
from shardsmith.views.pretrain import pretrain_table, radiographs
from shardsmith.views.pretraining_stage import stage_pretraining

SOURCES = ("mimic_cxr", "ms_cxr", "chexpert", "nih_cxr14")
REPORT = [{"name": "FINDINGS", "text": "The heart is enlarged. No pneumothorax."},
          {"name": "IMPRESSION", "text": "Cardiomegaly."}]


def _synthetic(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """n records: copies across sources and patients, follow-ups (with and without days), several
    views a study, lossy and lossless files, seeded splits, volume slices, records without a
    patient or study, boxes, masks and phrases."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        source = rng.choice(SOURCES)
        patient = None if rng.random() < 0.03 else f"{source[:2]}{rng.randrange(n // 6)}"
        order = rng.randrange(1, 5)
        study = None if rng.random() < 0.3 else f"s{patient}-{order}"
        if rows and rng.random() < 0.15:  # a copy of an earlier film, in any source or patient
            group = rows[rng.randrange(len(rows))]["image_group"] or f"g{i}"
        else:
            group = None if rng.random() < 0.05 else f"g{i}"
        targets = []
        if rng.random() < 0.2:
            targets.append({"target_id": f"t{i}", "label": "cardiomegaly", "kind": "box",
                            "box_xyxy": rng.choice([[1.0, 2.0, 30.0, 40.0], [], None]),
                            "mask_rle": rng.choice([None, {"size": [4, 4], "counts": "abc"}]),
                            "text": rng.choice([None, "enlarged heart"])})
        volume = rng.random() < 0.05
        side = rng.choice([256, 512, 1024])
        rows.append({
            "record_id": f"{rng.getrandbits(64):016x}{i:06d}", "source": source, "native_id": f"n{i}",
            "patient_id": patient, "study_id": study, "split": rng.choice(["train", "train", "validate", "test"]),
            "split_source": "official", "split_official": rng.random() < 0.7,
            "modality": "CT" if volume else rng.choice(["DX", "CR"]), "slice_index": 3 if volume else None,
            "view": rng.choice(["PA", "LATERAL", "AP", None]), "height": side, "width": side - 64,
            "complete": False, "abnormal": True, "image_group": group,
            "raw_path": f"files/{i}.{rng.choice(['jpg', 'JPEG', 'png', 'dcm'])}",
            "findings": ([{"label": "cardiomegaly", "source_label": "Cardiomegaly", "status": "present",
                           "readers": ["chexpert"]}] if rng.random() < 0.5 else []),
            "targets": targets, "text": rng.choice([None, "", "Cardiomegaly."]),
            "report_sections": REPORT if rng.random() < 0.3 else None,
            "study_day": rng.randrange(0, 900) if source == "mimic_cxr" else None,
            "study_order": order if source != "mimic_cxr" else None,
        })
    return rows


def _files(rows: list[dict[str, Any]], folder: Path, parts: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-len(rows) // parts)
    paths = []
    for p in range(parts):
        path = folder / f"records-{p}.parquet"
        pq.write_table(pa.Table.from_pylist(rows[p * step:(p + 1) * step], schema=RECORDS_SCHEMA), path,
                       row_group_size=500)
        paths.append(path)
    return paths


def _outputs(files: list[Path], out: Path, **sizes: int) -> tuple[dict[str, bytes], str]:
    staged = stage_pretraining(files, out, **sizes)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.parquet" for n in staged.files)  # no scratch left
    return {n: (out / f"{n}.parquet").read_bytes() for n in staged.files}, staged.card_markdown


def _same_tables_whatever_the_bucket_size(files: list[Path], tmp_path: Path) -> dict[str, bytes]:
    default, card = _outputs(files, tmp_path / "default")
    for i, sizes in enumerate(({"bucket_rows": 40, "read_rows": 64}, {"bucket_rows": 25, "read_rows": 1000})):
        small, small_card = _outputs(files, tmp_path / f"small{i}", **sizes)
        assert small == default, sizes  # the same bytes, so the same rows in the same order
        assert small_card == card
    # and the tables of one whole-release table of the radiographs (the computation before buckets)
    narrow = radiographs(files)
    whole = pretrain_table(narrow)
    got = pq.read_table(tmp_path / "default" / "pretrain.parquet") if "pretrain" in default else whole.slice(0, 0)
    assert got.equals(whole)
    pairs = pa.Table.from_pylist(list(pair_rows(narrow)), schema=PAIRS_SCHEMA)
    got = pq.read_table(tmp_path / "default" / "pairs.parquet") if "pairs" in default else pairs.slice(0, 0)
    assert got.equals(pairs)
    return default


def test_synthetic_release_is_the_same_whatever_the_bucket_size(tmp_path: Path) -> None:
    rows = _synthetic(3000)
    default = _same_tables_whatever_the_bucket_size(_files(rows, tmp_path / "records", 3), tmp_path)
    pretrain = pq.read_table(pa.BufferReader(default["pretrain"])).to_pylist()
    pairs = pq.read_table(pa.BufferReader(default["pairs"])).to_pylist()
    assert {r["relation"] for r in pairs} == {"same_study_other_view", "follow_up"}
    assert any(r["copies"] > 1 and len(r["copy_sources"]) > 1 for r in pretrain)  # copies across sources
    # has_boxes as the records' Python objects say it (a non-empty box or a mask), over every copy
    groups: dict[str, bool] = {}
    for r in rows:
        if r["modality"] in ("CR", "DX") and r["slice_index"] is None:
            g = r["image_group"] or "r" + r["record_id"]
            groups[g] = groups.get(g, False) or any(t.get("box_xyxy") or t.get("mask_rle") for t in r["targets"])
    assert {r["image_group"]: r["has_boxes"] for r in pretrain} == groups
    assert any(groups.values()) and not all(groups.values())


def test_demo_records_are_the_same_whatever_the_bucket_size(demo_records, tmp_path: Path) -> None:
    keep = [{k: v for k, v in r.items() if k in RECORDS_SCHEMA.names} for r in demo_records]
    _same_tables_whatever_the_bucket_size(_files(keep, tmp_path / "records", 2), tmp_path)


def test_no_radiograph_writes_no_table(tmp_path: Path) -> None:
    rows = [r for r in _synthetic(50) if r["slice_index"] is not None] or [{**_synthetic(1)[0], "modality": "CT",
                                                                              "slice_index": 1}]
    staged = stage_pretraining(_files(rows, tmp_path / "records", 1), tmp_path / "out")
    assert "pretrain" not in staged.files and "pairs" not in staged.files
    assert "No radiograph in this release." in staged.card_markdown


@pytest.mark.parametrize("bucket_rows", [1, 3])
def test_tiny_buckets_on_a_handful_of_records(tmp_path: Path, bucket_rows: int) -> None:
    files = _files(_synthetic(40, seed=3), tmp_path / "records", 2)
    default, _ = _outputs(files, tmp_path / "default")
    small, _ = _outputs(files, tmp_path / "small", bucket_rows=bucket_rows, read_rows=5)
    assert small == default
