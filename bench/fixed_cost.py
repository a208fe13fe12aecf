"""Issue 24 target 2: the fixed cost of a build on the demo home, end to end as a user runs it.

    .venv/bin/python -m bench.fixed_cost [RUNS]      # default 3 runs of each, medians printed

Writes every source's demo data into a fresh home (``shardsmith.demo.generate.write_all``), builds
it once, then times ``shardsmith build --home H`` as a subprocess (interpreter start and imports
included): RUNS times with nothing changed, and RUNS times after one VinDr DICOM's last pixel byte
is flipped (a one-image change: its catalog, its bucket and the medical release are stale). Targets:
no-op <= 3 s, one image <= 8 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _build(home: Path) -> tuple[float, dict]:
    env = {**os.environ, "SHARDSMITH_DEMO": "1"}
    env.pop("DAGSTER_HOME", None)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "shardsmith.cli", "build", "--home", str(home), "--json"],
                         env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t, json.loads(out.stdout)


def _flip_one_image(home: Path) -> None:
    path = sorted((home / "raw" / "vindr_cxr").rglob("*.dicom"))[0]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one pixel of the uncompressed pixel data
    path.write_bytes(bytes(data))


def main(runs: int = 3) -> dict:
    from shardsmith.demo.generate import write_all

    with tempfile.TemporaryDirectory(prefix="shardsmith-fixed-cost-") as tmp:
        home = Path(tmp) / "home"
        os.environ["SHARDSMITH_DEMO"] = "1"
        write_all(home)
        first, _ = _build(home)
        noop = [_build(home) for _ in range(runs)]
        one = []
        for _ in range(runs):
            _flip_one_image(home)
            one.append(_build(home))
        return {
            "first_build_s": round(first, 2),
            "noop_s": [round(s, 2) for s, _ in noop], "noop_median_s": round(statistics.median(s for s, _ in noop), 2),
            "noop_runs_started": [r["runs"] for _, r in noop],
            "one_image_s": [round(s, 2) for s, _ in one],
            "one_image_median_s": round(statistics.median(s for s, _ in one), 2),
            "one_image_recomputed": one[-1][1]["recomputed"],
            "targets": {"noop_s": 3.0, "one_image_s": 8.0},
        }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3), indent=2))
