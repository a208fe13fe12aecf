"""Shared fixtures. Real public samples come only through SHARDSMITH_REAL_SAMPLES."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
        pytest.skip("SHARDSMITH_REAL_SAMPLES is not set to the folder of real public samples "
                    "(../shared/real); .ci/run sets it")
    return path
