"""Views: the cost of building grounding / consensus / dialogues / card stats per record (issue 14).

    .venv/bin/python -m bench.views [N]        # default N = 2000 synthetic records

Synthetic records at the stored size (1024 x 832, the build's ``max_side``), mixed like the CXR
sources: 50% normal (VinDr's are ~70%), 35% VinDr-like (3 readers, 1-3 labels, 1-2 boxes per
reader and label), 15% with polygon masks (SIIM / ChestX-Det-like, 1-2 findings). They are written
to one Parquet file with a PNG per record, then timed best-of-3:

* ``read_all``: reading the file with images (what any pass over staged records pays);
* ``read_view_columns``: reading only ``VIEW_COLUMNS`` (what the view step reads);
* ``views``: ``build_views`` over those batches (grounding, consensus, dialogues, fairness);
* ``write``: writing the three view tables to Parquet (what ``stage_views`` adds);
* ``card``: rendering the four card sections from the built views.

The per-record view cost is compared with a full build's marginal cost per image from
``bench/RESULTS.md`` (tens of ms); the target is views <= 10% of it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPEAT = 3
H, W = 1024, 832
BUILD_MS_PER_IMAGE = 56.5  # marginal wall ms/img of the full build, bench/RESULTS.md (latest ingest run)
VINDR_LABELS = ("aortic_enlargement", "cardiomegaly", "pleural_thickening", "pulmonary_fibrosis",
                "nodule_or_mass", "lung_opacity", "pleural_effusion", "other_lesion")
MASK_LABELS = ("pneumothorax", "nodule", "mass", "pleural_effusion")


def _box(rng: np.random.Generator) -> list[float]:
    w, h = rng.uniform(20, 400), rng.uniform(20, 400)
    x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
    return [float(x), float(y), float(x + w), float(y + h)]


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    from shardsmith.media import masks as M

    rng = np.random.default_rng(seed)
    phantom = cv2.GaussianBlur(rng.integers(0, 255, (H, W), dtype=np.uint8), (0, 0), 8)
    png = cv2.imencode(".png", phantom)[1].tobytes()
    out = []
    for i in range(n):
        kind = rng.random()
        findings, targets = [], []
        source, abnormal, complete = "vindr_cxr", False, True
        if kind >= 0.5 and kind < 0.85:
            complete, abnormal = False, True
            for label in rng.choice(VINDR_LABELS, size=int(rng.integers(1, 4)), replace=False):
                readers = sorted(rng.choice(["R1", "R2", "R3"], size=int(rng.integers(1, 4)), replace=False))
                findings.append({"label": str(label), "source_label": str(label), "status": "present",
                                 "readers": [str(r) for r in readers]})
                base = _box(rng)
                for r in readers:
                    for _ in range(int(rng.integers(1, 3))):
                        jitter = (np.asarray(base) + rng.normal(0, 8, 4)).clip(0, [W, H, W, H]).tolist()
                        jitter = [min(jitter[0], jitter[2] - 1), min(jitter[1], jitter[3] - 1), jitter[2], jitter[3]]
                        targets.append({"target_id": f"{i}-{len(targets)}", "label": str(label),
                                        "kind": "abnormality", "box_xyxy": jitter, "mask_rle": None,
                                        "area_px": 0.0, "reader": str(r), "source_geometry": "xyxy@native",
                                        "text": None})
        elif kind >= 0.85:
            source, complete, abnormal = "chestx_det", False, True
            for label in rng.choice(MASK_LABELS, size=int(rng.integers(1, 3)), replace=False):
                findings.append({"label": str(label), "source_label": str(label), "status": "present", "readers": []})
                cx, cy = rng.uniform(150, W - 150), rng.uniform(150, H - 150)
                ang = np.sort(rng.uniform(0, 2 * np.pi, 12))
                rad = rng.uniform(30, 140, 12)
                pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).tolist()
                mask = M.polygon_to_mask(pts, H, W)
                targets.append({"target_id": f"{i}-{len(targets)}", "label": str(label), "kind": "abnormality",
                                "box_xyxy": M.mask_bbox_xyxy(mask), "mask_rle": M.coco_rle_encode(mask),
                                "area_px": float(mask.sum()), "reader": None, "source_geometry": "polygon",
                                "text": None})
        out.append({"record_id": f"r{i:06d}", "source": source, "native_id": f"n{i}", "split": "train",
                    "sex": ("F", "M")[i % 2], "age_band": f"{20 + 10 * (i % 6)}-{29 + 10 * (i % 6)}",
                    "image": {"bytes": png, "path": None}, "height": H, "width": W,
                    "abnormal": abnormal, "complete": complete, "findings": findings, "targets": targets})
    return out


def _best(fn: Callable[[], object]) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(REPEAT):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run(n: int = 2000) -> dict:
    from shardsmith.schemas.records import RECORDS_SCHEMA
    from shardsmith.views import VIEW_COLUMNS, build_views
    from shardsmith.views.stage import VIEW_SCHEMAS

    records = synthetic_records(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.parquet"
        pq.write_table(pa.Table.from_pylist(records, schema=RECORDS_SCHEMA), path, row_group_size=256)
        del records
        t_all, _ = _best(lambda: sum(b.num_rows for b in pq.ParquetFile(path).iter_batches()))
        t_cols, _ = _best(lambda: sum(b.num_rows for b in pq.ParquetFile(path).iter_batches(columns=VIEW_COLUMNS)))
        t_views, views = _best(lambda: build_views(pq.ParquetFile(path).iter_batches(columns=VIEW_COLUMNS)))

        def write() -> None:
            for name, schema in VIEW_SCHEMAS.items():
                pq.write_table(pa.Table.from_pylist(getattr(views, name), schema=schema),
                               Path(tmp) / f"{name}.parquet", compression="zstd")

        t_write, _ = _best(write)
    t_card, card = _best(views.card_markdown)
    per_record = 1000 * (t_cols + t_views + t_write + t_card) / n
    return {
        "records": n, "image": [H, W],
        "rows": {"grounding": len(views.grounding), "consensus": len(views.consensus),
                 "dialogues": len(views.dialogues)},
        "ms_per_record": {"read_all": 1000 * t_all / n, "read_view_columns": 1000 * t_cols / n,
                          "views": 1000 * t_views / n, "write": 1000 * t_write / n, "card": 1000 * t_card / n,
                          "view_step_total": per_record},
        "build_ms_per_image": BUILD_MS_PER_IMAGE,
        "share_of_build_percent": 100 * per_record / BUILD_MS_PER_IMAGE,
        "card_chars": len(card),
    }


if __name__ == "__main__":
    result = run(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
    print(json.dumps(result, indent=2))
