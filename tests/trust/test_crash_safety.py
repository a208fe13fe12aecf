"""Crash safety, mutual exclusion and reproducibility of release builds.

A build subprocess is SIGKILLed at each named publish stage and at random moments; afterwards
``LATEST`` must point at a complete release that verifies, no visible ``vN`` may lack a manifest or
fail verification, and the next build must succeed and produce the same content as an
uninterrupted one. Two processes may not publish one collection at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shardsmith.config import Settings
from shardsmith.demo import cxr_core
from shardsmith.loaders import open_release
from shardsmith.pipeline.releases import build_release
from shardsmith.publish import release as R
from shardsmith.sources.medical.nih_cxr14 import NihCxr14
from shardsmith.sources.medical.vindr_cxr import VinDrCxr
from shardsmith.staging.runner import run_source

SOURCES = ["nih_cxr14", "vindr_cxr"]
STAGES = ["started", "table:records", "tables_written", "manifest_written", "renamed", "latest_written"]
CHILD = """
import os, signal, sys, time
from pathlib import Path
from shardsmith.config import Settings
from shardsmith.pipeline.releases import build_release

home, stage, marker = sys.argv[1], sys.argv[2], sys.argv[3]

def hook(name):
    if name == stage == "started" and marker != "-":
        Path(marker).write_text("locked")  # tell the parent we hold the lock, then wait to be killed
        time.sleep(120)
    elif name == stage:
        os.kill(os.getpid(), signal.SIGKILL)

t0 = time.monotonic()
result = build_release(Settings(home=Path(home)), "medical", sys.argv[4].split(","), crash_hook=hook)
print("PUBLISHED", result.version, result.content_digest, round(time.monotonic() - t0, 3), flush=True)
"""


def _spawn(home: Path, stage: str = "-", marker: str = "-") -> subprocess.Popen:
    env = dict(os.environ, SHARDSMITH_WORKERS="1")
    return subprocess.Popen([sys.executable, "-c", CHILD, str(home), stage, marker, ",".join(SOURCES)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def base_home(tmp_path_factory) -> Path:
    """v1 published from VinDr alone; NIH staged afterwards, so the next build has new content."""
    home = tmp_path_factory.mktemp("crash-base")
    os.environ["SHARDSMITH_WORKERS"] = "1"
    try:
        cxr_core.write_vindr(home / "raw" / "vindr_cxr")
        cxr_core.write_nih(home / "raw" / "nih_cxr14")
        settings = Settings(home=home)
        run_source(settings, VinDrCxr())
        assert build_release(settings, "medical", ["vindr_cxr"]).version == "v1"
        run_source(settings, NihCxr14())
    finally:
        os.environ.pop("SHARDSMITH_WORKERS", None)
    return home


def _copy(base: Path, dest: Path) -> Path:
    for part in ("staging", "releases"):
        shutil.copytree(base / part, dest / part, symlinks=True)
    return dest


RANDOM_SEEDS = [1, 2]


@pytest.fixture(scope="module")
def runs(base_home, tmp_path_factory) -> dict:
    """All the build children at once (they are independent homes): one kill per stage, kills at
    random moments, and one child that holds the lock; plus an uninterrupted reference build."""
    procs: dict[str, tuple[Path, subprocess.Popen]] = {}
    for name in STAGES:
        home = _copy(base_home, tmp_path_factory.mktemp("crash"))
        procs[name] = (home, _spawn(home, name))
    lock_home = _copy(base_home, tmp_path_factory.mktemp("crash-lock"))
    marker = lock_home / "holding-lock"
    procs["lock"] = (lock_home, _spawn(lock_home, "started", str(marker)))
    timers = []
    for seed in RANDOM_SEEDS:
        home = _copy(base_home, tmp_path_factory.mktemp("crash-random"))
        proc = _spawn(home)
        procs[f"random-{seed}"] = (home, proc)
        # Children share the cores, so a build takes 10-25 s here; the offsets cover start-up,
        # validation and publishing alike.
        timers.append(threading.Timer(random.Random(seed).uniform(2.0, 20.0), proc.send_signal, [signal.SIGKILL]))
        timers[-1].start()
    done: dict = {"lock": {"home": lock_home, "proc": procs["lock"][1], "marker": marker}}
    try:
        for name, (home, proc) in procs.items():
            if name == "lock":
                continue
            out, err = proc.communicate(timeout=300)
            done[name] = {"home": home, "rc": proc.returncode, "out": out, "err": err[-3000:]}
    finally:
        for t in timers:
            t.cancel()
    # The reference: the same build, uninterrupted, in this process.
    ref_home = _copy(base_home, tmp_path_factory.mktemp("crash-ref"))
    result = build_release(Settings(home=ref_home), "medical", SOURCES)
    assert result.version == "v2" and result.created
    done["reference"] = {"home": ref_home}
    done["digest"] = result.content_digest
    yield done
    procs["lock"][1].kill()
    procs["lock"][1].communicate(timeout=60)


def assert_consistent(home: Path) -> str:
    """LATEST names a complete release that verifies; every visible version is complete."""
    coll = home / "releases" / "medical"
    visible = sorted(p.name for p in coll.iterdir() if not p.name.startswith("."))
    versions = R.list_versions(coll)
    assert set(visible) == set(versions) | {"LATEST"}, f"unexpected visible entries: {visible}"
    latest = R.read_latest(coll)
    assert latest in versions
    assert open_release(home / "releases", "medical").verify().ok
    for v in versions:
        assert (coll / v / "manifest.json").is_file(), f"{v} is visible without a manifest"
        assert open_release(home / "releases", "medical", version=v).verify().ok
    return latest


def _next_build_succeeds(home: Path, digest: str) -> None:
    """The next build works, and gives the same content as a build nobody interrupted."""
    result = build_release(Settings(home=home), "medical", SOURCES)
    assert result.content_digest == digest
    assert R.read_latest(home / "releases" / "medical") == result.version
    assert assert_consistent(home) == result.version
    assert not list((home / "releases" / "medical").glob(".tmp-*")), "leftovers were not cleaned up"


@pytest.mark.parametrize("stage", STAGES)
def test_kill_at_stage_leaves_latest_complete(stage, runs):
    run = runs[stage]
    assert run["rc"] == -signal.SIGKILL, (run["out"], run["err"])
    latest = assert_consistent(run["home"])
    assert latest == ("v2" if stage == "latest_written" else "v1")
    _next_build_succeeds(run["home"], runs["digest"])


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_kill_at_random_moment(seed, runs):
    run = runs[f"random-{seed}"]
    assert run["rc"] in (0, -signal.SIGKILL), run["err"]
    assert assert_consistent(run["home"]) in {"v1", "v2"}
    _next_build_succeeds(run["home"], runs["digest"])


def test_two_builds_cannot_publish_at_once(runs, monkeypatch):
    lock = runs["lock"]
    proc, home = lock["proc"], lock["home"]
    deadline = time.monotonic() + 120
    while not lock["marker"].exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.1)
    monkeypatch.setattr(R, "LOCK_TIMEOUT_S", 0.2)
    with pytest.raises(R.ReleaseLockedError, match="another build is publishing 'medical'"):
        build_release(Settings(home=home), "medical", SOURCES)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert assert_consistent(home) == "v1"
    _next_build_succeeds(home, runs["digest"])  # a dead holder's lock does not block the next build


def test_shards_carry_no_wall_clock_time(runs):
    rel = open_release(runs["reference"]["home"] / "releases", "medical")
    now = dt.datetime.now(dt.UTC)
    needles = {now.strftime("%Y-%m-%d"), now.strftime("%Y%m%d"), now.strftime("%d/%m/%Y"),
               str(int(time.time()))[:6]}
    files = [p for p in rel.path.rglob("*") if p.is_file() and p.relative_to(rel.path).parts[0] in ("data", "wds")]
    assert any(p.suffix == ".tar" for p in files) and any(p.suffix == ".parquet" for p in files)
    for p in files:
        if p.suffix == ".tar":
            with tarfile.open(p) as tf:
                for m in tf.getmembers():
                    assert m.mtime == 0 and m.uid == 0 and m.gid == 0, (p, m.name, m.mtime)
                    if m.name.endswith(".json"):
                        text = tf.extractfile(m).read().decode()
                        assert not any(n in text for n in needles), (p, m.name)
        else:
            meta = pq.read_metadata(p)
            kv = {k.decode(): v.decode(errors="replace") for k, v in (meta.metadata or {}).items()}
            assert not any(re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", v) for v in kv.values()), kv.keys()
            assert not re.search(r"\d{2}:\d{2}:\d{2}", meta.created_by or "")
        blob = p.read_bytes()
        assert not any(n.encode() in blob for n in needles), f"{p} holds a timestamp"
    manifest = json.loads((rel.path / "manifest.json").read_text())
    assert manifest["created"]  # the manifest, outside the digest, is the one place that records time
