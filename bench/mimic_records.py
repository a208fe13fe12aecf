"""Issue 23: the MIMIC-CXR records step at the full metadata size, with generated small JPEGs.

    .venv/bin/python -m bench.mimic_records [N ...]      # default 37711 377110; one run each

Writes MIMIC-CXR-JPG's four gzip CSVs and a reports zip for N images (``bench.pretraining``'s
layout: ~1.65 images a study, ~3.5 studies a patient) and one distinct 64 px JPEG per image under
``files/pXX/pN/sN/`` (``bench.scale``'s pictures), once, under ``SHARDSMITH_BENCH_DATA``; then
measures, in a fresh process tree (``bench.procmon``: the largest single process, the tree's CPU),
the records step a first build runs: ``stage_catalog`` and ``stage_records_parts`` over every bucket.
Targets (as NIH/CheXpert): largest process <= 1 GB; per-row cost in line with them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path


def tree(n: int) -> Path:
    from bench.pretraining import _layout, write_labels
    from bench.scale import _write_images, data_root

    root = data_root() / f"mimic-{n}"
    done = root / ".complete"
    if done.is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    write_labels(root, n)
    paths = [root / "files" / f"p{sub[:2]}" / f"p{sub}" / f"s{st}" / f"{d}.jpg" for d, sub, st, _, _ in _layout(n)]
    _write_images(paths, ".jpg", seed0=5_000_000)
    done.write_text("ok")
    return root


def records_step(home: Path) -> dict:
    from shardsmith.config import settings_from_env
    from shardsmith.sources.registry import get_source
    from shardsmith.staging import steps
    from shardsmith.staging.versions import bucket_keys

    settings = settings_from_env(home)
    source = get_source("mimic_cxr", settings)
    t = time.perf_counter()
    steps.stage_catalog(settings, source)
    catalog_s = time.perf_counter() - t
    t = time.perf_counter()
    out = steps.stage_records_parts(settings, source, bucket_keys(settings.buckets))
    records_s = time.perf_counter() - t
    counts = [o.counts for o in out.values()]
    return {"catalog_s": round(catalog_s, 1), "records_s": round(records_s, 1),
            "records": sum(c["records"] for c in counts), "quarantined": sum(c["quarantined"] for c in counts)}


def measure(n: int) -> dict:
    from bench.procmon import load_average, measure
    from bench.scale import data_root

    raw = tree(n)
    home = data_root() / "homes" / f"mimic-{n}"
    shutil.rmtree(home, ignore_errors=True)
    (home / "raw").mkdir(parents=True)
    (home / "raw" / "mimic_cxr").symlink_to(raw)
    env = dict(os.environ, SHARDSMITH_PSEUDONYM_KEY="bench-only-pseudonym-key", GX_ANALYTICS_ENABLED="False")
    load = load_average()
    m = measure([sys.executable, "-m", "bench.mimic_records", "--run", str(home)], env=env,
                log=home.with_suffix(".log"))
    if m.returncode != 0:
        raise RuntimeError(f"records step of {n} failed; see {home.with_suffix('.log')}")
    step = json.loads((home / "bench-step.json").read_text())
    return {"rows": n, **m.to_dict(), **step, "load_before": round(load, 2),
            "ms_per_row_wall": round(1000 * m.wall_s / n, 2)}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        home = Path(sys.argv[2])
        (home / "bench-step.json").write_text(json.dumps(records_step(home)))
    else:
        sizes = [int(a) for a in sys.argv[1:]] or [37_711, 377_110]
        print(json.dumps([measure(n) for n in sizes], indent=2))
