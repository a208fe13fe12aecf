"""JPEG sources (issue 24 target 5): a CheXpert-like JPEG kept as it comes vs decoded and re-encoded.

Per image, the records step's pixel work on the same JPEGs, in one process, medians of
``SHARDSMITH_BENCH_REPEAT`` (3) passes:

* ``reencode`` (before issue 24): ``read_raster`` -> ``encode_png`` -> fingerprint of the stored pixels;
* ``as_it_comes``: ``pass_through_jpeg`` (marker walk) -> fingerprint from one reduced DCT decode.

Two geometries: CheXpert-v1.0-small (390 x 320, what the public small release ships) and a 1024-px
film (MIMIC-CXR-JPG downsized to the stored size). Also reported: stored bytes over input bytes, and
whether every kept JPEG is byte-identical to its input (target: yes, and >= 4x faster).

    python -m bench.jpeg [N]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bench.data import cache_root

GEOMETRIES = {"chexpert_small": (390, 320), "film_1024": (1024, 840)}
REPEAT = int(os.environ.get("SHARDSMITH_BENCH_REPEAT", "3"))


def jpeg_set(name: str, n: int) -> list[Path]:
    """``n`` greyscale JPEGs (quality 90, the chest phantom with detector noise), cached."""
    from shardsmith.demo.dicom_fixtures import chest_phantom

    rows, cols = GEOMETRIES[name]
    root = cache_root() / f"jpeg-{name}-{n}"
    if not (root / ".complete").is_file():
        root.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = (chest_phantom(rows, cols, 8, seed=i + 1)).astype(np.uint8)
            ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, 90])
            (root / f"view{i:05d}_frontal.jpg").write_bytes(buf.tobytes())
        (root / ".complete").write_text(str(n))
    return sorted(root.glob("*.jpg"))


def reencode(path: Path) -> bytes:
    from shardsmith.media.raster import encode_png, read_raster
    from shardsmith.sources.medical.cxr import stored_identity

    img = read_raster(path)
    enc = encode_png(img, 1024, 8)
    stored_identity(img, enc)
    return enc.png


def as_it_comes(path: Path) -> bytes:
    from shardsmith.media.jpeg import pass_through_jpeg
    from shardsmith.sources.medical.cxr import stored_identity

    img = pass_through_jpeg(path, 1024, 8)
    if img is None:
        raise RuntimeError(f"{path} was not kept as it came")
    stored_identity(img, img.encoded)
    return img.encoded.png


def _time(fn, files: list[Path]) -> tuple[float, list[bytes]]:
    times, out = [], []
    for _ in range(REPEAT):
        t = time.perf_counter()
        out = [fn(p) for p in files]
        times.append(time.perf_counter() - t)
    return statistics.median(times) / len(files), out


def run(n: int) -> dict:
    results: dict = {"images": n, "repeat": REPEAT}
    for name in GEOMETRIES:
        files = jpeg_set(name, n)
        inputs = [p.read_bytes() for p in files]
        old_s, old_out = _time(reencode, files)
        new_s, new_out = _time(as_it_comes, files)
        results[name] = {
            "reencode_ms": round(old_s * 1000, 2), "as_it_comes_ms": round(new_s * 1000, 2),
            "speedup": round(old_s / new_s, 1),
            "reencode_bytes_over_input": round(sum(map(len, old_out)) / sum(map(len, inputs)), 2),
            "as_it_comes_bytes_equal": all(a == b for a, b in zip(new_out, inputs, strict=True)),
        }
    return results


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 200)))
