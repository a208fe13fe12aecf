"""Harmonised label statistics from label files alone (``shardsmith labels``)."""

from __future__ import annotations

from collections import Counter, defaultdict

from shardsmith.sources.medical.base import LabelResult

_STATUS_ORDER = ("present", "absent", "uncertain")


def label_stats(source: str, result: LabelResult) -> dict:
    """Counts of images (per item), abnormal tri-state, per-label statuses and targets.

    A label that an item lists twice (several readers) counts once for that item, with the
    strongest status: present over uncertain over absent.
    """
    abnormal = Counter()
    findings: dict[str, Counter] = defaultdict(Counter)
    targets: Counter = Counter()
    rank = {"present": 0, "uncertain": 1, "absent": 2}
    for item in result.items:
        abnormal["unknown" if item.abnormal is None else str(item.abnormal).lower()] += 1
        per_label: dict[str, str] = {}
        for f in item.findings:
            cur = per_label.get(f.label)
            if cur is None or rank[f.status] < rank[cur]:
                per_label[f.label] = f.status
        for label, status in per_label.items():
            findings[label][status] += 1
        for t in item.targets:
            targets[t.label] += 1
    return {
        "source": source,
        "images": len(result.items),
        "abnormal": {k: abnormal.get(k, 0) for k in ("true", "false", "unknown")},
        "findings": {
            label: {s: findings[label].get(s, 0) for s in _STATUS_ORDER} for label in sorted(findings)
        },
        "targets": dict(sorted(targets.items())),
        "quarantined_rows": len(result.quarantine),
        "label_files": result.label_files,
    }
