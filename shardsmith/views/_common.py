"""What the view builders share: row streaming, the data tables they read, region targets, phrases."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pyarrow as pa

from shardsmith.packaged import data_path
from shardsmith.schemas.vocabulary import Vocabulary, load_vocabulary

DATA_DIR = data_path("schemas", "views_data")
SYNONYMS_CSV = data_path("schemas", "vocabulary", "synonyms.csv")
CONSENSUS_READER = "consensus"  # adapters' own consensus targets (LIDC) are not a reader's drawing

Rows = Iterable[dict[str, Any]] | pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch]


def iter_rows(rows: Rows) -> Iterator[dict[str, Any]]:
    """Stream record rows from dicts, an Arrow table/batch, or an iterable of batches (one batch in memory)."""
    if isinstance(rows, pa.Table):
        for batch in rows.to_batches():
            yield from batch.to_pylist()
        return
    if isinstance(rows, pa.RecordBatch):
        yield from rows.to_pylist()
        return
    for item in rows:
        if isinstance(item, (pa.RecordBatch, pa.Table)):
            yield from iter_rows(item)
        else:
            yield item


def read_data_csv(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- size bins


@dataclass(frozen=True)
class SizeBin:
    name: str
    max_fraction: float
    max_inclusive: bool

    def holds(self, fraction: float) -> bool:
        return fraction <= self.max_fraction if self.max_inclusive else fraction < self.max_fraction


@lru_cache(maxsize=1)
def size_bins() -> tuple[SizeBin, ...]:
    """Bins in ascending order; the first that holds an area fraction names it."""
    bins = tuple(
        SizeBin(r["size_bin"], float(r["max_fraction"]), r["max_inclusive"].strip().lower() == "true")
        for r in read_data_csv("size_bins.csv")
    )
    if [b.max_fraction for b in bins] != sorted(b.max_fraction for b in bins) or bins[-1].max_fraction < 1.0:
        raise ValueError("size_bins.csv: bins must ascend and the last must reach 1.0")
    return bins


def size_bin(fraction: float, bins: tuple[SizeBin, ...] | None = None) -> str:
    for b in bins or size_bins():
        if b.holds(fraction):
            return b.name
    raise ValueError(f"area fraction {fraction} is outside every size bin")


# --------------------------------------------------------------------------- phrases and synonyms

_READABLE = re.compile(r"^[A-Za-z][A-Za-z /_-]*$")  # skips codes such as "2021:1" or "Task01_x/y"


@lru_cache(maxsize=4)
def synonyms_table(vocab: Vocabulary | None = None) -> dict[str, tuple[str, ...]]:
    """label -> synonyms: the curated ``synonyms.csv`` plus every readable verbatim source spelling.

    The display name itself is never a synonym; comparison ignores case and ``_``/space.
    """
    vocab = vocab or load_vocabulary()
    found: dict[str, list[str]] = {}

    def add(label: str, text: str) -> None:
        if label not in vocab.canonical:
            raise ValueError(f"synonyms.csv: label {label!r} is not in the vocabulary")
        key = " ".join(text.replace("_", " ").split()).lower()
        display = " ".join(vocab.canonical[label].display_name.replace("_", " ").split()).lower()
        if key and key != display and key not in found.setdefault(label, []):
            found[label].append(key)

    with SYNONYMS_CSV.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            add(row["label"].strip(), row["synonym"])
    for m in vocab.source_rows():
        if m.canonical and m.kind == "finding" and _READABLE.match(m.source_label):
            add(m.canonical, m.source_label)
    return {label: tuple(sorted(v)) for label, v in found.items()}


def display_name(label: str, vocab: Vocabulary | None = None) -> str:
    vocab = vocab or load_vocabulary()
    c = vocab.canonical.get(label)
    return c.display_name if c else label


def in_sentence(name: str) -> str:
    """Lower-case a display name for use inside a sentence, keeping acronyms ("Enlarged PA", "ILD")."""
    return " ".join(w if w.isupper() and len(w.strip("()")) > 1 else w.lower() for w in name.split(" "))


# --------------------------------------------------------------------------- targets


def has_region(target: dict[str, Any]) -> bool:
    return bool(target.get("mask_rle")) or bool(target.get("box_xyxy"))


def region_targets(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Abnormality targets with a box or mask drawn by a reader, in record order.

    Adapter-made consensus targets (``reader == "consensus"``) are left out: they restate the
    readers' regions, and the consensus view rebuilds agreement from the readers themselves.
    """
    return [
        t for t in record.get("targets") or ()
        if t.get("kind") == "abnormality" and t.get("reader") != CONSENSUS_READER and has_region(t)
    ]


def present_labels(record: dict[str, Any]) -> list[str]:
    """Canonical labels the source states present, in findings order, without repeats."""
    out: list[str] = []
    for f in record.get("findings") or ():
        if f.get("status") == "present" and f.get("label") and f["label"] not in out:
            out.append(f["label"])
    return out
