"""Flatten nested release tables into the flat frames GX expectations can test.

GX expectations work on columns of scalars, so findings and targets are exploded into frames
of their own with the derived columns the expectations need (box inside image, area).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

RECORD_SCALARS = [
    "record_id", "source", "native_id", "patient_id", "split", "modality", "body_part", "view",
    "height", "width", "slice_index", "num_slices", "abnormal", "complete", "raw_sha256",
]


def read_tables(files: list, columns: list[str] | None = None) -> pa.Table:
    tables = [pq.read_table(f, columns=columns) for f in files]
    return pa.concat_tables(tables) if tables else pa.table({})


def record_frames(table: pa.Table) -> dict[str, pd.DataFrame]:
    """records -> {"records", "findings", "targets"} frames (no pixels are loaded)."""
    cols = [c for c in RECORD_SCALARS if c in table.column_names]
    records = table.select(cols).to_pandas()
    findings_rows, target_rows = [], []
    for rid, h, w, fs, ts in zip(
        table["record_id"].to_pylist(), table["height"].to_pylist(), table["width"].to_pylist(),
        table["findings"].to_pylist(), table["targets"].to_pylist(), strict=True,
    ):
        for f in fs or ():
            findings_rows.append({"record_id": rid, "label": f["label"], "status": f["status"]})
        for t in ts or ():
            box = t["box_xyxy"]
            inside = None
            if box:
                inside = bool(box[0] >= 0 and box[1] >= 0 and box[2] <= w and box[3] <= h
                              and box[2] > box[0] and box[3] > box[1])
            rle = t.get("mask_rle")
            target_rows.append({
                "record_id": rid, "target_id": t["target_id"], "label": t["label"], "kind": t["kind"],
                "area_px": t["area_px"], "box_inside_image": inside,
                "mask_size_matches": None if not rle else list(rle["size"]) == [h, w],
            })
    findings = pd.DataFrame(findings_rows, columns=["record_id", "label", "status"])
    targets = pd.DataFrame(target_rows, columns=["record_id", "target_id", "label", "kind", "area_px",
                                                 "box_inside_image", "mask_size_matches"])
    return {"records": records, "findings": findings, "targets": targets}
