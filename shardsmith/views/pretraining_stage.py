"""The pretraining views of a release (``pretrain``, ``pairs``, ``knowledge``), staged beside the task
views by ``views.stage.stage_views`` from the final records, plus their card section.

``pretrain`` and ``pairs`` come from one narrow Arrow table of the radiographs (no pixels, no
per-record dicts); ``knowledge`` from one more pass over the records' label and report columns.
Rows are written ``WRITE_ROWS`` at a time through the task views' writer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.schemas.pretraining import KNOWLEDGE_SCHEMA, PAIRS_SCHEMA, PRETRAIN_SCHEMA
from shardsmith.views.knowledge import KNOWLEDGE_COLUMNS, MAX_SENTENCES_PER_LABEL, knowledge_rows
from shardsmith.views.pairs import MAX_PAIRS_PER_PATIENT, pair_rows
from shardsmith.views.pretrain import RULE, pretrain_table, radiographs

PRETRAINING_SCHEMAS: dict[str, pa.Schema] = {"pretrain": PRETRAIN_SCHEMA, "pairs": PAIRS_SCHEMA,
                                             "knowledge": KNOWLEDGE_SCHEMA}
WRITE_ROWS = 8_192


@dataclass
class StagedPretraining:
    files: dict[str, list[Path]] = field(default_factory=dict)  # non-empty tables only
    rows: dict[str, int] = field(default_factory=dict)
    card_markdown: str = ""


def _write(path: Path, schema: pa.Schema, rows) -> int:
    """Rows (dicts or one Arrow table) to ``path``; 0 rows writes no file."""
    if isinstance(rows, pa.Table):
        if rows.num_rows:
            pq.write_table(rows, path, row_group_size=WRITE_ROWS)
        return rows.num_rows
    writer, buf, n = None, [], 0
    for row in rows:
        buf.append(row)
        if len(buf) >= WRITE_ROWS:
            writer = writer or pq.ParquetWriter(path, schema)
            writer.write_table(pa.Table.from_pylist(buf, schema=schema))
            n, buf = n + len(buf), []
    if buf:
        writer = writer or pq.ParquetWriter(path, schema)
        writer.write_table(pa.Table.from_pylist(buf, schema=schema))
        n += len(buf)
    if writer is not None:
        writer.close()
    return n


def _record_rows(files: list[Path]):
    for f in files:
        pf = pq.ParquetFile(f)
        cols = [c for c in KNOWLEDGE_COLUMNS if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=1024, columns=cols):
            yield from batch.to_pylist()


def stage_pretraining(record_files: list[Path], out_dir: Path) -> StagedPretraining:
    """``<out_dir>/{pretrain,pairs,knowledge}.parquet`` from the final records, and the card section."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staged = StagedPretraining()
    narrow = radiographs(record_files)
    pretrain = pretrain_table(narrow)
    makers: dict[str, Any] = {
        "pretrain": pretrain,
        "pairs": pair_rows(narrow),
        "knowledge": knowledge_rows(_record_rows(record_files)),
    }
    for name, rows in makers.items():
        path = out_dir / f"{name}.parquet"
        staged.rows[name] = _write(path, PRETRAINING_SCHEMAS[name], rows)
        if staged.rows[name]:
            staged.files[name] = [path]
    pairs = (pq.read_table(out_dir / "pairs.parquet", columns=["source", "relation"]).to_pylist()
             if "pairs" in staged.files else [])
    knowledge = (pq.read_table(out_dir / "knowledge.parquet", columns=["kind"]).to_pylist()
                 if "knowledge" in staged.files else [])
    staged.card_markdown = pretraining_section(narrow.num_rows, pretrain, pairs, knowledge)
    return staged


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in r) + " |" for r in rows)]


def pretraining_section(radiograph_records: int, pretrain: pa.Table, pairs: list[dict], knowledge: list[dict]) -> str:
    """Card: distinct radiographs per source and the copies collapsed; pairs per relation; knowledge."""
    rule = ", ".join(c for c, _ in RULE[1:])
    lines = ["## Pretraining views", "",
             "`pretrain`: one row per distinct chest radiograph across sources; copies of one film "
             f"(`image_group`) collapse to one representative (rule, in order: {rule}; i.e. lossless "
             "before lossy, the larger stored image, an official split, the smallest record_id). "
             f"`pairs`: two radiographs of one patient within one split, at most {MAX_PAIRS_PER_PATIENT} a "
             "patient. `knowledge`: per finding the vocabulary's names, grounded phrases and report sentences "
             f"(at most {MAX_SENTENCES_PER_LABEL} sentences a finding), each with its records.", ""]
    if not pretrain.num_rows:
        return "\n".join(lines + ["No radiograph in this release.", ""])
    per = Counter(pretrain["source"].to_pylist())
    copies = Counter()
    for src, n in zip(pretrain["source"].to_pylist(), pretrain["copies"].to_pylist(), strict=True):
        copies[src] += n - 1
    text = Counter(s for s, t in zip(pretrain["source"].to_pylist(), pretrain["has_text"].to_pylist(), strict=True)
                   if t)
    rows = [[s, per[s], copies[s], text[s]] for s in sorted(per)]
    lines += _table(["source (representative)", "radiographs", "copies collapsed", "with text"], rows)
    lines += ["", f"{radiograph_records} radiograph records -> {pretrain.num_rows} distinct radiographs "
              f"({radiograph_records - pretrain.num_rows} rows removed as copies).", ""]
    rel = Counter((p["source"], p["relation"]) for p in pairs)
    if rel:
        lines += _table(["source", "relation", "pairs"], [[s, r, n] for (s, r), n in sorted(rel.items())]) + [""]
    kinds = Counter(k["kind"] for k in knowledge)
    if kinds:
        lines += _table(["knowledge kind", "rows"], [[k, n] for k, n in sorted(kinds.items())]) + [""]
    return "\n".join(lines)
