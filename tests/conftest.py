"""Shared fixtures. Real public samples come only through SHARDSMITH_REAL_SAMPLES; every skip follows
tests/skip_policy.py (a category, one summary line; failures under .ci/run, unclassified ones too)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from skip_policy import classify, classify_collection, need, summary_line

# Tests use a fixed key; the key must never appear in any output (checked in test_deid).
os.environ.setdefault("SHARDSMITH_PSEUDONYM_KEY", "test-key-4b1d0c9e")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


def real_samples_dir() -> Path | None:
    value = os.environ.get("SHARDSMITH_REAL_SAMPLES")
    if not value or not Path(value).is_dir():
        return None
    return Path(value)


@pytest.fixture(scope="session")
def real_samples() -> Path:
    path = real_samples_dir()
    if path is None:
        need("real samples", "SHARDSMITH_REAL_SAMPLES is not set to the folder of real public samples "
                             "(../shared/real); .ci/run sets it")
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Name the category of a skip; under SHARDSMITH_REQUIRE_<category> such a skip is a failure,
    and under any SHARDSMITH_REQUIRE_* so is a skip without a category."""
    outcome = yield
    classify(item, outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same policy for a module skipped while it is collected (``importorskip`` at module level)."""
    outcome = yield
    classify_collection(outcome.get_result())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line saying what was skipped and why (the per-test list stays behind ``-rs``)."""
    line = summary_line(terminalreporter.stats.get("skipped", []))
    if line:
        terminalreporter.write_line(line, yellow=True)


@pytest.fixture()
def nih_home(tmp_path, monkeypatch):
    """A home with the NIH demo files under raw/, the demo key, and no persistent Dagster instance."""
    from shardsmith.demo import cxr_core

    monkeypatch.setenv("SHARDSMITH_DEMO", "1")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    cxr_core.write_nih(tmp_path / "raw" / "nih_cxr14")
    return tmp_path
