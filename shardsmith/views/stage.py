"""The release step's one call: staged records in, view tables as Parquet plus card sections out.

    staged = stage_views(records_files, scratch / "views")
    for name, files in staged.files.items():      # grounding, consensus, dialogues (non-empty only)
        tables.append(TableInput(TABLES[name], files))
    card_text += staged.card_markdown

Records are read with ``VIEW_COLUMNS`` only, batch by batch, so pixels never load. The view rows
themselves are small (boxes, one RLE per row) and are written once at the end, one file per table
holding every split (``publish`` splits by the ``split`` column).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.atomic import write_parquet_atomic
from shardsmith.schemas.views import CONSENSUS_SCHEMA, DIALOGUES_SCHEMA, GROUNDING_SCHEMA
from shardsmith.views import VIEW_COLUMNS, build_views

VIEW_SCHEMAS: dict[str, pa.Schema] = {
    "grounding": GROUNDING_SCHEMA, "consensus": CONSENSUS_SCHEMA, "dialogues": DIALOGUES_SCHEMA,
}
BATCH_ROWS = 256


@dataclass
class StagedViews:
    files: dict[str, list[Path]] = field(default_factory=dict)  # table -> Parquet files (non-empty tables)
    rows: dict[str, int] = field(default_factory=dict)
    card_markdown: str = ""
    agreement: list[dict[str, Any]] = field(default_factory=list)  # per source and label (card, metadata)


def _record_batches(files: list[Path], remap: Callable[[pa.Table], pa.Table] | None = None):
    for f in files:
        pf = pq.ParquetFile(f)
        columns = [c for c in VIEW_COLUMNS if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            yield from remap(pa.Table.from_batches([batch])).to_batches() if remap else (batch,)


def stage_views(record_files: list[Path], out_dir: Path,
                remap: Callable[[pa.Table], pa.Table] | None = None) -> StagedViews:
    """Build every view over the staged records and write ``<out_dir>/<table>.parquet``.

    ``remap`` gives each batch of records its release-time split (duplicate groups), the same
    transform the release writer applies, so every view row sits in the same split as its record."""
    views = build_views(_record_batches(record_files, remap))
    out_dir.mkdir(parents=True, exist_ok=True)
    staged = StagedViews(card_markdown=views.card_markdown(), agreement=views.agreement.results())
    for name, schema in VIEW_SCHEMAS.items():
        rows = getattr(views, name)
        staged.rows[name] = len(rows)
        if not rows:
            continue
        path = out_dir / f"{name}.parquet"
        write_parquet_atomic(pa.Table.from_pylist(rows, schema=schema), path)
        staged.files[name] = [path]
    return staged
