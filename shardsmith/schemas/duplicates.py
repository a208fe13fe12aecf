"""The release ``duplicates`` table: members of every group that holds the same radiograph twice.

One row per record in a group with at least one image-identity link (exact or perceptual); members
that joined only through the same pseudonymised patient are listed too (method ``patient``), so the
table explains every record that a group pulled into its split. Singletons are not listed.

Bump DUPLICATES_SCHEMA_VERSION on any change a reader would notice.
"""

from __future__ import annotations

import pyarrow as pa

DUPLICATES_SCHEMA_VERSION = "1.0.0"

# Strongest evidence first: a record's row names its strongest link to another member.
METHODS = ("exact", "perceptual", "patient")

DUPLICATES_SCHEMA = pa.schema(
    [
        pa.field("duplicate_group", pa.string(), nullable=False),  # = records.duplicate_group
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("native_id", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),  # exact | perceptual | patient
        pa.field("distance", pa.int32()),  # Hamming distance of the 64-bit hashes; 0 exact; null patient
        pa.field("similarity", pa.float32()),  # best thumbnail correlation; 1 exact; null patient
        pa.field("linked_record_id", pa.string(), nullable=False),  # the member this link points to
        pa.field("split", pa.string(), nullable=False),  # the group's split (the release splits by it)
    ],
    metadata={"shardsmith.schema": "duplicates", "shardsmith.schema_version": DUPLICATES_SCHEMA_VERSION},
)
