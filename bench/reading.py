"""Reading: samples per second through ``shardsmith.loaders`` against raw sequential reading.

On a release built by the ingest benchmark, each path reads every record and decodes its PNG:

* ``loader_parquet``: ``Release.dataset()`` batches, image bytes decoded with ``decode_png``;
* ``raw_parquet``: ``pyarrow.parquet`` over the same files, ``cv2.imdecode`` per image;
* ``loader_wds``: ``Release.webdataset()`` (decoded samples: image, boxes, labels, masks, meta);
* ``loader_iter``: ``Release.iter_samples()`` (the same decoded samples without webdataset);
* ``raw_wds``: ``tarfile`` over the same shards, ``cv2.imdecode`` + ``json.loads`` per sample;
* ``raw_bytes``: the files' bytes read sequentially (the I/O ceiling, no decoding).
Each is timed best-of-``REPEAT`` in this process (warm page cache).
"""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

REPEAT = 3


def _best(fn: Callable[[], int]) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(REPEAT):
        t = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t)
    return best, n


def run(releases_root: Path) -> dict:
    from shardsmith.loaders import open_release
    from shardsmith.media.raster import decode_png

    rel = open_release(releases_root, "medical")
    pq_files = rel._parquet_files("records", None)
    shards = rel.shard_urls("records")

    def loader_parquet() -> int:
        n = 0
        for batch in rel.dataset("records").to_batches(columns=["record_id", "image", "targets"]):
            for img in batch.column("image").field("bytes").to_pylist():
                n += decode_png(img).shape[0] > 0
        return n

    def raw_parquet() -> int:
        n = 0
        for f in pq_files:
            for batch in pq.ParquetFile(f).iter_batches(columns=["record_id", "image", "targets"]):
                for img in batch.column("image").field("bytes").to_pylist():
                    n += cv2.imdecode(np.frombuffer(img, np.uint8), cv2.IMREAD_UNCHANGED).shape[0] > 0
        return n

    def loader_wds() -> int:
        return sum(1 for s in rel.webdataset("records") if s["image"] is not None)

    def loader_iter() -> int:
        return sum(1 for s in rel.iter_samples("records") if s["image"] is not None)

    def raw_wds() -> int:
        n = 0
        for url in shards:
            with tarfile.open(url) as tar:
                for m in tar:
                    data = tar.extractfile(m).read()
                    if m.name.endswith(".png"):
                        n += cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape[0] > 0
                    elif m.name.endswith(".json"):
                        json.loads(data)
        return n

    def raw_bytes() -> int:
        for f in [*pq_files, *shards]:
            Path(f).read_bytes()
        return rel.manifest["row_counts"]["records"] and sum(rel.manifest["row_counts"]["records"].values())

    out: dict = {"samples": sum(rel.manifest["row_counts"]["records"].values())}
    for name, fn in (("raw_bytes", raw_bytes), ("raw_parquet", raw_parquet), ("loader_parquet", loader_parquet),
                     ("raw_wds", raw_wds), ("loader_wds", loader_wds), ("loader_iter", loader_iter)):
        secs, n = _best(fn)
        out[name] = {"seconds": round(secs, 3), "samples_per_s": round(n / secs, 1)}
        print(f"reading {name:15s}: {out[name]}", flush=True)
    out["ratios"] = {
        "parquet_raw_over_loader": round(out["raw_parquet"]["samples_per_s"] / out["loader_parquet"]["samples_per_s"], 2),
        "wds_raw_over_loader": round(out["raw_wds"]["samples_per_s"] / out["loader_wds"]["samples_per_s"], 2),
        "wds_raw_over_iter": round(out["raw_wds"]["samples_per_s"] / out["loader_iter"]["samples_per_s"], 2),
    }
    return out


if __name__ == "__main__":
    import sys

    print(json.dumps(run(Path(sys.argv[1])), indent=2))
