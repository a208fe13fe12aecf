"""Targets 1-2 of issue 12: memory flat in rows and per-row overhead, at the real label files' size.

The label files are the real ones (``$SHARDSMITH_REAL_SAMPLES/cxr-labels``: NIH
``Data_Entry_2017_v2020.csv.gz`` + ``BBox_List_2017.csv.gz``, CheXpert ``chexpert_train.csv.gz``);
the pixels are generated, tiny (64 px PNG for NIH, 64 px JPEG for CheXpert), so what is measured
is the per-row machinery, not decoding. Trees are written once under ``SHARDSMITH_BENCH_DATA``
(default ``/work/bench-data``, outside the repo) and reused:

    nih-10000/     first 10,000 rows of the NIH entry file (boxes of those images)
    nih-112120/    the whole NIH entry file
    chexpert-223414/  the whole CheXpert train file (JPEGs in CheXpert-v1.0-small/train/...)

Each size is built three times, each time in a fresh process measured with ``bench.procmon``
(peak RSS of the largest single process, peak RSS/PSS summed over the tree, CPU of the tree);
the build is the library path a first ``shardsmith build`` takes: ``stage_catalog``,
``stage_records_parts`` over every bucket in one pass, ``build_release``.

    .venv/bin/python -m bench.scale                 # 10000,112120,335534 x 3
    SHARDSMITH_BENCH_SCALE=10000,112120 SHARDSMITH_BENCH_REPEAT=1 .venv/bin/python -m bench.scale
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

DATA_ENV = "SHARDSMITH_BENCH_DATA"
NIH_ENTRY = "Data_Entry_2017_v2020.csv.gz"
NIH_BOX = "BBox_List_2017.csv.gz"
CHEXPERT = "chexpert_train.csv.gz"
SIDE = 64


def data_root() -> Path:
    return Path(os.environ.get(DATA_ENV, "/work/bench-data")).resolve()


def labels_dir() -> Path:
    real = os.environ.get("SHARDSMITH_REAL_SAMPLES", "/work/shared/real")
    return Path(real) / "cxr-labels"


def _pixels(i: int):
    """A 64 x 64 grey image unique to ``i``, also to a perceptual hash: a seeded 8 x 8 field
    upscaled (the identity stage must see distinct films, as it would on a real dataset; trees
    written before 2026-11-29 22:30 held one gradient for every row, which it groups as one film)."""
    import cv2
    import numpy as np

    small = np.random.default_rng(i).integers(0, 256, (8, 8), dtype=np.uint8)
    img = cv2.resize(small, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)
    img[0, :8] = np.frombuffer(i.to_bytes(8, "big"), dtype=np.uint8)
    return img


def _write_images(paths: list[Path], ext: str, seed0: int = 0) -> None:
    """One distinct picture per path; ``seed0`` keeps each source's pictures apart (NIH and CheXpert
    drawing the same seeds would make every k-th pair a cross-source duplicate)."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    made: set[Path] = set()
    for i, p in enumerate(paths):
        if p.parent not in made:
            p.parent.mkdir(parents=True, exist_ok=True)
            made.add(p.parent)
        ok, buf = cv2.imencode(ext, _pixels(seed0 + i), params)
        p.write_bytes(buf.tobytes())


def nih_tree(n: int | None) -> Path:
    """``nih-<n>``: the first ``n`` rows of the real entry file (all when None), one PNG each."""
    src = labels_dir()
    with gzip.open(src / NIH_ENTRY, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:] if n is None else rows[1:n + 1]
    root = data_root() / f"nih-{len(body)}"
    if (root / ".complete").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    names = {r[0] for r in body}
    with gzip.open(root / NIH_ENTRY, "wt", newline="") as fh:
        csv.writer(fh).writerows([header, *body])
    with gzip.open(src / NIH_BOX, "rt", newline="") as fh:
        boxes = list(csv.reader(fh))
    with gzip.open(root / NIH_BOX, "wt", newline="") as fh:
        csv.writer(fh).writerows([boxes[0], *(b for b in boxes[1:] if b and b[0] in names)])
    full = data_root() / "nih-112120"
    paths = [root / f"images_{1 + k // 10000:03d}" / "images" / r[0] for k, r in enumerate(body)]
    if root != full and (full / ".complete").is_file():  # share the pixels with the full tree
        for k, (p, r) in enumerate(zip(paths, body, strict=True)):
            p.parent.mkdir(parents=True, exist_ok=True)
            os.link(full / f"images_{1 + k // 10000:03d}" / "images" / r[0], p)
    else:
        _write_images(paths, ".png")
    (root / ".complete").write_text(str(len(body)))
    return root


def chexpert_tree() -> Path:
    """The whole CheXpert train file, one JPEG per row at its ``Path``."""
    with gzip.open(labels_dir() / CHEXPERT, "rt", newline="") as fh:
        text = fh.read()
    rows = list(csv.reader(io.StringIO(text)))
    root = data_root() / f"chexpert-{len(rows) - 1}"
    if (root / ".complete").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    base = root / "CheXpert-v1.0-small"
    base.mkdir(parents=True)
    (base / "train.csv").write_text(text)
    prefix = "CheXpert-v1.0-small/"
    _write_images([base / r[0][len(prefix):] for r in rows[1:]], ".jpg", seed0=1_000_000)
    (root / ".complete").write_text(str(len(rows) - 1))
    return root


def datasets() -> dict[int, dict[str, Path]]:
    """Size -> {source: raw folder} for the three sizes."""
    full = nih_tree(None)
    small = nih_tree(10_000)
    chex = chexpert_tree()
    n_full = int((full / ".complete").read_text())
    n_chex = int((chex / ".complete").read_text())
    return {10_000: {"nih_cxr14": small}, n_full: {"nih_cxr14": full},
            n_full + n_chex: {"nih_cxr14": full, "chexpert": chex}}


# --------------------------------------------------------------------------- the measured build
def build(home: Path, sources: list[str]) -> dict:
    """The library path of a first build (what ``shardsmith build`` runs); returns step timings."""
    import logging

    from shardsmith.config import settings_from_env
    from shardsmith.pipeline.releases import build_release
    from shardsmith.sources.registry import get_source
    from shardsmith.staging import steps
    from shardsmith.staging.versions import bucket_keys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import resource

    settings = settings_from_env(home)
    times: dict[str, float] = {}
    maxrss: dict[str, float] = {}  # this process's peak RSS (MB) after each step: which step sets it

    def mark(step: str, t0: float) -> None:
        times[step] = time.perf_counter() - t0
        maxrss[step] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    for name in sources:
        source = get_source(name)
        t = time.perf_counter()
        steps.stage_catalog(settings, source)
        mark(f"{name}.catalog", t)
        t = time.perf_counter()
        parts = bucket_keys(settings.buckets) if source.partitioned else ["records"]
        steps.stage_records_parts(settings, source, parts)
        mark(f"{name}.records", t)
    t = time.perf_counter()
    result = build_release(settings, "medical", sources)
    mark("release", t)
    return {"times": {k: round(v, 2) for k, v in times.items()},
            "parent_maxrss_mb": {k: round(v) for k, v in maxrss.items()},
            "release": str(getattr(result, "path", result))}


def _measure(n: int, raws: dict[str, Path], run: int) -> dict:
    from bench.procmon import load_average, measure

    home = data_root() / "homes" / f"scale-{n}-{run}"
    shutil.rmtree(home, ignore_errors=True)
    (home / "raw").mkdir(parents=True)
    for name, raw in raws.items():
        (home / "raw" / name).symlink_to(raw)
    env = dict(os.environ, SHARDSMITH_PSEUDONYM_KEY="bench-only-pseudonym-key", GX_ANALYTICS_ENABLED="False")
    env.pop("SHARDSMITH_HOME", None)
    load = load_average()
    m = measure([sys.executable, "-m", "bench.scale", "--build", str(home), *raws], env=env,
                log=home.with_suffix(".log"))
    if m.returncode != 0:
        raise RuntimeError(f"build of {n} rows failed (rc={m.returncode}); see {home.with_suffix('.log')}")
    times = json.loads((home / "bench-times.json").read_text())
    shutil.rmtree(home / "releases", ignore_errors=True)  # keep staging for inspection, not the copy
    return m.to_dict() | {"load_before": round(load, 2), "load_after": round(load_average(), 2), **times}


def run(sizes: list[int] | None = None, repeat: int = 3) -> dict:
    data = datasets()
    wanted = sizes or sorted(data)
    out: dict = {"runs": {}, "median": {}}
    for n in wanted:
        runs = [_measure(n, data[n], k) for k in range(repeat)]
        out["runs"][n] = runs
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("wall_s", "cpu_s", "peak_rss_mb", "peak_pss_mb", "peak_proc_rss_mb")}
        med["cpu_ms_per_row"] = round(med["cpu_s"] * 1000 / n, 3)
        out["median"][n] = med
        print(f"scale n={n}: {json.dumps(med)}", flush=True)
    return out


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--build":
        home = Path(sys.argv[2])
        res = build(home, sys.argv[3:])
        (home / "bench-times.json").write_text(json.dumps(res))
        print(json.dumps(res))
    elif len(sys.argv) > 1 and sys.argv[1] == "--data":
        print({n: {k: str(v) for k, v in d.items()} for n, d in datasets().items()})
    else:
        sizes = [int(s) for s in os.environ.get("SHARDSMITH_BENCH_SCALE", "").split(",") if s] or None
        print(json.dumps(run(sizes, int(os.environ.get("SHARDSMITH_BENCH_REPEAT", "3"))), indent=2))
