"""Run a command and measure it: wall time, CPU time and peak memory of its whole process tree.

Memory is sampled from ``/proc`` every ``interval`` seconds (no psutil dependency). Two numbers
are kept because forked workers share their parent's pages copy-on-write: ``peak_rss_mb`` sums
the RSS of every process in the tree (counts shared pages once per process, an upper bound) and
``peak_pss_mb`` sums the proportional set size (shared pages split between their users, which is
what the tree really occupies).
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Measurement:
    wall_s: float
    cpu_s: float  # user + system of the whole tree (workers of a fork server are not waited for by
    # the command itself, so their CPU is sampled from /proc; the last < interval of each is missed)
    peak_rss_mb: float
    peak_pss_mb: float
    returncode: int
    peak_proc_rss_mb: float = 0.0  # the largest RSS any single process of the tree reached
    peak_proc: str = ""  # that process's command line (shortened)

    def to_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            out += [int(c) for c in text.split()]
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants alive right now."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += _children(p)
    return found


def _kb(path: str, key: str) -> int:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def tree_memory_mb(pid: int) -> tuple[float, float]:
    """(sum of RSS, sum of PSS) over the process tree of ``pid``, in MiB."""
    rss = pss = 0
    for p in tree(pid):
        rss += _kb(f"/proc/{p}/status", "VmRSS:")
        pss += _kb(f"/proc/{p}/smaps_rollup", "Pss:")
    return rss / 1024, pss / 1024


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return ""


def measure(cmd: list[str], *, env: dict[str, str] | None = None, cwd: str | Path | None = None,
            interval: float = 0.05, log: Path | None = None) -> Measurement:
    """Run ``cmd`` to completion and return its measurement; output goes to ``log`` (or nowhere)."""
    peak = [0.0, 0.0]
    proc_peak: list = [0.0, ""]
    cpu_seen: dict[int, float] = {}  # CPU of every process of the tree, last sample per pid
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                rss, pss = tree_memory_mb(proc.pid)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
                for p in tree(proc.pid):
                    cpu_seen[p] = max(cpu_seen.get(p, 0.0), cpu_seconds(p))
                    one = _kb(f"/proc/{p}/status", "VmRSS:") / 1024
                    if one > proc_peak[0]:
                        proc_peak[0], proc_peak[1] = one, _cmdline(p)
                stop.wait(interval)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        rc = proc.wait()
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
    finally:
        if log:
            out.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # rusage covers the command and the descendants it waited for, exactly; a fork server's workers
    # are reaped by the server, which nobody waits for, so the sampled sum is the better total then.
    waited = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu = max(waited, sum(cpu_seen.values()))
    return Measurement(wall, cpu, peak[0], peak[1], rc, proc_peak[0], proc_peak[1])


def load_average() -> float:
    """1-minute load average: other work on the machine skews wall times, so results record it."""
    return os.getloadavg()[0]
