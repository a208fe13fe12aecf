"""``make bench``: every benchmark of issue 8, a markdown summary on stdout, JSON beside the cache.

    .venv/bin/python -m bench.run_all            # all
    .venv/bin/python -m bench.run_all ingest     # some: ingest reading volumes speech

Inputs are generated deterministically into ``SHARDSMITH_BENCH_CACHE`` (default
``/tmp/shardsmith-bench``, about 4 GB) on first use; ``SHARDSMITH_BENCH_SIZES`` (default
``160,320``) sets the two ingest sizes: both large enough that every one of the 8 hash-bucket
partitions holds more images than the per-partition previews sample (12), so the bounded
per-partition costs land in the start-up term and not in the marginal cost. The raw JSON goes to ``<cache>/results.json``; the numbers
that matter are copied by hand into ``bench/RESULTS.md`` with the command and the machine state.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

from bench.data import cache_root

ALL = ("ingest", "reading", "volumes", "speech", "scale", "dupes", "views", "startup", "jpeg", "volume_memory",
       "fixed_cost", "pretraining")
# benchmarks that are their own scripts: run in a fresh process, their printed summary kept
SCRIPTS = {"dupes": ["-m", "bench.dupes"], "views": ["-m", "bench.views", "2000"], "startup": ["-m", "bench.startup"],
           "jpeg": ["-m", "bench.jpeg"], "volume_memory": ["-m", "bench.volume_memory"],
           "fixed_cost": ["-m", "bench.fixed_cost"], "pretraining": ["-m", "bench.pretraining", "377110"]}


def _markdown(results: dict) -> str:
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}; "
             f"workers: {os.environ.get('SHARDSMITH_WORKERS', 'default (all cores)')}"]
    ing = results.get("ingest")
    if ing:
        n0, n1 = ing["sizes"][0], ing["sizes"][-1]
        for texture, s in ing["summary"].items():
            lines += ["", f"| ingest, {texture} ({n0} / {n1} images) | marginal wall ms/img | start-up s "
                          f"| marginal CPU ms/img | peak RSS MB ({n0} / {n1}) | peak PSS MB ({n0} / {n1}) |",
                      "| --- | ---: | ---: | ---: | ---: | ---: |"]
            for name in ("build", "plain", "plain_pool", "floor", "floor_2core"):
                r = s[name]
                lines.append(f"| {name} | {r['marginal_wall_ms']} | {r['startup_wall_s']} | {r['marginal_cpu_ms']} "
                             f"| {r['peak_rss_mb'][0]:.0f} / {r['peak_rss_mb'][1]:.0f} "
                             f"| {r['peak_pss_mb'][0]:.0f} / {r['peak_pss_mb'][1]:.0f} |")
            lines.append(f"\nratios ({texture}): {json.dumps(s['ratios'])}")
    rd = results.get("reading")
    if rd and "samples" in rd:
        lines += ["", f"| reading ({rd['samples']} samples) | samples/s |", "| --- | ---: |"]
        lines += [f"| {k} | {v['samples_per_s']} |" for k, v in rd.items() if isinstance(v, dict) and "seconds" in v]
        lines.append(f"\nratios: {json.dumps(rd['ratios'])}")
    for key in ("volumes", "speech", "scale", *SCRIPTS):
        if key in results:
            lines.append(f"\n{key}: {json.dumps(results[key])}")
    return "\n".join(lines)


def main(which: list[str]) -> int:
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv}
    t0 = time.perf_counter()
    if "ingest" in which:
        from bench import ingest

        results["ingest"] = ingest.run()
    if "reading" in which:
        from bench import ingest, reading

        home = cache_root() / f"run-build-{max(ingest.SIZES)}"
        if (home / "releases").is_dir():
            results["reading"] = reading.run(home / "releases")
        else:
            results["reading"] = {"measured": False, "reason": f"no release under {home}; run ingest first"}
    if "volumes" in which:
        from bench import volumes

        results["volumes"] = volumes.run()
    for key, args in SCRIPTS.items():
        if key in which:
            import subprocess

            proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
            results[key] = {"returncode": proc.returncode, "output": proc.stdout.strip().splitlines()[-12:]}
    if "scale" in which:
        from bench import scale

        results["scale"] = scale.run(None, int(os.environ.get("SHARDSMITH_BENCH_REPEAT", "3")))
    if "speech" in which:
        from bench import speech

        results["speech"] = speech.run()
    results["total_s"] = round(time.perf_counter() - t0, 1)
    out = cache_root() / f"results-{'-'.join(w for w in ALL if w in which)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(_markdown(results))
    print(f"\n(total {results['total_s']} s; raw results in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main([a for a in sys.argv[1:] if a in ALL] or list(ALL)))
