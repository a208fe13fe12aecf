"""Volumes: NIfTI slice records per second and peak memory on one large KiTS19-layout CT case.

The case (``SHARDSMITH_BENCH_VOLUME``, default 600 slices of 512 x 512 (issue 12, target 5), int16,
KiTS's slice-first array with a permuted affine) is written once into the bench cache with the demo's KiTS writer,
then ``run_source(settings, get_source("kits"))`` runs in a child process measured for wall time
and tree memory. Default volume options (labelled slices + 10% of the others, 1.5 mm volumes).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from bench.data import cache_root
from bench.procmon import measure

SHAPE = tuple(int(s) for s in os.environ.get("SHARDSMITH_BENCH_VOLUME", "600,512,512").split(","))


def kits_dataset() -> Path:
    """A KiTS19 raw folder with one case of shape ``SHAPE`` (slices, rows, columns); cached."""
    root = cache_root() / f"kits-{'x'.join(map(str, SHAPE))}"
    if (root / ".complete").is_file():
        return root
    from shardsmith.demo.volumes_demo import write_kits

    shutil.rmtree(root, ignore_errors=True)
    write_kits(root, shape=SHAPE)
    (root / ".complete").write_text("ok")
    return root


def child(raw: Path, home: Path) -> None:
    """In the measured process: stage the case and print what it produced."""
    from shardsmith.config import Settings
    from shardsmith.sources.registry import get_source
    from shardsmith.staging.runner import run_source

    os.environ.setdefault("SHARDSMITH_PSEUDONYM_KEY", "bench-only-pseudonym-key")
    (home / "raw").mkdir(parents=True, exist_ok=True)
    (home / "raw" / "kits").symlink_to(raw)
    t = time.perf_counter()
    counts = run_source(Settings(home=home), get_source("kits"))
    secs = time.perf_counter() - t
    print(json.dumps({"records": counts.records, "quarantined": counts.quarantined, "seconds": secs,
                      "volumes": counts.extra_tables.get("volumes", 0)}))


def run() -> dict:
    try:
        from shardsmith.sources.registry import get_source

        get_source("kits")
    except Exception as exc:  # the adapters are written by another engineer
        return {"measured": False, "reason": f"kits adapter unavailable: {exc}"}
    raw = kits_dataset()
    home = cache_root() / "run-kits"
    shutil.rmtree(home, ignore_errors=True)
    log = cache_root() / "run-kits.log"
    m = measure([sys.executable, "-m", "bench.volumes", str(raw), str(home)], log=log)
    if m.returncode != 0:
        return {"measured": False, "reason": f"run_source failed, see {log}"}
    produced = json.loads(log.read_text().strip().splitlines()[-1])
    out = {"measured": True, "shape": list(SHAPE), "voxels_m": round(SHAPE[0] * SHAPE[1] * SHAPE[2] / 1e6, 1),
           **produced, "records_per_s": round(produced["records"] / produced["seconds"], 1),
           "slices_per_s_of_volume": round(SHAPE[0] / produced["seconds"], 1), "process": m.to_dict()}
    print(f"volumes: {out}", flush=True)
    return out


if __name__ == "__main__":
    child(Path(sys.argv[1]), Path(sys.argv[2]))
