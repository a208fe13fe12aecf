"""Issue 12 target 4: a one-image build, in seconds beyond the imports.

    python -m bench.startup            # 3 runs, fresh home each, median printed

Each run writes a one-row NIH ChestX-ray14 tree (a 64 px PNG) into a fresh home, times
``shardsmith build --home H --json`` as a subprocess, then times a process that only imports what
the build imports (``shardsmith.cli``, ``shardsmith.definitions``, Great Expectations, Dagster).
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

ENTRY = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
         "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\n"
         "00000001_000.png,Cardiomegaly,0,1,57,M,PA,2682,2749,0.143,0.143\n")
IMPORTS = "import shardsmith.cli, shardsmith.definitions, great_expectations, dagster"


def one_image_home(root: Path) -> Path:
    import cv2
    import numpy as np

    src = root / "raw" / "nih_cxr14"
    (src / "images").mkdir(parents=True)
    (src / "Data_Entry_2017_v2020.csv").write_text(ENTRY)
    img = (np.random.default_rng(1).random((64, 64)) * 255).astype(np.uint8)
    cv2.imwrite(str(src / "images" / "00000001_000.png"), img)
    return root


def _timed(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - t, proc


def run(repeat: int = 3) -> dict:
    env = {**os.environ, "SHARDSMITH_DEMO": "1"}
    env.pop("DAGSTER_HOME", None)
    shardsmith = str(Path(sys.executable).with_name("shardsmith"))
    rows = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="shardsmith-startup-") as tmp:
            home = one_image_home(Path(tmp))
            build_s, proc = _timed([shardsmith, "build", "--home", str(home), "--json"], env)
            ok = proc.returncode == 0 and json.loads(proc.stdout.strip().splitlines()[-1])["success"]
            imports_s, _ = _timed([sys.executable, "-c", IMPORTS], env)
            rows.append({"build_s": round(build_s, 2), "imports_s": round(imports_s, 2),
                         "beyond_imports_s": round(build_s - imports_s, 2), "success": ok})
    return {"runs": rows, "median_beyond_imports_s": statistics.median(r["beyond_imports_s"] for r in rows),
            "target_s": 5.0}


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3), indent=2))
