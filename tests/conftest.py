"""Shared fixtures. Real public samples come only through SHARDSMITH_REAL_SAMPLES; skips for want of
them or of services follow tests/skip_policy.py (one summary line; failures under .ci/run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from skip_policy import classify, need, summary_line

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
    """Name the category of a skip for want of real samples or services; under
    SHARDSMITH_REQUIRE_REAL_SAMPLES / SHARDSMITH_REQUIRE_SERVICES such a skip is a failure."""
    outcome = yield
    classify(item, outcome.get_result())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line saying what was skipped and why (the per-test list stays behind ``-rs``)."""
    line = summary_line(terminalreporter.stats.get("skipped", []))
    if line:
        terminalreporter.write_line(line, yellow=True)
