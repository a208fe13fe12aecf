"""The canonical label vocabulary, loaded from the CSV tables beside this module.

``canonical*.csv`` lists canonical labels (with parents, so ``nodule`` rolls up to
``nodule_or_mass``); ``source_labels*.csv`` maps each source's verbatim label to one canonical
label and a kind: ``finding`` (a diagnosis/abnormality), ``anatomy`` (a structure, not an
abnormality), ``normal`` (the source asserts a normal study), ``abnormal_unspecified`` (abnormal
without a named finding) or ``derived`` (a region built from other labels). Several files
so that each family of sources keeps its own table.

A source label missing from the table is an error that names it: nothing is dropped silently.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shardsmith.errors import ShardsmithError
from shardsmith.packaged import data_path

_DIR = data_path("schemas", "vocabulary")
KINDS = ("finding", "anatomy", "normal", "abnormal_unspecified", "derived")


class UnknownLabelError(ShardsmithError, KeyError):
    """A source label that the vocabulary does not map; the message names source and label."""

    default_reason = "unknown_label"

    def __init__(self, detail: str) -> None:
        super().__init__(None, detail)


@dataclass(frozen=True)
class CanonicalLabel:
    label: str
    display_name: str
    category: str
    parent: str | None
    description: str


@dataclass(frozen=True)
class Mapping:
    source: str
    source_label: str
    canonical: str | None
    kind: str


def _norm(label: str) -> str:
    return " ".join(str(label).split())


class Vocabulary:
    def __init__(self, canonical: dict[str, CanonicalLabel], mappings: dict[tuple[str, str], Mapping]):
        self.canonical = canonical
        self._mappings = mappings

    def lookup(self, source: str, source_label: str) -> Mapping:
        """Map a verbatim source label; raises UnknownLabelError naming it if the table lacks it."""
        key = (source, _norm(source_label))
        try:
            return self._mappings[key]
        except KeyError:
            raise UnknownLabelError(
                f"label {source_label!r} of source {source!r} is not in the vocabulary "
                f"(add it to shardsmith/schemas/vocabulary/source_labels*.csv)"
            ) from None

    def has(self, source: str, source_label: str) -> bool:
        return (source, _norm(source_label)) in self._mappings

    def labels(self) -> list[str]:
        return sorted(self.canonical)

    def source_rows(self, source: str | None = None) -> list[Mapping]:
        return [m for (s, _), m in sorted(self._mappings.items()) if source is None or s == source]

    def ancestors(self, label: str) -> list[str]:
        out, cur = [], self.canonical[label].parent
        while cur:
            out.append(cur)
            cur = self.canonical[cur].parent
        return out


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=8)
def load_vocabulary(extra_files: tuple[Path, ...] = ()) -> Vocabulary:
    """The package's tables plus ``extra_files`` (source-label CSVs a third-party source ships)."""
    canonical: dict[str, CanonicalLabel] = {}
    for path in sorted(_DIR.glob("canonical*.csv")):
        for row in _read_csv(path):
            label = row["label"].strip()
            if label in canonical:
                raise ValueError(f"{path.name}: canonical label {label!r} defined twice")
            canonical[label] = CanonicalLabel(
                label, row["display_name"], row["category"], row.get("parent") or None, row["description"]
            )
    mappings: dict[tuple[str, str], Mapping] = {}
    for path in [*sorted(_DIR.glob("source_labels*.csv")), *map(Path, extra_files)]:
        for lineno, row in enumerate(_read_csv(path), start=2):
            m = Mapping(row["source"], _norm(row["source_label"]), row["canonical"] or None, row["kind"])
            if m.kind not in KINDS:
                raise ValueError(f"{path.name}:{lineno}: kind {m.kind!r} not in {KINDS}")
            if m.canonical is not None and m.canonical not in canonical:
                raise ValueError(f"{path.name}:{lineno}: canonical {m.canonical!r} is not defined")
            if m.kind in ("finding", "anatomy", "derived") and m.canonical is None:
                raise ValueError(f"{path.name}:{lineno}: kind {m.kind} needs a canonical label")
            key = (m.source, m.source_label)
            if key in mappings:
                raise ValueError(f"{path.name}:{lineno}: {key} mapped twice")
            mappings[key] = m
    for c in canonical.values():
        if c.parent and c.parent not in canonical:
            raise ValueError(f"canonical {c.label!r} has unknown parent {c.parent!r}")
    return Vocabulary(canonical, mappings)
