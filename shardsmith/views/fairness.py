"""Fairness slices for the dataset card: per source, label prevalence by sex and by age band.

Explanation-guided training and human-AI alignment studies report gaps across sex and age
groups; the card shows where a source's labels are unevenly spread before anyone trains on it.
Prevalence is ``records with the label present / records in the group``; a group with no value
(the source does not record sex or age) is ``unknown``. Volume sources count slices, as records do.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from shardsmith.views._common import Rows, iter_rows, present_labels

DIMENSIONS = ("sex", "age_band")
UNKNOWN = "unknown"


class PrevalenceBySlice:
    """Accumulates record counts per (source, dimension, group) and present labels per group."""

    def __init__(self, dimensions: tuple[str, ...] = DIMENSIONS) -> None:
        self.dimensions = dimensions
        self.records: Counter[tuple[str, str, str]] = Counter()
        self.present: Counter[tuple[str, str, str, str]] = Counter()

    def add(self, record: dict[str, Any]) -> None:
        labels = present_labels(record)
        for dim in self.dimensions:
            group = record.get(dim) or UNKNOWN
            self.records[(record["source"], dim, group)] += 1
            for label in labels:
                self.present[(record["source"], dim, group, label)] += 1

    def add_all(self, records: Rows) -> PrevalenceBySlice:
        for r in iter_rows(records):
            self.add(r)
        return self

    def table(self) -> dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]]:
        """``{source: {dimension: {label: {group: {"present", "records", "prevalence"}}}}}``."""
        out: dict[str, Any] = defaultdict(lambda: defaultdict(dict))
        for (source, dim, group, label), n in sorted(self.present.items()):
            total = self.records[(source, dim, group)]
            out[source][dim].setdefault(label, {})[group] = {
                "present": n, "records": total, "prevalence": n / total,
            }
        # groups where a label never appears still count: prevalence 0 of their records
        for source, dims in out.items():
            for dim, labels in dims.items():
                groups = [g for (s, d, g) in self.records if s == source and d == dim]
                for cells in labels.values():
                    for g in groups:
                        cells.setdefault(g, {"present": 0, "records": self.records[(source, dim, g)],
                                             "prevalence": 0.0})
        return {s: {d: dict(v) for d, v in dims.items()} for s, dims in out.items()}

    def group_sizes(self, source: str, dim: str) -> dict[str, int]:
        return {g: n for (s, d, g), n in sorted(self.records.items()) if s == source and d == dim}


def prevalence_by_slice(records: Rows) -> PrevalenceBySlice:
    return PrevalenceBySlice().add_all(records)
