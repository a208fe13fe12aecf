"""Volume memory against the volume's length (issue 24 target 3, volumes): VmHWM of one process.

A KiTS19-layout CT (int16, slice-first, 512 x 512 in-plane at 0.8 mm) is staged with
``run_source`` in a child process with one worker (so every byte the case costs is in that process),
at two lengths and two slice spacings: thin (0.8 mm: more native slices per mm) and thick (2.5 mm:
fewer native slices, but the 1.5 mm volume grid has more slices than the input). The child prints
its ``VmHWM`` (the kernel's high-water mark of its resident memory). Memory independent of length
means the two lengths of one spacing peak within a small margin of each other.

    python -m bench.volume_memory                       # lengths from SHARDSMITH_BENCH_VOLUME_LENGTHS (120,240)
    python -m bench.volume_memory child RAW HOME        # the measured process
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.data import cache_root

LENGTHS = tuple(int(s) for s in os.environ.get("SHARDSMITH_BENCH_VOLUME_LENGTHS", "120,240").split(","))
SPACINGS_MM = {"thin": 0.8, "thick": 2.5}
IN_PLANE = int(os.environ.get("SHARDSMITH_BENCH_VOLUME_SIDE", "512"))


def case(length: int, spacing_mm: float) -> Path:
    """A KiTS19 raw folder with one case of ``length`` slices at ``spacing_mm``; cached."""
    from shardsmith.demo.volumes_demo import KITS_AFFINE, write_kits

    root = cache_root() / f"kits-mem-{length}x{IN_PLANE}-{spacing_mm:g}mm"
    if (root / ".complete").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    affine = KITS_AFFINE.copy()
    affine[2, 0] = -spacing_mm  # KiTS arrays are slice-first: the first axis is the slice axis
    write_kits(root, affine=affine, shape=(length, IN_PLANE, IN_PLANE))
    (root / ".complete").write_text("ok")
    return root


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(raw: Path, home: Path) -> None:
    from shardsmith.config import Settings
    from shardsmith.sources.registry import get_source
    from shardsmith.staging.runner import run_source

    os.environ.setdefault("SHARDSMITH_PSEUDONYM_KEY", "bench-only-pseudonym-key")
    (home / "raw").mkdir(parents=True, exist_ok=True)
    (home / "raw" / "kits").symlink_to(raw)
    t = time.perf_counter()
    counts = run_source(Settings(home=home, workers=1), get_source("kits"))
    print(json.dumps({"records": counts.records, "quarantined": counts.quarantined,
                      "volumes": counts.extra_tables.get("volumes", 0), "seconds": round(time.perf_counter() - t, 1),
                      "vm_hwm_mb": round(_vm_hwm_mb(), 1)}))


def run() -> dict:
    out: dict = {"in_plane": IN_PLANE, "lengths": list(LENGTHS)}
    for name, spacing in SPACINGS_MM.items():
        rows = {}
        for length in LENGTHS:
            raw = case(length, spacing)
            home = cache_root() / f"run-kits-mem-{name}-{length}"
            shutil.rmtree(home, ignore_errors=True)
            proc = subprocess.run([sys.executable, "-m", "bench.volume_memory", "child", str(raw), str(home)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{name} {length}: {proc.stderr[-2000:]}")
            rows[length] = json.loads(proc.stdout.strip().splitlines()[-1])
            voxels = length * IN_PLANE * IN_PLANE
            rows[length]["input_int16_mb"] = round(voxels * 2 / 2**20, 1)
            print(f"volume memory {name} ({spacing} mm) {length} slices: {rows[length]}", flush=True)
        hwm = [rows[n]["vm_hwm_mb"] for n in LENGTHS]
        out[name] = {"spacing_mm": spacing, "runs": rows,
                     "vm_hwm_growth": round(hwm[-1] / hwm[0], 3) if hwm[0] else None}
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        print(json.dumps(run()))
