"""Views for self-supervised and vision-language pretraining, derived from ``records`` at release
time (issue 23; ``shardsmith.views.pretrain``, ``.pairs``, ``.knowledge``).

* ``pretrain``: one row per distinct chest radiograph across sources (copies collapsed);
* ``pairs``: two distinct radiographs of one patient (other view of the study, or a follow-up);
* ``knowledge``: per canonical finding, the descriptions the release holds, traceable to its rows.

Bump PRETRAINING_SCHEMA_VERSION on any change a reader would notice.
"""

from __future__ import annotations

import pyarrow as pa

PRETRAINING_SCHEMA_VERSION = "1.0.0"

PRETRAIN_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),  # the group's representative record
        pa.field("image_group", pa.string(), nullable=False),  # records.image_group: the copies
        pa.field("source", pa.string(), nullable=False),
        pa.field("patient_id", pa.string()),  # keyed pseudonym (per source)
        pa.field("study_id", pa.string()),
        pa.field("view", pa.string()),
        pa.field("split", pa.string(), nullable=False),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("lossless", pa.bool_(), nullable=False),  # the stored pixels came from a lossless file
        pa.field("copies", pa.int32(), nullable=False),  # records in the group (1 = no duplicate)
        pa.field("copy_sources", pa.list_(pa.string())),  # sources of the group's records, sorted
        pa.field("has_labels", pa.bool_(), nullable=False),  # some copy states a finding
        pa.field("has_boxes", pa.bool_(), nullable=False),  # some copy has a box or mask
        pa.field("has_text", pa.bool_(), nullable=False),  # some copy has text (report or phrase)
    ],
    metadata={"shardsmith.schema": "pretrain", "shardsmith.schema_version": PRETRAINING_SCHEMA_VERSION},
)

PAIR_RELATIONS = ("same_study_other_view", "follow_up")

PAIRS_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),  # "<record_id_a>:<record_id_b>"
        pa.field("source", pa.string(), nullable=False),
        pa.field("patient_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("relation", pa.string(), nullable=False),  # PAIR_RELATIONS
        pa.field("record_id_a", pa.string(), nullable=False),  # the earlier study (or the smaller id)
        pa.field("record_id_b", pa.string(), nullable=False),
        pa.field("view_a", pa.string()),
        pa.field("view_b", pa.string()),
        pa.field("study_order_a", pa.int32()),
        pa.field("study_order_b", pa.int32()),
        pa.field("days_between", pa.int32()),  # follow_up with day offsets (MIMIC); else null
    ],
    metadata={"shardsmith.schema": "pairs", "shardsmith.schema_version": PRETRAINING_SCHEMA_VERSION},
)

KNOWLEDGE_KINDS = ("display_name", "synonym", "grounded_phrase", "report_sentence")

KNOWLEDGE_SCHEMA = pa.schema(
    [
        pa.field("knowledge_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),  # canonical finding
        pa.field("kind", pa.string(), nullable=False),  # KNOWLEDGE_KINDS
        pa.field("text", pa.string(), nullable=False),  # verbatim: never written by this project
        pa.field("negated", pa.bool_()),  # report_sentence: the mention is negated; else null
        pa.field("source", pa.string(), nullable=False),  # vocabulary, or the records' source
        # the split of the records it comes from (a test report never teaches a training model);
        # vocabulary rows, which come from no record, are "shared"
        pa.field("split", pa.string(), nullable=False),
        pa.field("record_ids", pa.list_(pa.string())),  # records holding it (capped); none for vocabulary
    ],
    metadata={"shardsmith.schema": "knowledge", "shardsmith.schema_version": PRETRAINING_SCHEMA_VERSION},
)
