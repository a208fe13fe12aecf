"""The release step's one call: staged records in, view tables as Parquet plus card sections out.

    staged = stage_views(records_files, scratch / "views")
    for name, files in staged.files.items():      # grounding, consensus, dialogues (non-empty only)
        tables.append(TableInput(TABLES[name], files))
    card_text += staged.card_markdown

Records are read with ``VIEW_COLUMNS`` only, batch by batch, so pixels never load. The view rows
are written as they are made, ``WRITE_ROWS`` at a time, one file per table holding every split
(``publish`` splits by the ``split`` column).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.schemas.views import CONSENSUS_SCHEMA, DIALOGUES_SCHEMA, GROUNDING_SCHEMA
from shardsmith.views import VIEW_COLUMNS, stream_views
from shardsmith.views.card import consensus_section, dialogues_section, fairness_section, grounding_section

VIEW_SCHEMAS: dict[str, pa.Schema] = {
    "grounding": GROUNDING_SCHEMA, "consensus": CONSENSUS_SCHEMA, "dialogues": DIALOGUES_SCHEMA,
}
BATCH_ROWS = 256
WRITE_ROWS = 8_192  # view rows per Parquet row group (and per write)


@dataclass
class StagedViews:
    files: dict[str, list[Path]] = field(default_factory=dict)  # table -> Parquet files (non-empty tables)
    rows: dict[str, int] = field(default_factory=dict)
    card_markdown: str = ""
    agreement: list[dict[str, Any]] = field(default_factory=list)  # per source and label (card, metadata)


def _record_batches(files: list[Path]):
    for f in files:
        pf = pq.ParquetFile(f)
        columns = [c for c in VIEW_COLUMNS if c in pf.schema_arrow.names]
        yield from pf.iter_batches(batch_size=BATCH_ROWS, columns=columns)


class _TableWriter:
    """View rows of one table to one Parquet file, ``WRITE_ROWS`` at a time."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema = path, schema
        self.tmp = path.with_name(path.name + ".tmp")
        self.writer: pq.ParquetWriter | None = None
        self.buffer: list[dict[str, Any]] = []
        self.rows = 0

    def add(self, row: dict[str, Any]) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= WRITE_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema), row_group_size=WRITE_ROWS)
        self.rows += len(self.buffer)
        self.buffer = []

    def close(self) -> bool:
        """Finish the file; False (and no file) when the table got no row."""
        self.flush()
        if self.writer is None:
            return False
        self.writer.close()
        os.replace(self.tmp, self.path)
        return True


def _read(path: Path, columns: list[str]):
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=columns):
        yield from batch.to_pylist()


def stage_views(record_files: list[Path], out_dir: Path) -> StagedViews:
    """Build every view over the release's final records and write ``<out_dir>/<table>.parquet``.

    ``record_files`` are the rows as published (``publish.release.write_final_rows`` gave them their
    duplicate group's split), so every view row sits in the same split as its record. Rows are written ``WRITE_ROWS`` at a time and the card sections re-read the narrow columns they
    count, so nothing here holds a release's view rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {name: _TableWriter(out_dir / f"{name}.parquet", schema) for name, schema in VIEW_SCHEMAS.items()}
    views = stream_views(_record_batches(record_files), lambda table, row: writers[table].add(row))
    staged = StagedViews(agreement=views.agreement.results())
    for name, w in writers.items():
        staged.rows[name] = w.rows + len(w.buffer)
        if w.close():
            staged.files[name] = [w.path]
    grounding = _read(out_dir / "grounding.parquet", ["source", "label", "size_bin", "derived"]) \
        if "grounding" in staged.files else []
    dialogues = _read(out_dir / "dialogues.parquet", ["source", "turn", "record_id"]) \
        if "dialogues" in staged.files else []
    staged.card_markdown = "\n".join([
        grounding_section(grounding), consensus_section(staged.agreement),
        dialogues_section(dialogues), fairness_section(views.prevalence),
    ])
    from shardsmith.views.pretraining_stage import stage_pretraining

    pre = stage_pretraining(record_files, out_dir)  # pretrain, pairs, knowledge from the same final records
    staged.files.update(pre.files)
    staged.rows.update(pre.rows)
    staged.card_markdown += "\n" + pre.card_markdown
    return staged
