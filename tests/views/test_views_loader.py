"""The grounding loader over a release laid out as publish writes it (data/<table>/<split>/*.parquet)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from shardsmith.loaders import Release
from shardsmith.loaders.grounding import GroundingDataset
from shardsmith.media import masks as M
from shardsmith.schemas.records import RECORDS_SCHEMA
from shardsmith.schemas.views import GROUNDING_SCHEMA
from shardsmith.views import grounding_rows


def _release(tmp_path: Path, records: list[dict], grounding: list[dict]) -> Release:
    counts: dict[str, dict[str, int]] = {"records": {}, "grounding": {}}
    for table, rows, schema in (("records", records, RECORDS_SCHEMA), ("grounding", grounding, GROUNDING_SCHEMA)):
        for split in sorted({r["split"] for r in rows}):
            mine = [r for r in rows if r["split"] == split]
            out = tmp_path / "data" / table / split
            out.mkdir(parents=True)
            # two files, small row groups: the loader must find rows past the first group and file
            half = len(mine) // 2
            for part, chunk in enumerate((mine[:half], mine[half:])):
                if chunk:
                    pq.write_table(pa.Table.from_pylist(chunk, schema=schema), out / f"part-{part:05d}.parquet",
                                   row_group_size=2)
            counts[table][split] = len(mine)
    files = [{"path": p.relative_to(tmp_path).as_posix()} for p in sorted((tmp_path / "data").rglob("*.parquet"))]
    return Release(tmp_path, {"version": "test", "row_counts": counts, "files": files})


def test_items_pair_the_record_image_with_the_union_mask(tmp_path: Path, demo_records) -> None:
    records = [r for r in demo_records if r["source"] != "lidc_idri"]
    grounding = list(grounding_rows(records))
    rel = _release(tmp_path, records, grounding)
    ds = rel.torch("grounding")
    assert isinstance(ds, GroundingDataset) and len(ds) == len(grounding)
    images = {r["record_id"]: r["image"]["bytes"] for r in records}
    for i in range(len(ds)):
        item = ds[i]
        row = next(g for g in grounding if g["grounding_id"] == item["grounding_id"])
        expected = cv2.imdecode(np.frombuffer(images[row["record_id"]], np.uint8), cv2.IMREAD_UNCHANGED)
        assert item["image"].shape[-2:] == (row["height"], row["width"]) == expected.shape[:2]
        got = item["image"][0] if expected.ndim == 2 else item["image"].permute(1, 2, 0).flip(-1)
        assert torch.equal(got.to(torch.float64), torch.from_numpy(expected.astype(np.float64)))
        assert item["mask"].dtype == torch.bool
        assert torch.equal(item["mask"], torch.from_numpy(M.coco_rle_decode(row["mask_rle"])))
        assert int(item["mask"].sum()) == row["area_px"]
        assert (item["label"], item["size_bin"]) == (row["label"], row["size_bin"])
        assert item["boxes"].shape == (len(row["boxes"]), 4)


def test_filters_by_split_label_and_derived(tmp_path: Path, demo_records) -> None:
    records = [r for r in demo_records if r["source"] != "lidc_idri"]
    grounding = list(grounding_rows(records))
    rel = _release(tmp_path, records, grounding)
    split = grounding[0]["split"]
    assert len(GroundingDataset(rel, split=split)) == sum(g["split"] == split for g in grounding)
    only = GroundingDataset(rel, labels=["pneumothorax"])
    assert len(only) == sum(g["label"] == "pneumothorax" for g in grounding) > 0
    assert all(not only[i]["derived"] and only[i]["label"] == "pneumothorax" for i in range(len(only)))
    direct = GroundingDataset(rel, include_derived=False)
    assert len(direct) == sum(not g["derived"] for g in grounding) < len(grounding)
