"""The pretraining views of a release (``pretrain``, ``pairs``, ``knowledge``), staged beside the task
views by ``views.stage.stage_views`` from the final records, plus their card section.

Memory is bounded, whatever the size of the release: the records are read a batch at a time
(``pretrain.iter_radiographs``: narrow columns, no pixels) and each batch's radiographs are spread
over ``k = ceil(records / BUCKET_ROWS)`` scratch Arrow files twice, by a hash of their
``image_group`` (every copy of a film in one file, whatever its source or patient) and by a hash of
(source, patient, split) (every radiograph a patient's pairs need in one file). One file at a time
is then read whole and made into its ``pretrain`` rows (``pretrain.pretrain_table``) and its
``pairs`` (``pairs.pair_rows``), written to a sorted scratch run; the runs are merged into the
published order (``pretrain`` by record_id, ``pairs`` by source, patient and split), so the rows
and their order, and the bytes written, are those of one table built over the whole release. The
peak holds about ``BUCKET_ROWS`` radiographs (tens of MB) plus ``RUN_ROWS`` rows of each run
during the merge (``k * RUN_ROWS`` rows as dicts: about 1 MB per 10^5 records); ``knowledge`` is
one more pass over the records' label and report columns, 1,024 rows at a time. The card is
counted from the rows as they are written, never read back. Measured (bench.pretraining): 265 MB
at 60,000 records and 285 MB at 377,110, of which 92 MB is the process before the views.
Rows are written ``WRITE_ROWS`` at a time through the task views' writer.
"""

from __future__ import annotations

import heapq
import math
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shardsmith.schemas.pretraining import KNOWLEDGE_SCHEMA, PAIRS_SCHEMA, PRETRAIN_SCHEMA
from shardsmith.views.knowledge import KNOWLEDGE_COLUMNS, MAX_SENTENCES_PER_LABEL, knowledge_rows
from shardsmith.views.pairs import MAX_PAIRS_PER_PATIENT, PAIR_COLUMNS, pair_rows
from shardsmith.views.pretrain import RULE, iter_radiographs, pretrain_table

PRETRAINING_SCHEMAS: dict[str, pa.Schema] = {"pretrain": PRETRAIN_SCHEMA, "pairs": PAIRS_SCHEMA,
                                             "knowledge": KNOWLEDGE_SCHEMA}
WRITE_ROWS = 8_192
BUCKET_ROWS = 65_536  # records per scratch bucket (on average): the views' peak working set
READ_ROWS = 16_384  # records read a batch at a time
RUN_ROWS = 1_024  # rows of each sorted run in memory while the runs are merged


@dataclass
class StagedPretraining:
    files: dict[str, list[Path]] = field(default_factory=dict)  # non-empty tables only
    rows: dict[str, int] = field(default_factory=dict)
    card_markdown: str = ""


@dataclass
class CardCounts:
    """What the card says, counted from the rows as they are written."""
    radiographs: int = 0
    pretrain: int = 0
    per_source: Counter = field(default_factory=Counter)
    copies: Counter = field(default_factory=Counter)
    with_text: Counter = field(default_factory=Counter)
    relations: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)

    def add_pretrain(self, row: dict[str, Any]) -> None:
        self.pretrain += 1
        self.per_source[row["source"]] += 1
        self.copies[row["source"]] += row["copies"] - 1
        if row["has_text"]:
            self.with_text[row["source"]] += 1


def _write(path: Path, schema: pa.Schema, rows: Iterable[dict[str, Any]]) -> int:
    """Rows (dicts) to ``path``, ``WRITE_ROWS`` a row group; 0 rows writes no file."""
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


class _Buckets:
    """``k`` scratch Arrow IPC files; a table's rows go to the file its hash names, in the order given."""

    def __init__(self, folder: Path, name: str, k: int) -> None:
        self.paths = [folder / f"{name}-{b:05d}.arrow" for b in range(k)]
        self.writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
        self.schema: pa.Schema | None = None

    def add(self, table: pa.Table, keys: list[str]) -> None:
        if not table.num_rows:
            return
        self.schema = self.schema or table.schema
        table = table.cast(self.schema)
        idx = np.fromiter((zlib.crc32(k.encode()) % len(self.paths) for k in keys), np.int64, len(keys))
        order = np.argsort(idx, kind="stable")
        table = table.take(pa.array(order))
        counts = np.bincount(idx, minlength=len(self.paths))
        start = 0
        for b in np.flatnonzero(counts):
            n = int(counts[b])
            if b not in self.writers:
                self.writers[b] = pa.ipc.new_file(self.paths[b], self.schema)
            self.writers[b].write_table(table.slice(start, n))
            start += n

    def close(self) -> None:
        for w in self.writers.values():
            w.close()

    def tables(self) -> Iterator[pa.Table]:
        """Each non-empty bucket, read whole, one at a time."""
        for b in sorted(self.writers):
            with pa.memory_map(str(self.paths[b])) as src:
                table = pa.ipc.open_file(src).read_all()
            yield table


def _run(path: Path, schema: pa.Schema, tables: Iterable[pa.Table]) -> Path:
    with pa.ipc.new_file(path, schema) as w:
        for t in tables:
            w.write_table(t, max_chunksize=RUN_ROWS)
    return path


def _run_rows(path: Path) -> Iterator[dict[str, Any]]:
    with pa.memory_map(str(path)) as src:
        reader = pa.ipc.open_file(src)
        for i in range(reader.num_record_batches):
            yield from reader.get_batch(i).to_pylist()


def _merge(runs: list[Path], key: Callable[[dict[str, Any]], Any]) -> Iterator[dict[str, Any]]:
    """The rows of sorted runs in one order (a batch of each run in memory)."""
    return heapq.merge(*(_run_rows(r) for r in runs), key=key)


def _nulls_last(*values: Any) -> tuple:
    """Arrow's ascending order (nulls at the end) as a Python key."""
    return tuple((v is None, v or "") for v in values)


def _pair_key(row: dict[str, Any]) -> tuple:
    return _nulls_last(row["source"], row["patient_id"], row["split"])


def _tap(rows: Iterable[dict[str, Any]], see: Callable[[dict[str, Any]], None]) -> Iterator[dict[str, Any]]:
    for row in rows:
        see(row)
        yield row


def _pair_table(rows: Iterable[dict[str, Any]]) -> Iterator[pa.Table]:
    buf: list[dict[str, Any]] = []
    for row in rows:
        buf.append(row)
        if len(buf) >= WRITE_ROWS:
            yield pa.Table.from_pylist(buf, schema=PAIRS_SCHEMA)
            buf = []
    if buf:
        yield pa.Table.from_pylist(buf, schema=PAIRS_SCHEMA)


def stage_pretraining(record_files: list[Path], out_dir: Path, bucket_rows: int = BUCKET_ROWS,
                      read_rows: int = READ_ROWS) -> StagedPretraining:
    """``<out_dir>/{pretrain,pairs,knowledge}.parquet`` from the final records, and the card section
    (memory bounded by ``bucket_rows``: the module's docstring)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staged = StagedPretraining()
    counts = CardCounts()
    records = sum(pq.ParquetFile(f).metadata.num_rows for f in record_files)
    k = max(1, math.ceil(records / bucket_rows))
    with tempfile.TemporaryDirectory(prefix=".pretraining-", dir=out_dir) as tmp:
        scratch = Path(tmp)
        groups, patients = _Buckets(scratch, "groups", k), _Buckets(scratch, "patients", k)
        for part in iter_radiographs(record_files, read_rows):
            counts.radiographs += part.num_rows
            groups.add(part, part["image_group"].to_pylist())
            placed = part.filter(pc.is_valid(part["patient_id"])).select(PAIR_COLUMNS)
            patients.add(placed, ["\x1f".join(map(str, key)) for key in zip(
                placed["source"].to_pylist(), placed["patient_id"].to_pylist(), placed["split"].to_pylist(),
                strict=True)])
        groups.close()
        patients.close()
        pretrain_runs = [_run(scratch / f"pretrain-{i:05d}.arrow", PRETRAIN_SCHEMA, [pretrain_table(t)])
                         for i, t in enumerate(groups.tables())]
        pair_runs = [_run(scratch / f"pairs-{i:05d}.arrow", PAIRS_SCHEMA, _pair_table(pair_rows(t)))
                     for i, t in enumerate(patients.tables())]
        makers: dict[str, Iterable[dict[str, Any]]] = {
            "pretrain": _tap(_merge(pretrain_runs, lambda r: r["record_id"]), counts.add_pretrain),
            "pairs": _tap(_merge(pair_runs, _pair_key),
                          lambda r: counts.relations.update([(r["source"], r["relation"])])),
            "knowledge": _tap(knowledge_rows(_record_rows(record_files)), lambda r: counts.kinds.update([r["kind"]])),
        }
        for name, rows in makers.items():
            path = out_dir / f"{name}.parquet"
            staged.rows[name] = _write(path, PRETRAINING_SCHEMAS[name], rows)
            if staged.rows[name]:
                staged.files[name] = [path]
    staged.card_markdown = pretraining_section(counts)
    return staged


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in r) + " |" for r in rows)]


def pretraining_section(counts: CardCounts) -> str:
    """Card: distinct radiographs per source and the copies collapsed; pairs per relation; knowledge."""
    rule = ", ".join(c for c, _ in RULE[1:])
    lines = ["## Pretraining views", "",
             "`pretrain`: one row per distinct chest radiograph across sources; copies of one film "
             f"(`image_group`) collapse to one representative (rule, in order: {rule}; i.e. lossless "
             "before lossy, the larger stored image, an official split, the smallest record_id). "
             f"`pairs`: two radiographs of one patient within one split, at most {MAX_PAIRS_PER_PATIENT} a "
             "patient. `knowledge`: per finding the vocabulary's names, grounded phrases and report sentences "
             f"(at most {MAX_SENTENCES_PER_LABEL} sentences a finding), each with its records.", ""]
    if not counts.pretrain:
        return "\n".join(lines + ["No radiograph in this release.", ""])
    per = counts.per_source
    rows = [[s, per[s], counts.copies[s], counts.with_text[s]] for s in sorted(per)]
    lines += _table(["source (representative)", "radiographs", "copies collapsed", "with text"], rows)
    lines += ["", f"{counts.radiographs} radiograph records -> {counts.pretrain} distinct radiographs "
              f"({counts.radiographs - counts.pretrain} rows removed as copies).", ""]
    rel = counts.relations
    if rel:
        lines += _table(["source", "relation", "pairs"], [[s, r, n] for (s, r), n in sorted(rel.items())]) + [""]
    kinds = counts.kinds
    if kinds:
        lines += _table(["knowledge kind", "rows"], [[k, n] for k, n in sorted(kinds.items())]) + [""]
    return "\n".join(lines)
