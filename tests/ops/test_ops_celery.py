"""A partitioned backfill executed by real Celery worker processes through a real Redis broker."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ops_services import REPO, demo_home, need_module, redis_server, stop

pytestmark = pytest.mark.services


def test_partitions_run_on_celery_workers(tmp_path):
    need_module("dagster_celery")
    need_module("redis")
    home = demo_home(tmp_path)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:  # create the SQLite schema once,
        instance.get_runs(limit=1)  # before the worker and the driver both open it
    bindir = Path(sys.executable).parent
    with redis_server() as broker:
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "SHARDSMITH_HOME": str(home),
               "SHARDSMITH_EXECUTOR": "celery", "SHARDSMITH_CELERY_BROKER": broker,
               "SHARDSMITH_CELERY_BACKEND": broker, "SHARDSMITH_DEMO": "1",
               # prefork Celery workers are daemonic processes: decode in the worker itself
               "SHARDSMITH_WORKERS": "1", "PYTHONPATH": str(REPO),
               "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
        log = open(tempfile.mktemp(prefix="celery-worker-", suffix=".log"), "w")
        worker = subprocess.Popen(
            [str(bindir / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
             "-y", str(REPO / "deploy" / "dagster-celery.yaml"), "--name", "shardsmith-test",
             "--", "--concurrency", "4"],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        driver = subprocess.Popen([sys.executable, str(Path(__file__).with_name("celery_backfill.py")),
                                   "vindr_cxr"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 150
            while driver.poll() is None and worker.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            stop(driver)
            stop(worker)
            log.close()
        out, err = driver.communicate()
        worker_log = Path(log.name).read_text()
        runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert driver.returncode == 0, err[-3000:] + "\n--- worker ---\n" + worker_log[-3000:]
    assert [r["run"] for r in runs] == ["catalog", *(f"b{i:02d}" for i in range(8))]
    assert all(r["success"] for r in runs) and all(r["celery"] for r in runs[1:])
    assert "execute_plan" in worker_log and "succeeded" in worker_log, worker_log[-2000:]
    staging = home / "staging" / "vindr_cxr"
    assert sorted(p.name for p in staging.glob("records-*.parquet")) == [f"records-b{i:02d}.parquet" for i in range(8)]
    assert not (staging / "records.parquet").exists()
    counts = [json.loads((staging / f"counts-b{i:02d}.json").read_text()) for i in range(8)]
    assert sum(c["items_ok"] for c in counts) == 4
