"""Expectation suites and integrity facts of the pretraining views (``pretrain``, ``pairs``,
``knowledge``), in the form the task views use (``views.validation``): the frames carry derived
boolean columns that need the records, the suites ask them to be True, and
``pretraining_integrity`` reports each as a check with failing ids as examples.

The facts are recomputed here from the records, independently of the builders:

* a ``pretrain`` row is a radiograph record, of its image group, and that group's representative
  by the documented rule (``views.pretrain``, recomputed here on Arrow columns); every group has one row;
* a pair's two records exist, are two films (not copies of one), and share the pair's source, patient and split;
* a knowledge row's records exist and are of its split and source, and its text is verbatim in
  them (the record's report or target phrase), so no row is text the project wrote.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from pathlib import Path

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


INDEX_FIELDS = ["record_id", "source", "patient_id", "split", "image_group", "representative"]


def record_index(record_files: Iterable[Path]) -> pa.Table:
    """One row per 2D radiograph record (``INDEX_FIELDS``: what the checks compare), with each image
    group's representative recomputed by the rule (lossless, larger, official, smallest id).

    Narrow Arrow columns (about 150 bytes a record), made with Arrow kernels: a Python object per
    record (a dict while reading, then an index entry) grew the release's memory by ~2 KB a record.
    A record id listed twice keeps its last row."""
    parts = []
    for f in record_files:
        pf = pq.ParquetFile(f)
        cols = [c for c in INDEX_COLUMNS if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=16_384, columns=cols):
            parts.append(_index_rows(pa.Table.from_batches([batch])))
    empty = pa.table({"record_id": pa.array([], pa.string()), "source": pa.array([], pa.string()),
                      "patient_id": pa.array([], pa.string()), "split": pa.array([], pa.string()),
                      "image_group": pa.array([], pa.string()), "lossy": pa.array([], pa.bool_()),
                      "area": pa.array([], pa.int64()), "unofficial": pa.array([], pa.bool_())})
    rows = pa.concat_tables([empty, *parts], promote_options="permissive").combine_chunks()
    order = [("image_group", "ascending"), ("lossy", "ascending"), ("area", "descending"),
             ("unofficial", "ascending"), ("record_id", "ascending")]
    best = (rows.sort_by(order).group_by("image_group", use_threads=False)
            .aggregate([("record_id", "first")])["record_id_first"])
    rows = rows.append_column("representative", pc.is_in(rows["record_id"], value_set=best.combine_chunks()))
    rows = rows.select(INDEX_FIELDS)
    if pc.count_distinct(rows["record_id"]).as_py() < rows.num_rows:  # the last row of an id wins
        positioned = rows.append_column("_pos", pa.array(range(rows.num_rows), pa.int64()))
        last = positioned.group_by("record_id", use_threads=False).aggregate([("_pos", "max")])["_pos_max"]
        rows = rows.take(pc.sort_indices(last))
    return rows


def _index_rows(batch: pa.Table) -> pa.Table:
    """The radiographs of one batch of records with the columns the representative rule sorts by."""
    n = batch.num_rows

    def col(name: str, kind: pa.DataType) -> pa.ChunkedArray | pa.Array:
        return batch[name] if name in batch.column_names else pa.nulls(n, kind)

    keep = pc.and_(pc.fill_null(pc.is_in(col("modality", pa.string()), value_set=pa.array(RADIOGRAPH_MODALITIES)),
                                False),
                   pc.is_null(col("slice_index", pa.int32())))
    batch = batch.filter(keep)
    n = batch.num_rows
    rid = batch["record_id"]
    group = col("image_group", pa.string())
    path = pc.utf8_lower(pc.fill_null(col("raw_path", pa.string()), ""))
    return pa.table({
        "record_id": rid, "source": col("source", pa.string()), "patient_id": col("patient_id", pa.string()),
        "split": col("split", pa.string()),
        "image_group": pc.if_else(pc.fill_null(pc.greater(pc.utf8_length(group), 0), False), group,
                                  pc.binary_join_element_wise("r", rid, "")),
        "lossy": functools.reduce(pc.or_, [pc.ends_with(path, pattern=suffix) for suffix in LOSSY_SUFFIXES]),
        "area": pc.multiply(pc.fill_null(pc.cast(col("height", pa.int32()), pa.int64()), 0),
                            pc.fill_null(pc.cast(col("width", pa.int32()), pa.int64()), 0)),
        "unofficial": pc.invert(pc.fill_null(col("split_official", pa.bool_()), False)),
    })


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


def _same(*columns) -> pa.ChunkedArray:
    """Values equal along each row, ``None == None`` included (as Python compares them)."""
    out = None
    for a, b in itertools.pairwise(columns):
        eq = pc.fill_null(pc.or_kleene(pc.equal(a, b), pc.and_(pc.is_null(a), pc.is_null(b))), False)
        out = eq if out is None else pc.and_(out, eq)
    return out


def _joined(chunk: pa.Table, index: pa.Table, column: str, suffix: str) -> pa.Table:
    """``index`` looked up by ``chunk[column]``, one row per chunk row in chunk order (nulls where
    the record is not in the index), fields renamed ``<field><suffix>``, plus ``hit<suffix>``."""
    keys = pa.table({"record_id": chunk[column], "_row": pa.array(range(chunk.num_rows), pa.int64())})
    found = index.append_column("_hit", pa.repeat(pa.scalar(True), index.num_rows))
    out = keys.join(found, "record_id", join_type="left outer", use_threads=False).sort_by("_row")
    names = [f for f in INDEX_FIELDS if f != "record_id"]
    return pa.table({**{f"{f}{suffix}": out[f] for f in names}, f"hit{suffix}": pc.fill_null(out["_hit"], False)})


def pretraining_frame(table: str, chunk: pa.Table, index: pa.Table, texts: dict[str, str] | None = None) -> pd.DataFrame:
    """The rows of one chunk of ``table`` (its scalar columns) with the derived columns its suite
    asks to be True; ``pretrain`` and ``pairs`` look their records up in ``index`` by Arrow joins."""
    if not chunk.num_rows:
        return pd.DataFrame({c: pd.Series(dtype=bool) for c in DERIVED[table]})
    scalars = [f.name for f in chunk.schema if not pa.types.is_nested(f.type)]
    if table == "pretrain":
        rec = _joined(chunk, index, "record_id", "")
        hit = rec["hit"]
        facts = {"record_exists": hit,
                 "group_matches": pc.and_(hit, _same(rec["image_group"], chunk["image_group"])),
                 "is_representative": pc.and_(hit, pc.fill_null(rec["representative"], False)),
                 "split_matches": pc.and_(hit, _same(rec["split"], chunk["split"]))}
    elif table == "pairs":
        a, b = _joined(chunk, index, "record_id_a", "_a"), _joined(chunk, index, "record_id_b", "_b")
        both = pc.and_(a["hit_a"], b["hit_b"])
        facts = {"records_exist": both,
                 "different_films": pc.and_(both, pc.invert(_same(a["image_group_a"], b["image_group_b"]))),
                 "same_patient": pc.and_(both, pc.and_(_same(a["patient_id_a"], b["patient_id_b"], chunk["patient_id"]),
                                                       _same(a["source_a"], b["source_b"], chunk["source"]))),
                 "same_split": pc.and_(both, _same(a["split_a"], b["split_b"], chunk["split"]))}
    else:
        return _knowledge_frame(chunk, index, texts or {})
    out = chunk.select(scalars)
    for name, values in facts.items():
        out = out.append_column(name, values)
    return out.to_pandas()


def _knowledge_frame(chunk: pa.Table, index: pa.Table, texts: dict[str, str]) -> pd.DataFrame:
    """Knowledge rows (a few per finding) checked row by row against the records they list."""
    listed = (pc.unique(pc.list_flatten(chunk["record_ids"])) if "record_ids" in chunk.column_names
              else pa.array([], pa.string()))
    recs = {r["record_id"]: r for r in index.filter(pc.is_in(index["record_id"], value_set=listed)).to_pylist()}
    out = []
    for r in chunk.to_pylist():
        ids = r.get("record_ids") or []
        found = [recs.get(i) for i in ids]
        vocabulary = r["source"] == "vocabulary"
        facts = {"records_exist": vocabulary or (bool(ids) and all(x is not None for x in found)),
                 "split_matches": (r["split"] == SHARED) if vocabulary else
                 all(x is not None and x["split"] == r["split"] and x["source"] == r["source"] for x in found),
                 "text_in_records": vocabulary or (bool(ids) and all(r["text"] in texts.get(i, "") for i in ids))}
        out.append({**{k: v for k, v in r.items() if not isinstance(v, list | dict)}, **facts})
    return pd.DataFrame(out)


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


def pretrain_covers_every_group(pretrain_files: list[Path], record_groups: Iterable[str] | pa.ChunkedArray
                                ) -> CheckOutcome:
    """Every image group of the records' radiographs (``record_index``) has exactly one ``pretrain`` row
    (counted with Arrow: the groups are as many as the records)."""
    if not isinstance(record_groups, pa.Array | pa.ChunkedArray):
        record_groups = pa.array(list(record_groups), pa.string())
    groups = pc.unique(record_groups)
    got = (pa.concat_arrays([c for f in pretrain_files for c in pq.read_table(f, columns=["image_group"])
                             ["image_group"].cast(pa.string()).chunks] or [pa.array([], pa.string())]))
    counts = pc.value_counts(pc.drop_null(got))
    values, n = counts.field("values"), counts.field("counts")
    missing = sorted(pc.filter(groups, pc.invert(pc.is_in(groups, value_set=values))).to_pylist())
    doubled = sorted(pc.filter(values, pc.greater(n, 1)).to_pylist())
    bad = missing + doubled
    return CheckOutcome("pretrain_covers_every_image_group", not bad,
                        f"{len(missing)} group(s) without a row, {len(doubled)} with several, of {len(groups)}", bad[:5])
