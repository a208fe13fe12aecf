"""Medical ingest: ``shardsmith build`` vs the plain script vs the decode/encode floor.

Each is run as its own process on the same cached VinDr-layout DICOMs at two dataset sizes, so the
start-up cost (intercept) and the marginal cost per image (slope) separate:
``marginal = (t_large - t_small) / (n_large - n_small)``. Peak memory is the process tree's.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
from pathlib import Path

from bench.data import cache_root, vindr_dataset
from bench.procmon import Measurement, load_average, measure

REPEAT = int(os.environ.get("SHARDSMITH_BENCH_REPEAT", "3"))  # each size this often; medians reported
SIZES = tuple(int(s) for s in os.environ.get("SHARDSMITH_BENCH_SIZES", "100,400").split(","))
BENCH_KEY = "bench-only-pseudonym-key"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("SHARDSMITH_PSEUDONYM_KEY", BENCH_KEY)
    env["GX_ANALYTICS_ENABLED"] = "False"
    env.pop("DAGSTER_HOME", None)  # ephemeral instance, as `shardsmith build` without a UI
    env.pop("SHARDSMITH_HOME", None)
    return env


def _warm(raw: Path) -> None:
    """Read every input once so all contenders start from the page cache, not the disk."""
    for p in sorted((raw / "train").glob("*.dicom")):
        with p.open("rb") as fh:
            while fh.read(1 << 24):
                pass


def run_build(raw: Path, n: int) -> tuple[Measurement, Path]:
    home = cache_root() / f"run-build-{n}"
    shutil.rmtree(home, ignore_errors=True)
    (home / "raw").mkdir(parents=True)
    (home / "raw" / "vindr_cxr").symlink_to(raw)
    exe = Path(sys.executable).with_name("shardsmith")
    m = measure([str(exe), "build", "--home", str(home)], env=_env(), log=home.with_suffix(".log"))
    return m, home


def run_plain(raw: Path, n: int) -> Measurement:
    out = cache_root() / f"run-plain-{n}"
    shutil.rmtree(out, ignore_errors=True)
    return measure([sys.executable, "-m", "bench.plain_script", str(raw), str(out)], env=_env(),
                   log=out.with_suffix(".log"))


def run_plain_pool(raw: Path, n: int) -> Measurement:
    """The plain script with its decoding on a ``multiprocessing.Pool`` over every core."""
    out = cache_root() / f"run-plain-pool-{n}"
    shutil.rmtree(out, ignore_errors=True)
    return measure([sys.executable, "-m", "bench.plain_script", str(raw), str(out), "--pool"], env=_env(),
                   log=out.with_suffix(".log"))


def run_floor(raw: Path, n: int) -> Measurement:
    return measure([sys.executable, "-m", "bench.floor", str(raw)], env=_env(),
                   log=cache_root() / f"run-floor-{n}.log")


def _fit(small: Measurement, large: Measurement, n_small: int, n_large: int, attr: str) -> tuple[float, float]:
    """(marginal seconds per image, intercept seconds) of a straight line through two sizes."""
    a, b = getattr(small, attr), getattr(large, attr)
    marginal = (b - a) / (n_large - n_small)
    return marginal, a - marginal * n_small


def run() -> dict:
    """Measure all three at both sizes; returns a JSON-ready dict (see ``summarise``)."""
    results: dict = {"sizes": list(SIZES), "load_before": round(load_average(), 2), "runs": {}}
    for n in SIZES:
        raw = vindr_dataset(n)
        _warm(raw)
        for name, fn in (("floor", run_floor), ("plain", run_plain), ("plain_pool", run_plain_pool),
                         ("build", run_build)):
            tries = []
            for _ in range(REPEAT):
                m = fn(raw, n)
                if name == "build":
                    m, home = m
                    results["build_home_" + str(n)] = str(home)
                if m.returncode != 0:
                    raise RuntimeError(f"{name} failed on {n} images (rc={m.returncode}); see logs in {cache_root()}")
                tries.append(m.to_dict() | {"load": round(load_average(), 2)})
                print(f"ingest {name:5s} n={n:4d}: {tries[-1]}", flush=True)
            # the median of each figure over the tries (the machine is shared: single runs are noisy)
            results["runs"][f"{name}-{n}"] = {
                k: statistics.median(t[k] for t in tries) if isinstance(tries[0][k], (int, float)) else tries[0][k]
                for k in tries[0]} | {"tries": tries}
    return summarise(results)


def summarise(results: dict) -> dict:
    n_small, n_large = results["sizes"][0], results["sizes"][-1]
    summary = {}
    for name in ("floor", "plain", "plain_pool", "build"):
        r_s, r_l = results["runs"][f"{name}-{n_small}"], results["runs"][f"{name}-{n_large}"]
        small = Measurement(r_s["wall_s"], r_s["cpu_s"], r_s["peak_rss_mb"], r_s["peak_pss_mb"], 0)
        large = Measurement(r_l["wall_s"], r_l["cpu_s"], r_l["peak_rss_mb"], r_l["peak_pss_mb"], 0)
        wall_m, wall_0 = _fit(small, large, n_small, n_large, "wall_s")
        cpu_m, cpu_0 = _fit(small, large, n_small, n_large, "cpu_s")
        summary[name] = {
            "marginal_wall_ms": round(wall_m * 1000, 1), "startup_wall_s": round(wall_0, 2),
            "marginal_cpu_ms": round(cpu_m * 1000, 1), "startup_cpu_s": round(cpu_0, 2),
            "peak_rss_mb": [r_s["peak_rss_mb"], r_l["peak_rss_mb"]],
            "peak_pss_mb": [r_s["peak_pss_mb"], r_l["peak_pss_mb"]],
        }
    b, p, f = summary["build"], summary["plain"], summary["floor"]
    summary["ratios"] = {
        "plain_over_build": round(p["marginal_wall_ms"] / b["marginal_wall_ms"], 2),
        "plain_pool_over_build": round(summary["plain_pool"]["marginal_wall_ms"] / b["marginal_wall_ms"], 2),
        "build_over_floor_2core": round(b["marginal_wall_ms"] / (f["marginal_wall_ms"] / 2), 2),
        "build_cpu_over_floor_cpu": round(b["marginal_cpu_ms"] / f["marginal_cpu_ms"], 2),
    }
    results["summary"] = summary
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
