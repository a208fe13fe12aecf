"""The afternoon script shardsmith competes with: pydicom + OpenCV + webdataset + pyarrow, one process.

Reads a VinDr Kaggle-layout folder (``train.csv`` + ``train/<id>.dicom``) and writes the same
output geometry as shardsmith (longest side 1024 px, 8-bit PNG, boxes scaled to the stored pixels)
into one Parquet file and WebDataset tar shards. Written the way a person would write it: rows
collected in a list and written at the end, boxes from a pandas ``groupby``. No validation,
quarantine, pseudonyms, checksums or manifest.

Its per-image work is shardsmith's own decoder and encoder (``media.dicom.decode_dicom`` +
``media.raster.encode_png``, issue 24 target 6), so ``build / plain`` isolates what the pipeline
adds around the pixels; with pydicom's float64 ``apply_voi_lut`` the peer was slower per image
than the build's decoder and the ratio flattered the build (3.96x).

    python -m bench.plain_script RAW_DIR OUT_DIR            # one process
    python -m bench.plain_script RAW_DIR OUT_DIR --pool     # decoding on a multiprocessing.Pool over every core

The ``--pool`` variant is the fairer peer for a two-core build (issue 12): the same script with its
decode/resize/encode in ``multiprocessing.Pool.imap`` (order kept), writing in the parent.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

MAX_SIDE = 1024


def decode_resize_encode(path: Path) -> tuple[bytes, int, int, int, int]:
    """DICOM -> window -> resized so the longest side is 1024 -> 8-bit PNG bytes (+ sizes), with the
    project's decoder and encoder: the same per-image work as a build and as ``bench.floor``."""
    from shardsmith.media.dicom import decode_dicom
    from shardsmith.media.raster import encode_png

    enc = encode_png(decode_dicom(path), MAX_SIDE, 8)
    return enc.png, enc.native_height, enc.native_width, enc.height, enc.width


def main(raw: Path, out: Path, processes: int = 1) -> int:
    labels = pd.read_csv(raw / "train.csv")
    out.mkdir(parents=True, exist_ok=True)
    (out / "wds").mkdir(exist_ok=True)
    rows = []
    groups = dict(tuple(labels.groupby("image_id")))
    todo = [(i, raw / "train" / f"{i}.dicom") for i in sorted(groups)]
    todo = [(i, p) for i, p in todo if p.exists()]
    pool = multiprocessing.Pool(processes) if processes > 1 else None
    decoded = pool.imap(decode_resize_encode, [p for _, p in todo], chunksize=2) if pool else (
        decode_resize_encode(p) for _, p in todo)
    with wds.ShardWriter(str(out / "wds" / "shard-%06d.tar"), maxcount=10000, verbose=0) as sink:
        for (image_id, _), (png, h, w, nh, nw) in zip(todo, decoded, strict=True):
            boxes = []
            for r in groups[image_id].itertuples():
                if r.class_name == "No finding" or pd.isna(r.x_min):
                    continue
                boxes.append({"label": r.class_name, "reader": r.rad_id,
                              "box": [r.x_min * nw / w, r.y_min * nh / h, r.x_max * nw / w, r.y_max * nh / h]})
            meta = {"image_id": image_id, "height": nh, "width": nw, "boxes": boxes,
                    "abnormal": bool(boxes)}
            sink.write({"__key__": image_id, "png": png, "json": json.dumps(meta).encode()})
            rows.append({**meta, "boxes": json.dumps(boxes), "image": png})
    if pool:
        pool.close()
        pool.join()
    pq.write_table(pa.Table.from_pylist(rows), out / "records.parquet", compression="zstd")
    print(json.dumps({"images": len(rows)}))
    return 0


if __name__ == "__main__":
    procs = len(os.sched_getaffinity(0)) if "--pool" in sys.argv else 1
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), procs))
