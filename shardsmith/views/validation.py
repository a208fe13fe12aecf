"""Expectation suites and integrity checks for the view tables, in the form ``validation`` uses.

``view_frames`` turns the view rows into pandas frames with derived boolean columns carrying the
facts that need the records (does the record exist, is every target id one of its targets, does
the size bin follow from the area); ``view_suites`` lists the GX expectations as plain tuples
(``validation.suites`` style: run them with ``validation.gx_runner.run_tables``) and only asks
those columns to be True. ``view_integrity`` is the same facts as plain checks, with examples.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shardsmith.media import masks as M
from shardsmith.schemas.records import SPLITS
from shardsmith.schemas.vocabulary import load_vocabulary
from shardsmith.validation.integrity import CheckOutcome
from shardsmith.views._common import (
    CONSENSUS_READER,
    Rows,
    iter_rows,
    present_labels,
    region_targets,
    size_bin,
    size_bins,
)
from shardsmith.views.dialogues import templates

Suite = dict[str, list[tuple[str, dict]]]


def _unique(column: str) -> list[tuple[str, dict]]:
    return [("ExpectColumnValuesToNotBeNull", {"column": column}),
            ("ExpectColumnValuesToBeUnique", {"column": column})]


def _true(column: str) -> tuple[str, dict]:
    return ("ExpectColumnValuesToBeInSet", {"column": column, "value_set": [True]})


def view_suites() -> Suite:
    labels = load_vocabulary().labels()
    bins = [b.name for b in size_bins()]
    return {
        "grounding": [
            *_unique("grounding_id"),
            ("ExpectColumnValuesToBeInSet", {"column": "split", "value_set": list(SPLITS)}),
            ("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": labels}),
            ("ExpectColumnValuesToBeInSet", {"column": "size_bin", "value_set": bins}),
            ("ExpectColumnValuesToBeBetween", {"column": "area_fraction", "min_value": 0, "max_value": 1,
                                               "strict_min": True}),
            ("ExpectColumnValuesToNotBeNull", {"column": "phrase"}),
            _true("record_exists"), _true("targets_exist"), _true("finding_present"),
            _true("size_bin_matches"), _true("area_matches"),
        ],
        "consensus": [
            *_unique("consensus_id"),
            ("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": labels}),
            ("ExpectColumnValuesToBeInSet", {"column": "method", "value_set": ["wbf", "mask_vote"]}),
            ("ExpectColumnValuesToBeBetween", {"column": "agreement", "min_value": 0, "max_value": 1}),
            ("ExpectColumnValuesToBeBetween", {"column": "readers_present", "min_value": 1}),
            ("ExpectColumnPairValuesAToBeGreaterThanB",
             {"column_A": "readers_total", "column_B": "readers_present", "or_equal": True}),
            _true("record_exists"),
        ],
        "dialogues": [
            *_unique("turn_id"),
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["record_id", "turn_index"]}),
            ("ExpectColumnValuesToBeInSet", {"column": "turn", "value_set": sorted(templates())}),
            _true("record_exists"), _true("labels_present"), _true("targets_exist"),
        ],
    }


def _record_index(records: Rows) -> dict[str, dict[str, Any]]:
    """record id -> its present labels and its region targets (target id -> label)."""
    if isinstance(records, pa.Table | pa.RecordBatch):
        records = [records]
    if isinstance(records, list) and records and all(isinstance(r, pa.Table | pa.RecordBatch) for r in records):
        index: dict[str, dict[str, Any]] = {}
        for batch in records:
            index.update(_arrow_record_index(batch))
        return index
    index = {}
    for rec in iter_rows(records):
        index[rec["record_id"]] = {
            "present": set(present_labels(rec)),
            "regions": {t["target_id"]: t["label"] for t in region_targets(rec) if t.get("target_id")},
        }
    return index


def _arrow_record_index(batch: pa.Table | pa.RecordBatch) -> dict[str, dict[str, Any]]:
    """:func:`_record_index` of Arrow records, by the same rules (``present_labels``,
    ``region_targets``) on the flattened findings and targets: a view chunk refers to every record,
    and making each a Python dict first was most of the view validation's time."""
    ids = batch.column("record_id").to_pylist()
    entries: list[dict[str, Any]] = [{"present": set(), "regions": {}} for _ in ids]
    names = batch.schema.names
    if "findings" in names:
        findings = batch.column("findings")
        findings = findings.combine_chunks() if isinstance(findings, pa.ChunkedArray) else findings
        flat = pc.list_flatten(findings)
        keep = pc.and_(pc.fill_null(pc.equal(flat.field("status"), "present"), False),
                       pc.fill_null(pc.greater(pc.utf8_length(flat.field("label")), 0), False))
        rows = pc.filter(pc.list_parent_indices(findings), keep).to_pylist()
        for row, label in zip(rows, pc.filter(flat.field("label"), keep).to_pylist(), strict=True):
            entries[row]["present"].add(label)
    if "targets" in names:
        targets = batch.column("targets")
        targets = targets.combine_chunks() if isinstance(targets, pa.ChunkedArray) else targets
        flat = pc.list_flatten(targets)
        fields = {f.name for f in flat.type}
        mask = flat.field("mask_rle").is_valid() if "mask_rle" in fields else pa.repeat(False, len(flat))
        box = (pc.fill_null(pc.greater(pc.list_value_length(flat.field("box_xyxy")), 0), False)
               if "box_xyxy" in fields else pa.repeat(False, len(flat)))
        reader = (pc.fill_null(pc.not_equal(flat.field("reader"), CONSENSUS_READER), True)
                  if "reader" in fields else pa.repeat(True, len(flat)))
        keep = pc.and_(pc.and_(pc.fill_null(pc.equal(flat.field("kind"), "abnormality"), False), reader),
                       pc.and_(pc.or_(mask, box),
                               pc.fill_null(pc.greater(pc.utf8_length(flat.field("target_id")), 0), False)))
        rows = pc.filter(pc.list_parent_indices(targets), keep).to_pylist()
        for row, tid, label in zip(rows, pc.filter(flat.field("target_id"), keep).to_pylist(),
                                   pc.filter(flat.field("label"), keep).to_pylist(), strict=True):
            entries[row]["regions"][tid] = label
    return dict(zip(ids, entries, strict=True))


def view_frames(
    records: Rows,
    grounding: Iterable[dict[str, Any]] = (),
    consensus: Iterable[dict[str, Any]] = (),
    dialogues: Iterable[dict[str, Any]] = (),
) -> dict[str, pd.DataFrame]:
    """Frames for ``view_suites`` (records are read with ``VIEW_COLUMNS``; no pixels)."""
    index = _record_index(records)
    vocab = load_vocabulary()
    g_rows = []
    for r in grounding:
        rec = index.get(r["record_id"])
        covered = {r["label"]} | (set() if not rec else {
            lab for lab in rec["present"] if lab in vocab.canonical and r["label"] in vocab.ancestors(lab)})
        g_rows.append({
            **{k: r[k] for k in ("grounding_id", "record_id", "source", "split", "label", "derived",
                                 "area_px", "area_fraction", "size_bin", "phrase")},
            "record_exists": rec is not None,
            "targets_exist": bool(rec) and bool(r["target_ids"]) and all(
                rec["regions"].get(t) in covered for t in r["target_ids"]),
            "finding_present": bool(rec) and (r["derived"] or r["label"] in rec["present"]),
            "size_bin_matches": r["size_bin"] == size_bin(r["area_fraction"]),
            "area_matches": M.coco_rle_area(r["mask_rle"]) == r["area_px"],
        })
    c_rows = [{**{k: r[k] for k in ("consensus_id", "record_id", "source", "split", "label", "method",
                                   "agreement", "readers_present", "readers_total")},
               "record_exists": r["record_id"] in index} for r in consensus]
    d_rows = []
    for r in dialogues:
        rec = index.get(r["record_id"])
        d_rows.append({
            **{k: r[k] for k in ("turn_id", "record_id", "source", "split", "turn_index", "turn", "answer")},
            "record_exists": rec is not None,
            "labels_present": bool(rec) and set(r["answer_labels"] or ()) <= rec["present"],
            "targets_exist": bool(rec) and all(
                rec["regions"].get(t) in (r["answer_labels"] or ()) for t in r["answer_target_ids"] or ()),
        })
    return {"grounding": pd.DataFrame(g_rows), "consensus": pd.DataFrame(c_rows), "dialogues": pd.DataFrame(d_rows)}


def view_integrity(frames: dict[str, pd.DataFrame]) -> list[CheckOutcome]:
    """The derived columns of ``view_frames`` as checks with failing ids as examples."""
    out = []
    id_col = {"grounding": "grounding_id", "consensus": "consensus_id", "dialogues": "turn_id"}
    for name, df in frames.items():
        for col in [c for c in df.columns if df[c].dtype == bool and c not in ("derived",)]:
            bad = df.loc[~df[col], id_col[name]].tolist()
            out.append(CheckOutcome(f"{name}.{col}", not bad, f"{len(bad)} row(s) fail {col}", bad[:5]))
    return out
