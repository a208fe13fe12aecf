"""The release step alone (issue 24 targets 3-4), on a home staged once by ``bench.scale``'s trees.

``bench.scale`` measures a whole first build; the release step is its largest process at every
size, and to compare two versions of the release code it must run many times on the same staged
records. This stages ``nih-<n>`` (catalog and records, once per size, kept under
``$SHARDSMITH_BENCH_DATA/homes/release-<n>``) and then runs ``build_release`` in a fresh process
under ``bench.procmon`` (CPU, wall, peak RSS of the largest process), removing the releases and the
identity cache before each run so every run does the same work. It prints the release's content
digest, so two code versions can be shown to publish the same bytes.

    .venv/bin/python -m bench.release_step 10000 40000          # one run per size
    SHARDSMITH_BENCH_REPEAT=3 .venv/bin/python -m bench.release_step 10000
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

ENV = {"SHARDSMITH_PSEUDONYM_KEY": "bench-only-pseudonym-key", "GX_ANALYTICS_ENABLED": "False"}


def staged_home(n: int) -> Path:
    """A home whose NIH catalog and records of the first ``n`` label rows are staged (made once)."""
    from bench.scale import data_root, nih_tree

    home = data_root() / "homes" / f"release-{n}"
    if (home / ".staged").is_file():
        return home
    raw = nih_tree(n)
    shutil.rmtree(home, ignore_errors=True)
    (home / "raw").mkdir(parents=True)
    (home / "raw" / "nih_cxr14").symlink_to(raw)
    os.environ.update(ENV)
    from shardsmith.config import settings_from_env
    from shardsmith.sources.registry import get_source
    from shardsmith.staging import steps
    from shardsmith.staging.versions import bucket_keys

    settings = settings_from_env(home)
    source = get_source("nih_cxr14")
    steps.stage_catalog(settings, source)
    steps.stage_records_parts(settings, source, bucket_keys(settings.buckets))
    (home / ".staged").write_text(str(n))
    return home


def release_once(home: Path) -> dict:
    """``build_release`` of the staged home in this process; its time and content digest."""
    from shardsmith.config import settings_from_env
    from shardsmith.pipeline.releases import build_release

    settings = settings_from_env(home)
    shutil.rmtree(settings.releases, ignore_errors=True)
    shutil.rmtree(settings.layout.identity_dir(), ignore_errors=True)
    t = time.perf_counter()
    result = build_release(settings, "medical", ["nih_cxr14"])
    return {"release_s": round(time.perf_counter() - t, 2), "digest": result.content_digest,
            "rows": result.row_counts}


def measure(n: int) -> dict:
    from bench.procmon import measure as procmon

    home = staged_home(n)
    out = home / "release-run.json"
    out.unlink(missing_ok=True)
    m = procmon([sys.executable, "-m", "bench.release_step", "--run", str(home)],
                env=dict(os.environ, **ENV), log=home / "release-run.log")
    if m.returncode != 0:
        raise RuntimeError(f"release of {n} rows failed; see {home / 'release-run.log'}")
    run = json.loads(out.read_text())
    return {"rows": n, "wall_s": m.wall_s, "cpu_s": round(m.cpu_s, 2),
            "cpu_ms_per_row": round(m.cpu_s * 1000 / n, 3), "largest_mb": round(m.peak_proc_rss_mb),
            "release_s": run["release_s"], "digest": run["digest"]}


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--run":
        home = Path(sys.argv[2])
        os.environ.update(ENV)
        res = release_once(home)
        (home / "release-run.json").write_text(json.dumps(res))
    else:
        for _ in range(int(os.environ.get("SHARDSMITH_BENCH_REPEAT", "1"))):
            for size in [int(s) for s in sys.argv[1:]] or [10_000]:
                print(json.dumps(measure(size)), flush=True)
