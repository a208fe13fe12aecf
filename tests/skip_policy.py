"""When a test may skip for want of the real public samples or a service, and how that is reported.

A newcomer's ``make test`` (no ``../shared/real``, no PostgreSQL/Redis/Chromium) skips those tests
and prints one summary line saying what was skipped and why. CI (``.ci/run``) sets
``SHARDSMITH_REQUIRE_REAL_SAMPLES=1`` and ``SHARDSMITH_REQUIRE_SERVICES=1``: a skip of that kind is
then a failure, so a broken install step cannot pass as a green run of skips.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from typing import NoReturn

import pytest

# Skip category -> the environment variable that makes such a skip a failure.
REQUIRE_VARS = {"real samples": "SHARDSMITH_REQUIRE_REAL_SAMPLES", "services": "SHARDSMITH_REQUIRE_SERVICES"}
# Skips that predate ``need()`` are recognised by what their reason mentions, or by the test's marker.
REASON_PATTERNS = {"real samples": re.compile(r"SHARDSMITH_REAL_SAMPLES")}
MARKER_CATEGORIES = {"services": "services"}
_PREFIX = re.compile(r"^needs (?P<cat>[a-z ]+): (?P<why>.*)$", re.S)


def required(category: str) -> bool:
    var = REQUIRE_VARS.get(category)
    return bool(var) and os.environ.get(var, "") not in ("", "0")


def need(category: str, reason: str) -> NoReturn:
    """Skip (``needs <category>: <reason>``), or fail when the category is required."""
    if required(category):
        pytest.fail(f"{reason} ({REQUIRE_VARS[category]}=1: this must not be skipped)", pytrace=False)
    pytest.skip(f"needs {category}: {reason}")


def category_of(reason: str, markers: set[str] = frozenset()) -> str | None:
    m = _PREFIX.match(reason)
    if m:
        return m["cat"]
    for cat, pattern in REASON_PATTERNS.items():
        if pattern.search(reason):
            return cat
    return next((cat for marker, cat in MARKER_CATEGORIES.items() if marker in markers), None)


def skip_reason(report: pytest.TestReport) -> str:
    lr = report.longrepr
    text = lr[2] if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
    return text.removeprefix("Skipped: ")


def classify(item: pytest.Item, report: pytest.TestReport) -> None:
    """Prefix a categorised skip's reason (``needs <category>: ``) or turn it into a failure."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report)
    cat = category_of(reason, {m.name for m in item.iter_markers()})
    if cat is None:
        return
    why = _PREFIX.match(reason)["why"] if _PREFIX.match(reason) else reason
    if required(cat):
        report.outcome = "failed"
        report.longrepr = f"skipped for want of {cat} ({why}), but {REQUIRE_VARS[cat]}=1 requires them"
    elif isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        path, line, _ = report.longrepr
        report.longrepr = (path, line, f"Skipped: needs {cat}: {why}")


def summary_line(reports: list[pytest.TestReport]) -> str | None:
    """One line: how many tests were skipped, per category, with their distinct reasons."""
    if not reports:
        return None
    counts: Counter[str] = Counter()
    whys: dict[str, list[str]] = defaultdict(list)
    for rep in reports:
        reason = skip_reason(rep)
        cat = category_of(reason) or "other"
        counts[cat] += 1
        why = _PREFIX.match(reason)["why"] if _PREFIX.match(reason) else reason
        why = why.split(";")[0].split(" (")[0].strip()
        if why not in whys[cat]:
            whys[cat].append(why)
    parts = []
    for cat, n in sorted(counts.items(), key=lambda kv: (kv[0] == "other", kv[0])):
        shown = "; ".join(whys[cat][:3]) + ("; ..." if len(whys[cat]) > 3 else "")
        parts.append(f"{n} need {cat} ({shown})" if cat != "other" else f"{n} other ({shown})")
    hint = " / ".join(f"{v}=1" for c, v in REQUIRE_VARS.items() if counts.get(c))
    tail = f"; {hint} (as .ci/run sets) makes these failures" if hint else ""
    return f"skipped {sum(counts.values())}: " + ", ".join(parts) + tail
