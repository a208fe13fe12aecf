"""When a test may skip, under which category, and how that is reported.

Every skip names its category (``needs <category>: <why>``, through :func:`need`,
:func:`need_tool`, :func:`need_module` or the ``requires_*`` marks below):

* ``real samples``: the real public sample files (``SHARDSMITH_REAL_SAMPLES``);
* ``services``: PostgreSQL, Redis, Celery (``dagster_celery``), Chromium;
* ``tools``: programs and native libraries the bootstrap installs: espeak-ng, sox, FFmpeg and
  torchcodec (which loads FFmpeg);
* ``whisperx venv``: tests that run only in ``.venv-whisperx`` (``make test-whisperx``).

A newcomer's ``make test`` skips what is missing and prints one summary line saying what was
skipped and why. CI (``.ci/run``) sets ``SHARDSMITH_REQUIRE_REAL_SAMPLES``,
``SHARDSMITH_REQUIRE_SERVICES`` and ``SHARDSMITH_REQUIRE_TOOLS``: a skip of that kind is then a
failure, so a broken install step cannot pass as a green run of skips. ``whisperx venv`` is the
only category allowed to skip there. A skip whose category is not listed here (a bare
``pytest.skip``) is reported as unclassified, and fails whenever any ``SHARDSMITH_REQUIRE_*`` is
set, so a new unclassified skip cannot slip into CI.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections import Counter, defaultdict
from typing import NoReturn

import pytest

# Skip category -> the environment variable that makes such a skip a failure.
REQUIRE_VARS = {"real samples": "SHARDSMITH_REQUIRE_REAL_SAMPLES", "services": "SHARDSMITH_REQUIRE_SERVICES",
                "tools": "SHARDSMITH_REQUIRE_TOOLS"}
# Categories that may skip even under CI, with the reason they may.
NEVER_REQUIRED = {"whisperx venv": "runs only in .venv-whisperx (make test-whisperx), not in make test"}
CATEGORIES = frozenset(REQUIRE_VARS) | frozenset(NEVER_REQUIRED)
UNCLASSIFIED = "unclassified"
# Skips that predate ``need()`` are recognised by what their reason mentions, or by the test's marker.
REASON_PATTERNS = {"real samples": re.compile(r"SHARDSMITH_REAL_SAMPLES")}
MARKER_CATEGORIES = {"services": "services"}
_PREFIX = re.compile(r"^needs (?P<cat>[a-z ]+): (?P<why>.*)$", re.S)


def required(category: str) -> bool:
    var = REQUIRE_VARS.get(category)
    return bool(var) and os.environ.get(var, "") not in ("", "0")


def strict() -> bool:
    """Any ``SHARDSMITH_REQUIRE_*`` set (CI): unclassified skips fail too."""
    return any(required(c) for c in REQUIRE_VARS)


def need(category: str, reason: str) -> NoReturn:
    """Skip (``needs <category>: <reason>``), or fail when the category is required."""
    if category not in CATEGORIES:
        raise ValueError(f"skip category {category!r} is not one of {sorted(CATEGORIES)} (tests/skip_policy.py)")
    if required(category):
        pytest.fail(f"{reason} ({REQUIRE_VARS[category]}=1: this must not be skipped)", pytrace=False)
    pytest.skip(f"needs {category}: {reason}")


def need_tool(exe: str, why: str) -> str:
    """The path of program ``exe``, or a ``tools`` skip naming what it is for."""
    path = shutil.which(exe)
    if path is None:
        need("tools", f"{exe} missing: {why}")
    return path


def need_module(category: str, module: str, why: str) -> None:
    """Skip under ``category`` unless the Python package ``module`` imports."""
    try:
        __import__(module)
    except ImportError:
        need(category, f"python package {module!r} missing: {why}")


def requires_tool(exe: str, why: str) -> pytest.MarkDecorator:
    """A skipif mark for a test that needs program ``exe`` (category ``tools``)."""
    return pytest.mark.skipif(shutil.which(exe) is None, reason=f"needs tools: {exe} missing: {why}")


def requires_module(module: str, category: str, why: str) -> pytest.MarkDecorator:
    """A skipif mark for a test that needs the Python package ``module``, found without importing it."""
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason=f"needs {category}: python package {module!r} missing: {why}")


def category_of(reason: str, markers: set[str] = frozenset()) -> str | None:
    """The listed category a skip reason names, or None (unclassified)."""
    m = _PREFIX.match(reason)
    if m:
        return m["cat"] if m["cat"] in CATEGORIES else None
    for cat, pattern in REASON_PATTERNS.items():
        if pattern.search(reason):
            return cat
    return next((cat for marker, cat in MARKER_CATEGORIES.items() if marker in markers), None)


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    lr = report.longrepr
    text = lr[2] if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
    return text.removeprefix("Skipped: ")


def _why(reason: str) -> str:
    m = _PREFIX.match(reason)
    return m["why"] if m else reason


def verdict(reason: str, markers: set[str] = frozenset()) -> tuple[str | None, str | None]:
    """(category, failure message or None) of one skip under the current environment."""
    cat = category_of(reason, markers)
    if cat is None:
        if strict():
            return None, (f"unclassified skip ({reason}): give it a category in tests/skip_policy.py "
                          f"({', '.join(sorted(CATEGORIES))}); under SHARDSMITH_REQUIRE_* it is a failure")
        return None, None
    if required(cat):
        return cat, f"skipped for want of {cat} ({_why(reason)}), but {REQUIRE_VARS[cat]}=1 requires them"
    return cat, None


def classify(item: pytest.Item, report: pytest.TestReport) -> None:
    """Prefix a categorised skip's reason (``needs <category>: ``) or turn it into a failure."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report)
    cat, failure = verdict(reason, {m.name for m in item.iter_markers()})
    if failure:
        report.outcome = "failed"
        report.longrepr = failure
    elif cat is not None and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        path, line, _ = report.longrepr
        report.longrepr = (path, line, f"Skipped: needs {cat}: {_why(reason)}")


def classify_collection(report: pytest.CollectReport) -> None:
    """A module skipped while collecting (``importorskip`` at module level) follows the same policy;
    a failure here is a collection error, which stops the run."""
    if not report.skipped:
        return
    _, failure = verdict(skip_reason(report))
    if failure:
        report.outcome = "failed"
        report.longrepr = failure


def summary_line(reports: list[pytest.TestReport]) -> str | None:
    """One line: how many tests were skipped, per category, with their distinct reasons."""
    if not reports:
        return None
    counts: Counter[str] = Counter()
    whys: dict[str, list[str]] = defaultdict(list)
    for rep in reports:
        reason = skip_reason(rep)
        cat = category_of(reason) or UNCLASSIFIED
        counts[cat] += 1
        why = _why(reason).split(";")[0].split(" (")[0].strip()
        if why not in whys[cat]:
            whys[cat].append(why)
    parts = []
    for cat, n in sorted(counts.items(), key=lambda kv: (kv[0] == UNCLASSIFIED, kv[0])):
        shown = "; ".join(whys[cat][:3]) + ("; ..." if len(whys[cat]) > 3 else "")
        parts.append(f"{n} need {cat} ({shown})" if cat != UNCLASSIFIED else f"{n} {UNCLASSIFIED} ({shown})")
    hint = " / ".join(f"{v}=1" for c, v in REQUIRE_VARS.items() if counts.get(c))
    tail = f"; {hint} (as .ci/run sets) makes these failures" if hint else ""
    return f"skipped {sum(counts.values())}: " + ", ".join(parts) + tail
