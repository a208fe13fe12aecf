"""A newcomer's run skips tests that need the real samples, services or tools with one summary line;
CI's run (SHARDSMITH_REQUIRE_*=1, as .ci/run sets) fails them instead, and fails any skip without a
category; only the whisperx venv tests may skip there. Proven on tiny suites run in a subprocess with
the project's own conftest loaded as its plugin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CI = {"SHARDSMITH_REQUIRE_REAL_SAMPLES": "1", "SHARDSMITH_REQUIRE_SERVICES": "1", "SHARDSMITH_REQUIRE_TOOLS": "1"}

SUITE = '''
import pytest
from skip_policy import need, need_module, need_tool, requires_module, requires_tool

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

def test_needs_celery():
    need_module("services", "no_such_module_celery_x", "the ops extra")

def test_needs_espeak():
    need_tool("no-such-espeak-ng-x", "makes the synthetic voices")

@requires_tool("no-such-sox-x", "resamples")
def test_needs_sox():
    pass

@requires_module("no_such_torchcodec_x", "tools", "datasets decodes Audio() through torchcodec")
def test_needs_torchcodec():
    pass

def test_whisperx_venv():
    need("whisperx venv", "the gpu extra")

def test_unclassified_skip():
    pytest.skip("flaky network today")

def test_plain():
    assert 1 + 1 == 2
'''

MODULE_SKIP = '''
import pytest
pytest.importorskip("no_such_module_x", reason={reason!r})

def test_never_runs():
    pass
'''


def _run(tmp_path: Path, suite: str = SUITE, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_suite.py").write_text(suite)
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
    assert "1 passed, 10 skipped" in out
    lines = [line for line in out.splitlines() if line.startswith("skipped 10:")]
    assert len(lines) == 1, out
    line = lines[0]
    assert "2 need real samples (SHARDSMITH_REAL_SAMPLES" in line
    assert "3 need services (redis-server missing; chromium missing; python package 'no_such_module_celery_x'" \
           in line
    assert ("3 need tools (no-such-espeak-ng-x missing: makes the synthetic voices; no-such-sox-x missing: "
            "resamples; python package 'no_such_torchcodec_x' missing") in line
    assert "1 need whisperx venv (the gpu extra)" in line
    assert line.index("need whisperx venv") < line.index("1 unclassified (flaky network today)")
    assert ("SHARDSMITH_REQUIRE_REAL_SAMPLES=1 / SHARDSMITH_REQUIRE_SERVICES=1 / SHARDSMITH_REQUIRE_TOOLS=1"
            in line)


def test_ci_run_fails_every_skip_but_the_whisperx_venv(tmp_path: Path) -> None:
    res = _run(tmp_path, **CI)
    out = res.stdout
    assert res.returncode == 1, out + res.stderr
    # a fixture or skipif mark fails in setup (an error), a skip in the body fails the test
    assert "5 failed, 1 passed, 1 skipped, 4 errors" in out
    for outcome, name in [("ERROR", "test_reads_real_samples"), ("ERROR", "test_old_style_real_sample_skip"),
                          ("FAILED", "test_needs_redis"), ("FAILED", "test_marked_service_skip"),
                          ("FAILED", "test_needs_celery"), ("FAILED", "test_needs_espeak"),
                          ("ERROR", "test_needs_sox"), ("ERROR", "test_needs_torchcodec"),
                          ("FAILED", "test_unclassified_skip")]:
        assert f"{outcome} test_suite.py::{name}" in out
    assert "must not be skipped" in out and "requires them" in out
    assert "unclassified skip (flaky network today)" in out
    assert "skipped 1: 1 need whisperx venv (the gpu extra)" in out


def test_only_the_required_category_fails(tmp_path: Path) -> None:
    res = _run(tmp_path, SHARDSMITH_REQUIRE_TOOLS="1")
    out = res.stdout
    assert res.returncode == 1
    # espeak (body) and the unclassified skip fail; sox and torchcodec marks error; the rest skip
    assert "2 failed, 1 passed, 6 skipped, 2 errors" in out, out
    assert "skipped 6: 2 need real samples" in out and "3 need services" in out
    assert "FAILED test_suite.py::test_unclassified_skip" in out


def test_an_unknown_category_is_refused_not_skipped() -> None:
    from skip_policy import need

    with pytest.raises(ValueError, match="skip category 'gpu' is not one of"):
        need("gpu", "no GPU here")


@pytest.mark.parametrize(("reason", "ci_outcome"), [
    ("needs whisperx venv: the gpu extra", "skipped"),
    ("needs tools: torchcodec missing", "error"),
    ("whisperx is not installed", "error"),  # no category: fails under CI too
])
def test_a_module_skipped_while_collecting_follows_the_policy(tmp_path: Path, reason: str,
                                                              ci_outcome: str) -> None:
    suite = MODULE_SKIP.format(reason=reason)
    newcomer = _run(tmp_path, suite)
    no_tests = pytest.ExitCode.NO_TESTS_COLLECTED  # the only module was skipped
    assert newcomer.returncode == no_tests and "1 skipped" in newcomer.stdout, newcomer.stdout
    ci = _run(tmp_path, suite, **CI)
    if ci_outcome == "skipped":
        assert ci.returncode == no_tests and "1 skipped" in ci.stdout, ci.stdout
    else:
        assert ci.returncode != 0 and "1 error" in ci.stdout, ci.stdout


def test_every_skip_in_the_suite_names_a_category() -> None:
    """A static sweep of the test files: every skip goes through skip_policy or a reason it classifies."""
    from skip_policy import category_of

    bare = re.compile(r"pytest\.(skip|importorskip)\(|pytest\.mark\.skipif\(")
    reason = re.compile(r'reason\s*=\s*"([^"]*)"|pytest\.skip\(\s*"([^"]*)"')
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name in ("skip_policy.py", "test_skip_policy.py"):
            continue
        text = path.read_text(encoding="utf-8")
        for m in bare.finditer(text):
            window = text[m.start(): m.start() + 400]
            found = reason.search(window)
            why = (found.group(1) or found.group(2)) if found else ""
            if category_of(why) is None:
                line = text.count("\n", 0, m.start()) + 1
                offenders.append(f"{path.relative_to(REPO)}:{line}: {why or window.splitlines()[0]}")
    assert not offenders, "skips without a category (use skip_policy.need / need_tool / requires_*):\n" + \
        "\n".join(offenders)


def test_ci_entry_point_requires_every_category() -> None:
    """.ci/run sets the variable of every category that must not skip in CI."""
    from skip_policy import REQUIRE_VARS

    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for var in REQUIRE_VARS.values():
        assert re.search(rf"\b{var}=1\b", script), f".ci/run does not set {var}=1"
