"""A newcomer's run skips tests that need the real samples or services with one summary line; CI's
run (SHARDSMITH_REQUIRE_*=1, as .ci/run sets) fails them instead. Proven on a tiny suite run in a
subprocess with the project's own conftest loaded as its plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SUITE = '''
import pytest
from skip_policy import need

def test_reads_real_samples(real_samples):
    assert real_samples.is_dir()

@pytest.mark.skipif(True, reason="SHARDSMITH_REAL_SAMPLES lacks cxr-labels/x.csv")
def test_old_style_real_sample_skip():
    pass

def test_needs_redis():
    need("services", "redis-server missing (apt-get install redis-server)")

@pytest.mark.services
def test_marked_service_skip():
    pytest.skip("chromium missing")

def test_unrelated_skip():
    pytest.skip("espeak-ng is not installed")

def test_plain():
    assert 1 + 1 == 2
'''


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_suite.py").write_text(SUITE)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SHARDSMITH_REQUIRE_", "SHARDSMITH_REAL_SAMPLES", "PYTEST_"))}
    clean["PYTHONPATH"] = os.pathsep.join([str(TESTS), clean.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "-p", "conftest",
         "--rootdir", str(tmp_path), "-c", os.devnull, "-o", "markers=services", str(tmp_path)],
        cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, timeout=120,
    )


def test_newcomer_run_skips_with_one_summary_line(tmp_path: Path) -> None:
    res = _run(tmp_path)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert "1 passed, 5 skipped" in out
    lines = [line for line in out.splitlines() if line.startswith("skipped 5:")]
    assert len(lines) == 1, out
    line = lines[0]
    assert "2 need real samples (SHARDSMITH_REAL_SAMPLES" in line
    assert "2 need services (redis-server missing; chromium missing)" in line
    assert "1 other (espeak-ng is not installed)" in line
    assert "SHARDSMITH_REQUIRE_REAL_SAMPLES=1 / SHARDSMITH_REQUIRE_SERVICES=1" in line


def test_ci_run_fails_those_skips(tmp_path: Path) -> None:
    res = _run(tmp_path, SHARDSMITH_REQUIRE_REAL_SAMPLES="1", SHARDSMITH_REQUIRE_SERVICES="1")
    out = res.stdout
    assert res.returncode == 1, out + res.stderr
    # a fixture or skipif mark fails in setup (an error), a skip in the body fails the test
    assert "2 failed, 1 passed, 1 skipped, 2 errors" in out
    for outcome, name in [("ERROR", "test_reads_real_samples"), ("ERROR", "test_old_style_real_sample_skip"),
                          ("FAILED", "test_needs_redis"), ("FAILED", "test_marked_service_skip")]:
        assert f"{outcome} test_suite.py::{name}" in out
    assert "must not be skipped" in out and "requires them" in out
    assert "skipped 1: 1 other (espeak-ng is not installed)" in out


def test_only_the_required_category_fails(tmp_path: Path) -> None:
    res = _run(tmp_path, SHARDSMITH_REQUIRE_SERVICES="1")
    assert res.returncode == 1
    assert "2 failed, 1 passed, 3 skipped" in res.stdout, res.stdout
    assert "skipped 3: 2 need real samples" in res.stdout
