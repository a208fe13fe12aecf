"""Task views derived from ``records`` at release time (issue 14): grounding, consensus, dialogues.

Each view is its own release table, split like ``records`` and keyed by a deterministic id, so a
training loop reads one table instead of re-deriving it from the nested ``findings``/``targets``.
Bump VIEWS_SCHEMA_VERSION on any change a reader would notice.
"""

from __future__ import annotations

import pyarrow as pa

from shardsmith.schemas.records import MASK_RLE_TYPE

VIEWS_SCHEMA_VERSION = "1.0.0"

BOX_LIST_TYPE = pa.list_(pa.list_(pa.float32()))  # [[x0, y0, x1, y1], ...] in stored-image pixels

GROUNDING_SCHEMA = pa.schema(
    [
        pa.field("grounding_id", pa.string(), nullable=False),  # "<record_id>:<label>"
        pa.field("record_id", pa.string(), nullable=False),  # join key into records (the image)
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),  # canonical label
        pa.field("derived", pa.bool_(), nullable=False),  # a parent label rolled up from its children
        pa.field("target_ids", pa.list_(pa.string())),  # the records.targets that make up the region
        pa.field("boxes", BOX_LIST_TYPE),  # one box per target (a mask target's tight box)
        pa.field("mask_rle", MASK_RLE_TYPE),  # union of masks and filled boxes over the stored image
        pa.field("area_px", pa.float64()),
        pa.field("area_fraction", pa.float64()),  # area_px / (height * width)
        pa.field("size_bin", pa.string()),  # small | medium | large (schemas/views_data/size_bins.csv)
        pa.field("readers", pa.list_(pa.string())),  # readers who drew a part of the region
        pa.field("phrase", pa.string()),  # the source's own phrase (MS-CXR) else the display name
        pa.field("phrase_source", pa.string()),  # source | vocabulary
        pa.field("synonyms", pa.list_(pa.string())),
        pa.field("sex", pa.string()),
        pa.field("age_band", pa.string()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
    ],
    metadata={"shardsmith.schema": "grounding", "shardsmith.schema_version": VIEWS_SCHEMA_VERSION},
)

CONSENSUS_SCHEMA = pa.schema(
    [
        pa.field("consensus_id", pa.string(), nullable=False),  # "<record_id>:<label>"
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("readers", pa.list_(pa.string())),  # readers who marked the label present
        pa.field("readers_present", pa.int32(), nullable=False),
        pa.field("readers_total", pa.int32(), nullable=False),
        pa.field("agreement", pa.float64()),  # readers_present / readers_total
        pa.field("method", pa.string()),  # wbf | mask_vote | null when too few readers marked it
        pa.field("boxes", BOX_LIST_TYPE),  # fused boxes (wbf)
        pa.field("box_scores", pa.list_(pa.float32())),  # WBF confidence of each fused box
        pa.field("box_support", pa.list_(pa.int32())),  # readers with a box overlapping each fused box
        pa.field("mask_rle", MASK_RLE_TYPE),  # agreement mask (mask_vote)
        pa.field("votes_needed", pa.int32()),  # unused since LIDC's need is per nodule (target source_geometry)
    ],
    metadata={"shardsmith.schema": "consensus", "shardsmith.schema_version": VIEWS_SCHEMA_VERSION},
)

DIALOGUES_SCHEMA = pa.schema(
    [
        pa.field("turn_id", pa.string(), nullable=False),  # "<record_id>:<turn index>"
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("turn_index", pa.int32(), nullable=False),
        pa.field("level", pa.int32(), nullable=False),  # 1 abnormal? 2 which findings 3 segment
        pa.field("turn", pa.string(), nullable=False),  # abnormality | findings | segment
        pa.field("question", pa.string(), nullable=False),
        pa.field("answer", pa.string(), nullable=False),  # yes / no, display names, or target ids
        pa.field("answer_labels", pa.list_(pa.string())),  # canonical labels the answer names
        pa.field("answer_target_ids", pa.list_(pa.string())),  # segment: records.targets ids
        pa.field("exhaustive", pa.bool_()),  # findings: the record is complete, the list is all there is
    ],
    metadata={"shardsmith.schema": "dialogues", "shardsmith.schema_version": VIEWS_SCHEMA_VERSION},
)
