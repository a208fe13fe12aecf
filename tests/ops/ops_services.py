"""Start throwaway services on loopback for the ops tests; each helper skips with a reason when
its binaries are missing (scripts/bootstrap.sh installs them, so CI runs these tests)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import skip_policy
from skip_policy import need

REPO = Path(__file__).resolve().parents[2]
PY = REPO / ".venv" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def need_module(name: str) -> None:
    skip_policy.need_module("services", name, "run scripts/bootstrap.sh (the `ops` extra)")


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        need("services", "PostgreSQL server binaries missing (apt-get install postgresql; scripts/bootstrap.sh does it)")
    return Path(found[-1]).parent


@contextlib.contextmanager
def postgres() -> Iterator[dict]:
    """A fresh cluster (trust auth) in a temp dir on a free loopback port, stopped afterwards.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
    """
    bindir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="shardsmith-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            need("services", "running as root and there is no `postgres` user to own the cluster")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "shardsmith",
                    "--no-sync"], check=True, capture_output=True)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
                    "-w", "-t", "30", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*as_user, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "shardsmith",
                        "dagster"], check=True, capture_output=True)
        yield {"host": "127.0.0.1", "port": port, "user": "shardsmith", "password": "", "db": "dagster"}
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    exe = shutil.which("redis-server")
    if not exe:
        need("services", "redis-server missing (apt-get install redis-server; scripts/bootstrap.sh does it)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="shardsmith-redis-")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 15, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate a process we started (its whole group when it leads one), then kill if it lingers."""
    if proc.poll() is not None:
        return
    try:
        pgid = os.getpgid(proc.pid)
        target = (lambda sig: os.killpg(pgid, sig)) if pgid == proc.pid else proc.send_signal
    except ProcessLookupError:
        return
    import signal

    with contextlib.suppress(ProcessLookupError):
        target(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            target(signal.SIGKILL)
        proc.wait(5)


def demo_home(root: Path, sources: tuple[str, ...] = ("vindr_cxr",)) -> Path:
    """The core demo's raw layouts, keeping only ``sources`` (small and fast)."""
    from shardsmith.demo import cxr_core

    home = root / "home"
    cxr_core.write_demo(home / "raw")
    for d in (home / "raw").iterdir():
        if d.name not in sources:
            shutil.rmtree(d)
    return home
