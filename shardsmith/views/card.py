"""Markdown sections of the dataset card for the task views (README.md of a release)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from shardsmith.views._common import Rows, iter_rows, size_bins
from shardsmith.views.fairness import UNKNOWN, PrevalenceBySlice


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def grounding_section(grounding: Rows) -> str:
    """Rows per source and label, split by size bin, with how many are derived parent rows."""
    bins = [b.name for b in size_bins()]
    counts: Counter[tuple[str, str, str]] = Counter()
    derived: Counter[tuple[str, str]] = Counter()
    for r in iter_rows(grounding):
        counts[(r["source"], r["label"], r["size_bin"])] += 1
        derived[(r["source"], r["label"])] += bool(r["derived"])
    keys = sorted({(s, lab) for s, lab, _ in counts})
    lines = ["## Grounding", "",
             "One row per image and present finding with regions (`grounding` table): the union of its "
             "boxes and masks, its area fraction and size bin "
             f"({', '.join(bins)}; thresholds in `schemas/views_data/size_bins.csv`). "
             "Parent labels rolled up from their children are marked `derived`.", ""]
    if not keys:
        return "\n".join(lines + ["No finding in this release has a region.", ""])
    rows = [[s, lab, *(counts[(s, lab, b)] for b in bins), derived[(s, lab)]] for s, lab in keys]
    return "\n".join(lines + _table(["source", "label", *bins, "derived"], rows) + [""])


def consensus_section(agreement: list[dict[str, Any]]) -> str:
    """Per-label reader agreement per source (from ``AgreementStats.results()``)."""
    lines = ["## Reader agreement", "",
             "Per image and label, the `consensus` table says how many of the image's readers marked "
             "the label and holds consensus targets beside the readers' own (weighted box fusion over "
             "the readers' boxes for VinDr-CXR once >= 2 readers marked it; the 50% agreement mask for "
             "LIDC-IDRI). Percent agreement is the mean pairwise agreement between readers; Fleiss' "
             "kappa corrects it for chance.", ""]
    if not agreement:
        return "\n".join(lines + ["No multi-reader source in this release.", ""])
    rows = [[a["source"], a["label"], a["raters"], a["images"], a["images_any_reader"], a["images_at_least_2"],
             a["images_unanimous_present"], _fmt(a["percent_agreement"], 1), _fmt(a["fleiss_kappa"])]
            for a in agreement]
    header = ["source", "label", "readers", "images", ">= 1 reader", ">= 2 readers", "all readers",
              "agreement %", "Fleiss' kappa"]
    return "\n".join(lines + _table(header, rows) + [""])


def dialogues_section(dialogues: Rows) -> str:
    """Turns per source and level: how much of the hierarchy each source can answer."""
    counts: Counter[tuple[str, str]] = Counter()
    records: Counter[str] = Counter()
    last = None
    for r in iter_rows(dialogues):  # a record's turns come together (dialogue_rows makes them so)
        counts[(r["source"], r["turn"])] += 1
        if r["record_id"] != last:
            records[r["source"]] += 1
            last = r["record_id"]
    lines = ["## Dialogues", "",
             "Hierarchical turns per record (`dialogues` table; templates in "
             "`schemas/views_data/dialogue_templates.csv`): is there an abnormality, which findings are "
             "present, segment each. A level the record does not know is not asked.", ""]
    if not records:
        return "\n".join(lines + ["No record supports a turn.", ""])
    rows = [[s, records[s], counts[(s, "abnormality")], counts[(s, "findings")], counts[(s, "segment")]]
            for s in sorted(records)]
    return "\n".join(lines + _table(["source", "records", "abnormality", "findings", "segment"], rows) + [""])


def _group_order(groups: list[str]) -> list[str]:
    return sorted(g for g in groups if g != UNKNOWN) + ([UNKNOWN] if UNKNOWN in groups else [])


def fairness_section(prevalence: PrevalenceBySlice, max_labels: int = 15) -> str:
    """Label prevalence by sex and by age band, per source (percent of the group's records)."""
    lines = ["## Prevalence by sex and age band", "",
             "Percent of each group's records with the label present (`records` and `grounding` keep "
             "`sex` and `age_band` for slicing). Groups without a value are `unknown`.", ""]
    table = prevalence.table()
    if not table:
        return "\n".join(lines + ["No labelled record.", ""])
    for source in sorted(table):
        for dim in prevalence.dimensions:
            labels = table[source].get(dim, {})
            if not labels:
                continue
            sizes = prevalence.group_sizes(source, dim)
            groups = _group_order(list(sizes))
            top = sorted(labels, key=lambda lab: (-sum(c["present"] for c in labels[lab].values()), lab))
            rows = [[lab, *(f"{100 * labels[lab][g]['prevalence']:.1f}" for g in groups)]
                    for lab in top[:max_labels]]
            lines += [f"### {source}: by {dim.replace('_', ' ')}", ""]
            lines += _table(["label", *(f"{g} (n={sizes[g]})" for g in groups)], rows)
            if len(top) > max_labels:
                lines.append(f"\n{len(top) - max_labels} rarer label(s) not shown.")
            lines.append("")
    return "\n".join(lines)
