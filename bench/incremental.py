"""Incremental rebuilds: a full build, the same build again with nothing changed, and a build
after one raw file changed, on the core demo (VinDr-CXR + NIH ChestX-ray14 native layouts).

    .venv/bin/python -m bench.incremental [--home DIR] [--json]

Prints a markdown table (or JSON): wall time of each build, which steps were recomputed and
which reused their staged output (by data version).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SHARDSMITH_DEMO", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

CHANGED = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"  # one VinDr DICOM of the core demo


def _build(home: Path) -> dict:
    from shardsmith.defs.run import run_build

    t = time.perf_counter()
    summary = run_build(home, echo=False)
    summary["wall_s"] = round(time.perf_counter() - t, 2)
    assert summary["success"], summary
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from shardsmith.defs.medical.assets import bucket_of
    from shardsmith.demo import cxr_core

    home = args.home or Path(tempfile.mkdtemp(prefix="shardsmith-incr-"))
    if home.exists():
        shutil.rmtree(home)
    cxr_core.write_demo(home / "raw")
    rows = {"full build": _build(home), "nothing changed": _build(home)}
    img = home / "raw" / "vindr_cxr" / "train" / f"{CHANGED}.dicom"
    data = bytearray(img.read_bytes())
    data[-1] ^= 0x01
    img.write_bytes(bytes(data))
    rows[f"one file changed (bucket {bucket_of(CHANGED)})"] = _build(home)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    full = rows["full build"]["wall_s"]
    print(f"host: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}\n")
    print("| build | wall s | % of full | runs | steps recomputed | steps reused |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    for name, r in rows.items():
        rec = ", ".join(r["recomputed"]) if len(r["recomputed"]) <= 4 else f"{len(r['recomputed'])} steps"
        print(f"| {name} | {r['wall_s']:.1f} | {100 * r['wall_s'] / full:.0f}% | {r['runs']} | {rec or '-'} "
              f"| {len(r['reused'])} |")
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
