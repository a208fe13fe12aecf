"""Deterministic VinDr-CXR (Kaggle layout) datasets at realistic radiograph size, cached on disk.

Generating 2,000-3,000 px 12-bit DICOMs takes about a second each, so a dataset is written once
under ``SHARDSMITH_BENCH_CACHE`` (default ``/tmp/shardsmith-bench``) and reused; a stamp file
marks a complete set so an interrupted generation is redone rather than half-used.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

CACHE_ENV = "SHARDSMITH_BENCH_CACHE"
LABELS = ("Cardiomegaly", "Aortic enlargement", "Pleural effusion", "Nodule/Mass", "Pleural thickening")
READERS = ("R8", "R9", "R10")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, "/tmp/shardsmith-bench")).resolve()


def image_geometry(i: int) -> tuple[int, int, str]:
    """Rows, columns and photometric of image ``i``: 2,000-3,000 px, every fifth MONOCHROME1."""
    rows = 2000 + (i * 389) % 1001
    cols = 2000 + (i * 577) % 1001
    return rows, cols, "MONOCHROME1" if i % 5 == 4 else "MONOCHROME2"


def image_id(i: int) -> str:
    return f"{i:08x}{'bench':0>8}{i * 2654435761 % 2**64:016x}"


def _csv_rows(i: int, rows: int, cols: int) -> list[list[str]]:
    iid = image_id(i)
    if i % 3 == 0:  # a normal image: every reader says "No finding"
        return [[iid, "No finding", "14", r, "", "", "", ""] for r in READERS]
    out = []
    label = LABELS[i % len(LABELS)]
    x0, y0 = cols * 0.2 + i % 17, rows * 0.25 + i % 13
    for k, r in enumerate(READERS):
        out.append([iid, label, "0", r, f"{x0 + k:.1f}", f"{y0 + k:.1f}",
                    f"{x0 + cols * 0.3 + k:.1f}", f"{y0 + rows * 0.2 + k:.1f}"])
    return out


# Image textures the ingest bench runs on (issue 24 target 6): "noisy" is the phantom with detector
# noise (sigma about 1 % of the range: PNG compresses it poorly, as on real films); "smooth" is the same
# anatomy blurred (sigma 6 px), where PNG's filters and zlib find long runs and encoding is cheap.
TEXTURES = ("noisy", "smooth")
SMOOTH_SIGMA_PX = 6.0


def _pixels(rows: int, cols: int, seed: int, texture: str):
    """The display pixels of one bench image: None lets the fixture draw its noisy phantom."""
    if texture == "noisy":
        return None
    import cv2

    from shardsmith.demo.dicom_fixtures import chest_phantom

    arr = chest_phantom(rows, cols, 12, seed=seed).astype("float32")
    return cv2.GaussianBlur(arr, (0, 0), SMOOTH_SIGMA_PX).round().astype("uint16")


def vindr_dataset(n: int, texture: str = "noisy") -> Path:
    """A VinDr raw folder (``train.csv`` + ``train/<id>.dicom``) with ``n`` images; cached."""
    from shardsmith.demo.dicom_fixtures import make_cxr_dicom

    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {TEXTURES}, got {texture!r}")
    suffix = "" if texture == "noisy" else f"-{texture}"  # the noisy sets keep their cached names
    root = cache_root() / f"vindr{suffix}-{n}"
    stamp = root / ".complete"
    if stamp.is_file():
        return root
    # Images 0..n-1 are shared across sizes: link them from a larger or smaller set when present.
    shutil.rmtree(root, ignore_errors=True)
    (root / "train").mkdir(parents=True)
    pool = cache_root() / f"images{suffix}"
    pool.mkdir(parents=True, exist_ok=True)
    rows_csv: list[list[str]] = []
    for i in range(n):
        rows, cols, photometric = image_geometry(i)
        src = pool / f"{image_id(i)}.dicom"
        if not src.is_file():
            tmp = src.with_suffix(".tmp")
            make_cxr_dicom(tmp, rows=rows, columns=cols, bits_stored=12, photometric=photometric,
                           window=(2048, 3686), patient_id=f"BENCH-PAT-{i // 2:05d}",
                           patient_name=f"BENCH^{i}", sex="F" if i % 2 else "M", age=f"{30 + i % 50:03d}Y",
                           seed=i, pixels=_pixels(rows, cols, i, texture))
            os.replace(tmp, src)
        os.link(src, root / "train" / src.name)
        rows_csv += _csv_rows(i, rows, cols)
    with (root / "train.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"])
        w.writerows(rows_csv)
    stamp.write_text(str(n))
    return root
