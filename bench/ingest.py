"""Medical ingest: ``shardsmith build`` vs the plain script (one process and a Pool) vs the
decode/encode floor (one core and both cores).

Each is run as its own process on the same cached VinDr-layout DICOMs at two dataset sizes, so the
start-up cost (intercept) and the marginal cost per image (slope) separate:
``marginal = (t_large - t_small) / (n_large - n_small)``. Peak memory is the process tree's. Every
contender runs on each image texture (``SHARDSMITH_BENCH_TEXTURES``, default noisy and smooth
radiographs: issue 24 target 6), side by side, so the ratios of one texture come from one run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
from pathlib import Path

from bench.data import TEXTURES, cache_root, vindr_dataset
from bench.procmon import Measurement, load_average, measure

REPEAT = int(os.environ.get("SHARDSMITH_BENCH_REPEAT", "3"))  # each size this often; medians reported
SIZES = tuple(int(s) for s in os.environ.get("SHARDSMITH_BENCH_SIZES", "100,400").split(","))
BENCH_TEXTURES = tuple(os.environ.get("SHARDSMITH_BENCH_TEXTURES", ",".join(TEXTURES)).split(","))
BENCH_KEY = "bench-only-pseudonym-key"
CONTENDERS = ("floor", "floor_2core", "plain", "plain_pool", "build")


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


def _tag(raw: Path, n: int) -> str:
    """``<n>`` for the noisy set (the name the reading bench looks for), ``<texture>-<n>`` otherwise."""
    return raw.name.removeprefix("vindr-")


def run_build(raw: Path, n: int) -> tuple[Measurement, Path]:
    home = cache_root() / f"run-build-{_tag(raw, n)}"
    shutil.rmtree(home, ignore_errors=True)
    (home / "raw").mkdir(parents=True)
    (home / "raw" / "vindr_cxr").symlink_to(raw)
    exe = Path(sys.executable).with_name("shardsmith")
    m = measure([str(exe), "build", "--home", str(home)], env=_env(), log=home.with_suffix(".log"))
    return m, home


def run_plain(raw: Path, n: int) -> Measurement:
    out = cache_root() / f"run-plain-{_tag(raw, n)}"
    shutil.rmtree(out, ignore_errors=True)
    return measure([sys.executable, "-m", "bench.plain_script", str(raw), str(out)], env=_env(),
                   log=out.with_suffix(".log"))


def run_plain_pool(raw: Path, n: int) -> Measurement:
    """The plain script with its decoding on a ``multiprocessing.Pool`` over every core."""
    out = cache_root() / f"run-plain-pool-{_tag(raw, n)}"
    shutil.rmtree(out, ignore_errors=True)
    return measure([sys.executable, "-m", "bench.plain_script", str(raw), str(out), "--pool"], env=_env(),
                   log=out.with_suffix(".log"))


def run_floor(raw: Path, n: int) -> Measurement:
    return measure([sys.executable, "-m", "bench.floor", str(raw)], env=_env(),
                   log=cache_root() / f"run-floor-{_tag(raw, n)}.log")


def run_floor_2core(raw: Path, n: int) -> Measurement:
    """The floor split over two processes: what a perfect use of two cores would reach."""
    return measure([sys.executable, "-m", "bench.floor", str(raw), "--cores", "2"], env=_env(),
                   log=cache_root() / f"run-floor-2core-{_tag(raw, n)}.log")


RUNNERS = {"floor": run_floor, "floor_2core": run_floor_2core, "plain": run_plain, "plain_pool": run_plain_pool,
           "build": run_build}


def _fit(small: Measurement, large: Measurement, n_small: int, n_large: int, attr: str) -> tuple[float, float]:
    """(marginal seconds per image, intercept seconds) of a straight line through two sizes."""
    a, b = getattr(small, attr), getattr(large, attr)
    marginal = (b - a) / (n_large - n_small)
    return marginal, a - marginal * n_small


def run() -> dict:
    """Measure every contender at both sizes on every texture; returns a JSON-ready dict."""
    results: dict = {"sizes": list(SIZES), "textures": list(BENCH_TEXTURES), "load_before": round(load_average(), 2),
                     "runs": {}}
    for texture in BENCH_TEXTURES:
        for n in SIZES:
            raw = vindr_dataset(n, texture)
            _warm(raw)
            for name in CONTENDERS:
                tries = []
                for _ in range(REPEAT):
                    m = RUNNERS[name](raw, n)
                    if name == "build":
                        m, home = m
                        results[f"build_home_{texture}_{n}"] = str(home)
                    if m.returncode != 0:
                        raise RuntimeError(f"{name} failed on {n} {texture} images (rc={m.returncode}); "
                                           f"see logs in {cache_root()}")
                    tries.append(m.to_dict() | {"load": round(load_average(), 2)})
                    print(f"ingest {texture:6s} {name:11s} n={n:4d}: {tries[-1]}", flush=True)
                # the median of each figure over the tries (the machine is shared: single runs are noisy)
                results["runs"][f"{texture}:{name}-{n}"] = {
                    k: statistics.median(t[k] for t in tries) if isinstance(tries[0][k], (int, float)) else tries[0][k]
                    for k in tries[0]} | {"tries": tries}
    return summarise(results)


def _summary_of(results: dict, texture: str) -> dict:
    n_small, n_large = results["sizes"][0], results["sizes"][-1]
    summary = {}
    for name in CONTENDERS:
        r_s, r_l = results["runs"][f"{texture}:{name}-{n_small}"], results["runs"][f"{texture}:{name}-{n_large}"]
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
    b, f, f2 = summary["build"], summary["floor"], summary["floor_2core"]

    def ratio(a: float, c: float) -> float | None:
        return round(a / c, 2) if c > 0 else None

    summary["ratios"] = {  # targets (issue 24): build_over_floor_2core <= 1.25, plain_over_build >= 1.6
        "plain_over_build": ratio(summary["plain"]["marginal_wall_ms"], b["marginal_wall_ms"]),
        "plain_pool_over_build": ratio(summary["plain_pool"]["marginal_wall_ms"], b["marginal_wall_ms"]),
        "build_over_floor_2core": ratio(b["marginal_wall_ms"], f2["marginal_wall_ms"]),
        "floor_over_floor_2core": ratio(f["marginal_wall_ms"], f2["marginal_wall_ms"]),
        "build_cpu_over_floor_cpu": ratio(b["marginal_cpu_ms"], f["marginal_cpu_ms"]),
    }
    return summary


def summarise(results: dict) -> dict:
    results["summary"] = {texture: _summary_of(results, texture) for texture in results["textures"]}
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
