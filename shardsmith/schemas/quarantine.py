"""The quarantine table: every rejected file or row, with where it failed and why.

Counts reconcile on every materialisation: inputs = records + quarantined.
"""

from __future__ import annotations

import pyarrow as pa

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("native_id", pa.string()),
        pa.field("raw_path", pa.string()),
        pa.field("stage", pa.string(), nullable=False),  # catalog | labels | decode | harmonise | validate
        pa.field("reason", pa.string(), nullable=False),  # short code, e.g. image_missing
        pa.field("detail", pa.string()),  # human-readable specifics
    ]
)


def quarantine_row(
    source: str,
    stage: str,
    reason: str,
    detail: str = "",
    native_id: str | None = None,
    raw_path: str | None = None,
) -> dict:
    return {
        "source": source,
        "native_id": native_id,
        "raw_path": raw_path,
        "stage": stage,
        "reason": reason,
        "detail": detail,
    }


def quarantine_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)
