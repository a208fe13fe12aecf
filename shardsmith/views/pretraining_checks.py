"""Expectation suites and integrity facts of the pretraining views (``pretrain``, ``pairs``,
``knowledge``), in the form the task views use (``views.validation``): the frames carry derived
boolean columns that need the records, the suites ask them to be True, and
``pretraining_integrity`` reports each as a check with failing ids as examples.

The facts are recomputed here from the records, independently of the builders:

* a ``pretrain`` row is a radiograph record, of its image group, and that group's representative
  by the documented rule (``views.pretrain``, recomputed in plain Python); every group has one row;
* a pair's two records exist, are two films (not copies of one), and share the pair's source, patient and split;
* a knowledge row's records exist and are of its split and source, and its text is verbatim in
  them (the record's report or target phrase), so no row is text the project wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shardsmith.schemas.pretraining import KNOWLEDGE_KINDS, PAIR_RELATIONS
from shardsmith.schemas.records import SPLITS
from shardsmith.validation.outcome import CheckOutcome
from shardsmith.views.knowledge import SHARED, sentences
from shardsmith.views.pretrain import LOSSY_SUFFIXES, RADIOGRAPH_MODALITIES

Suite = dict[str, list[tuple[str, dict]]]
ID_COLUMN = {"pretrain": "record_id", "pairs": "pair_id", "knowledge": "knowledge_id"}
DERIVED = {
    "pretrain": ("record_exists", "group_matches", "is_representative", "split_matches"),
    "pairs": ("records_exist", "different_films", "same_patient", "same_split"),
    "knowledge": ("records_exist", "split_matches", "text_in_records"),
}
INDEX_COLUMNS = ["record_id", "source", "patient_id", "split", "split_official", "modality", "slice_index", "height",
                 "width", "raw_path", "image_group"]


def _true(column: str) -> tuple[str, dict]:
    return ("ExpectColumnValuesToBeInSet", {"column": column, "value_set": [True]})


def pretraining_suites() -> Suite:
    unique = lambda c: [("ExpectColumnValuesToNotBeNull", {"column": c}),  # noqa: E731
                        ("ExpectColumnValuesToBeUnique", {"column": c})]
    return {
        "pretrain": [*unique("record_id"), *unique("image_group"),
                     ("ExpectColumnValuesToBeInSet", {"column": "split", "value_set": list(SPLITS)}),
                     ("ExpectColumnValuesToBeBetween", {"column": "copies", "min_value": 1}),
                     *(_true(c) for c in DERIVED["pretrain"])],
        "pairs": [*unique("pair_id"),
                  ("ExpectColumnValuesToBeInSet", {"column": "relation", "value_set": list(PAIR_RELATIONS)}),
                  ("ExpectColumnValuesToBeInSet", {"column": "split", "value_set": list(SPLITS)}),
                  ("ExpectColumnValuesToBeBetween", {"column": "days_between", "min_value": 0}),
                  *(_true(c) for c in DERIVED["pairs"])],
        "knowledge": [*unique("knowledge_id"),
                      ("ExpectColumnValuesToBeInSet", {"column": "kind", "value_set": list(KNOWLEDGE_KINDS)}),
                      ("ExpectColumnValuesToBeInSet", {"column": "split", "value_set": [*SPLITS, SHARED]}),
                      ("ExpectColumnValuesToNotBeNull", {"column": "text"}),
                      *(_true(c) for c in DERIVED["knowledge"])],
    }


@dataclass(frozen=True)
class _Rec:
    source: str
    patient_id: str | None
    split: str
    image_group: str | None
    representative: bool


def record_index(record_files: Iterable[Path]) -> dict[str, _Rec]:
    """record_id -> what the checks compare, for every 2D radiograph, with each image group's
    representative recomputed by the rule (lossless, larger, official, smallest id)."""
    rows: list[dict[str, Any]] = []
    for f in record_files:
        pf = pq.ParquetFile(f)
        cols = [c for c in INDEX_COLUMNS if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=16_384, columns=cols):
            rows += [r for r in batch.to_pylist()
                     if r.get("modality") in RADIOGRAPH_MODALITIES and r.get("slice_index") is None]
    best: dict[str, tuple] = {}
    for r in rows:
        group = r.get("image_group") or "r" + r["record_id"]
        key = ((r.get("raw_path") or "").lower().endswith(LOSSY_SUFFIXES), -((r.get("height") or 0) * (r.get("width") or 0)),
               not r.get("split_official"), r["record_id"])
        if group not in best or key < best[group]:
            best[group] = key
    return {r["record_id"]: _Rec(r.get("source"), r.get("patient_id"), r.get("split"), r.get("image_group") or "r" + r["record_id"],
                                 best[r.get("image_group") or "r" + r["record_id"]][-1] == r["record_id"])
            for r in rows}


def record_texts(record_files: Iterable[Path], wanted: set[str]) -> dict[str, str]:
    """record_id -> every text the record holds (report, its sections' sentences, target phrases)."""
    out: dict[str, str] = {}
    value_set = pa.array(sorted(wanted), pa.string())
    for f in record_files:
        pf = pq.ParquetFile(f)
        cols = [c for c in ("record_id", "text", "report_sections", "targets") if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=4096, columns=cols):
            for r in batch.filter(pc.is_in(batch.column("record_id"), value_set=value_set)).to_pylist():
                parts = [t.get("text") or "" for t in r.get("targets") or ()]
                for s in r.get("report_sections") or ():
                    parts += sentences(s.get("text") or "")
                out[r["record_id"]] = "\n".join(parts)
    return out


def pretraining_frame(table: str, rows: list[dict[str, Any]], index: dict[str, _Rec],
                      texts: dict[str, str] | None = None) -> pd.DataFrame:
    """The rows of one chunk of ``table`` with the derived columns its suite asks to be True."""
    out = []
    for r in rows:
        if table == "pretrain":
            rec = index.get(r["record_id"])
            facts = {"record_exists": rec is not None,
                     "group_matches": bool(rec) and rec.image_group == r["image_group"],
                     "is_representative": bool(rec) and rec.representative,
                     "split_matches": bool(rec) and rec.split == r["split"]}
        elif table == "pairs":
            a, b = index.get(r["record_id_a"]), index.get(r["record_id_b"])
            facts = {"records_exist": a is not None and b is not None,
                     "different_films": bool(a and b) and a.image_group != b.image_group,
                     "same_patient": bool(a and b) and a.patient_id == b.patient_id == r["patient_id"]
                     and a.source == b.source == r["source"],
                     "same_split": bool(a and b) and a.split == b.split == r["split"]}
        else:
            ids = r.get("record_ids") or []
            recs = [index.get(i) for i in ids]
            vocabulary = r["source"] == "vocabulary"
            facts = {"records_exist": vocabulary or (bool(ids) and all(x is not None for x in recs)),
                     "split_matches": (r["split"] == SHARED) if vocabulary else
                     all(x is not None and x.split == r["split"] and x.source == r["source"] for x in recs),
                     "text_in_records": vocabulary or (bool(ids) and all(
                         r["text"] in (texts or {}).get(i, "") for i in ids))}
        out.append({**{k: v for k, v in r.items() if not isinstance(v, list | dict)}, **facts})
    columns = list(DERIVED[table])
    return pd.DataFrame(out) if out else pd.DataFrame({c: pd.Series(dtype=bool) for c in columns})


def pretraining_integrity(frames: dict[str, pd.DataFrame]) -> list[CheckOutcome]:
    """The derived columns as checks, with failing ids as examples."""
    out = []
    for name, df in frames.items():
        if name not in DERIVED:
            continue
        for col in DERIVED[name]:
            bad = df.loc[~df[col].astype(bool), ID_COLUMN[name]].tolist() if len(df) else []
            out.append(CheckOutcome(f"{name}.{col}", not bad, f"{len(bad)} row(s) fail {col}", bad[:5]))
    return out


def pretrain_covers_every_group(pretrain_files: list[Path], record_groups: Iterable[str]) -> CheckOutcome:
    """Every image group of the records' radiographs (``record_index``) has exactly one ``pretrain`` row."""
    groups = pd.Series(list(record_groups), dtype=object).drop_duplicates()
    got = (pd.concat([pq.read_table(f, columns=["image_group"]).to_pandas() for f in pretrain_files])["image_group"]
           if pretrain_files else pd.Series(dtype=str))
    counts = got.value_counts()
    missing = sorted(set(groups) - set(counts.index))
    doubled = sorted(counts[counts > 1].index)
    bad = missing + doubled
    return CheckOutcome("pretrain_covers_every_image_group", not bad,
                        f"{len(missing)} group(s) without a row, {len(doubled)} with several, of {len(groups)}", bad[:5])
