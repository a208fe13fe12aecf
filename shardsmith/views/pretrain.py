"""The ``pretrain`` view: one row per distinct chest radiograph across every source.

Copies of one film (``records.image_group``: exact or perceptual image links found by the
duplicates stage, never patient links) collapse to ONE representative, chosen by this rule, in
order, so it never depends on the order records are read:

1. lossless before lossy: a record whose raw file is DICOM or PNG before one from a JPEG;
2. the larger stored image (height x width);
3. an official split before a seeded one;
4. the smallest ``record_id``.

The row says how many copies there were, from which sources, and whether any copy has labels,
boxes or text, since a self-supervised user pools images while a vision-language user needs text.
Only 2D radiographs (modality CR or DX, no slice index) take part: volume slices are not films.

Everything is computed on narrow Arrow columns (no pixels, no per-record dicts): about 100 bytes
a record; ``views.pretraining_stage`` holds a bounded number of them at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shardsmith.schemas.pretraining import PRETRAIN_SCHEMA
from shardsmith.schemas.records import RECORDS_SCHEMA

RADIOGRAPH_MODALITIES = ("CR", "DX")
LOSSY_SUFFIXES = (".jpg", ".jpeg")
# Columns the view reads from the records.
PRETRAIN_COLUMNS = ["record_id", "source", "patient_id", "study_id", "view", "split", "split_official", "modality",
                    "slice_index", "height", "width", "raw_path", "image_group", "findings", "targets", "text",
                    "study_day", "study_order"]
# Sort order of the representative rule (ascending: the first row of each group wins).
RULE = [("image_group", "ascending"), ("lossy", "ascending"), ("area", "descending"),
        ("seeded", "ascending"), ("record_id", "ascending")]


def _has_boxes(targets: pa.Array) -> np.ndarray:
    """Per record: some target has a non-empty box or a mask (on the Arrow columns, no Python objects)."""
    out = np.zeros(len(targets), bool)
    flat = pc.list_flatten(targets)
    if not len(flat):
        return out
    box = pc.struct_field(flat, "box_xyxy")
    has = pc.or_(pc.fill_null(pc.greater(pc.list_value_length(box), 0), False),
                 pc.is_valid(pc.struct_field(flat, "mask_rle")))
    parents = pc.list_parent_indices(targets).to_numpy()
    out[parents[has.to_numpy(zero_copy_only=False)]] = True
    return out


def _narrow(batch: pa.RecordBatch) -> pa.Table | None:
    """The facts the rule and the row need, for the radiographs of one batch of records."""
    t = pa.Table.from_batches([batch])
    keep = pc.and_(pc.is_in(t["modality"], value_set=pa.array(RADIOGRAPH_MODALITIES)), pc.is_null(t["slice_index"]))
    t = t.filter(keep)
    if not t.num_rows:
        return None
    path = pc.utf8_lower(pc.fill_null(t["raw_path"], ""))
    lossy = pc.or_(*(pc.ends_with(path, s) for s in LOSSY_SUFFIXES))
    area = pc.multiply(pc.fill_null(t["height"].cast(pa.int64()), 0), pc.fill_null(t["width"].cast(pa.int64()), 0))
    group = pc.coalesce(t["image_group"], pc.binary_join_element_wise("r", t["record_id"], ""))
    boxes = _has_boxes(t["targets"].combine_chunks())
    return pa.table({
        "record_id": t["record_id"], "image_group": group, "source": t["source"],
        "patient_id": t["patient_id"], "study_id": t["study_id"], "view": t["view"], "split": t["split"],
        "height": t["height"], "width": t["width"], "lossless": pc.invert(lossy), "lossy": lossy, "area": area,
        "seeded": pc.invert(pc.fill_null(t["split_official"], False)),
        "has_labels": pc.greater(pc.fill_null(pc.list_value_length(t["findings"]), 0), 0),
        "has_boxes": pa.array(boxes),
        "has_text": pc.and_(pc.is_valid(t["text"]), pc.greater(pc.fill_null(pc.utf8_length(t["text"]), 0), 0)),
        "study_day": t["study_day"], "study_order": t["study_order"],
    })


def radiographs(record_files: Iterable[Path], batch_size: int = 16_384) -> pa.Table:
    """Every 2D radiograph of the records as narrow columns (``_narrow``), in the order read, as one
    table (the whole release's: ``pretraining_stage`` reads ``iter_radiographs`` instead)."""
    parts = list(iter_radiographs(record_files, batch_size))
    if not parts:
        return pa.table({"record_id": pa.array([], pa.string())})
    return pa.concat_tables(parts).combine_chunks()


def iter_radiographs(record_files: Iterable[Path], batch_size: int = 16_384) -> Iterator[pa.Table]:
    """The 2D radiographs of the records as narrow columns (``_narrow``), a batch of records at a time."""
    for f in record_files:
        pf = pq.ParquetFile(f)
        cols = [c for c in PRETRAIN_COLUMNS if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=batch_size, columns=cols, use_threads=False):
            for c in PRETRAIN_COLUMNS:  # a column the staged records lack reads as null (the records'
                if c not in batch.schema.names:  # own validation refuses such a release, by name)
                    batch = batch.append_column(c, pa.nulls(batch.num_rows, RECORDS_SCHEMA.field(c).type))
            part = _narrow(batch)
            if part is not None:
                yield part


def pretrain_table(narrow: pa.Table) -> pa.Table:
    """``PRETRAIN_SCHEMA`` rows: each image group's representative with what its copies hold."""
    if "image_group" not in narrow.column_names or not narrow.num_rows:
        return PRETRAIN_SCHEMA.empty_table()
    per = narrow.group_by("image_group", use_threads=False).aggregate([
        ("record_id", "count"), ("source", "distinct"), ("has_labels", "any"), ("has_boxes", "any"),
        ("has_text", "any")])
    ranked = narrow.sort_by(RULE)
    gid = ranked["image_group"].combine_chunks()
    first = pc.not_equal(gid.slice(1), gid.slice(0, len(gid) - 1)) if len(gid) > 1 else pa.array([], pa.bool_())
    first = pa.concat_arrays([pa.array([True]), first.cast(pa.bool_())])
    reps = ranked.filter(first).select(["record_id", "image_group", "source", "patient_id", "study_id", "view",
                                        "split", "height", "width", "lossless"])
    # one row per group on both sides: aligned by sorting on the group (Arrow joins take no lists)
    per = per.sort_by([("image_group", "ascending")])
    joined = reps.sort_by([("image_group", "ascending")])
    for c in ("record_id_count", "source_distinct", "has_labels_any", "has_boxes_any", "has_text_any"):
        joined = joined.append_column(c, per[c])
    joined = joined.sort_by([("record_id", "ascending")])
    return pa.table({
        **{c: joined[c] for c in ("record_id", "image_group", "source", "patient_id", "study_id", "view", "split",
                                  "height", "width", "lossless")},
        "copies": joined["record_id_count"].cast(pa.int32()),
        "copy_sources": pa.array([sorted(v) for v in joined["source_distinct"].to_pylist()], pa.list_(pa.string())),
        "has_labels": joined["has_labels_any"], "has_boxes": joined["has_boxes_any"],
        "has_text": joined["has_text_any"],
    }, schema=PRETRAIN_SCHEMA)

