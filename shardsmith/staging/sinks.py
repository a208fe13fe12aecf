"""Where decoded rows go: streaming Parquet writers (bounded by rows and media bytes) and one sink
per part that writes its records, extra tables and quarantine rows and counts them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.atomic import atomic_write_json, commit, temp_path
from shardsmith.config import Settings
from shardsmith.schemas.quarantine import QUARANTINE_SCHEMA, quarantine_row
from shardsmith.schemas.records import RECORDS_SCHEMA
from shardsmith.sources.medical.base import MedicalSource
from shardsmith.staging.catalog_io import CatalogRow
from shardsmith.staging.pool import Outcome

BATCH_ROWS = 64
BATCH_BYTES = 32 << 20  # media bytes buffered before a row group is flushed


@dataclass
class StageCounts:
    source: str
    inputs: int
    records: int
    quarantined: int
    items_ok: int
    reasons: dict[str, int] = field(default_factory=dict)
    label_distribution: dict[str, int] = field(default_factory=dict)
    extra_tables: dict[str, int] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        return self.inputs == self.items_ok + self.quarantined


class _StreamWriter:
    """Batches rows into a Parquet file (temp name until closed).

    A batch is flushed at ``BATCH_ROWS`` rows or ``BATCH_BYTES`` of media bytes, whichever comes
    first, so native-size 16-bit images cannot make one buffered batch hold gigabytes.
    """

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = path, schema
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(path)
        # No dictionary encoding for binary columns: on a volume's .npy bytes (hundreds of MB in one
        # value) it only adds copies before falling back to plain encoding.
        plain = {f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
                 or (pa.types.is_struct(f.type) and any(pa.types.is_binary(c.type) for c in f.type))}
        # nor min/max statistics, which would copy such a value twice more. Data pages v2: a v1 page
        # copies levels and values into one buffer before compressing it, so a volume's value cost
        # twice its size in the writer instead of once (issue 24, volumes).
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd", data_page_version="2.0",
                                       use_dictionary=[n for n in schema.names if n not in plain],
                                       write_statistics=[n for n in schema.names if n not in plain])
        self.buffer: list[dict] = []
        self.buffer_bytes = 0
        self.count = 0

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        self.buffer_bytes += _media_bytes(row)
        if len(self.buffer) >= BATCH_ROWS or self.buffer_bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            table = (_one_row_table(self.buffer[0], self.schema) if len(self.buffer) == 1
                     else pa.Table.from_pylist(self.buffer, schema=self.schema))
            self.writer.write_table(table)
            self.count += len(self.buffer)
            self.buffer = []
            self.buffer_bytes = 0

    def close(self) -> None:
        self.flush()
        self.writer.close()
        commit(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


def _one_row_table(row: dict, schema: pa.Schema) -> pa.Table:
    """One row as a table whose top-level binary values are Arrow views of the row's own buffers: a
    stored volume's .npy (hundreds of MB, flushed on its own) is not copied into Arrow first."""
    columns = []
    for f in schema:
        value = row.get(f.name)
        if isinstance(value, (bytes, bytearray)) and pa.types.is_binary(f.type):
            offsets = pa.py_buffer(np.array([0, len(value)], dtype=np.int32))
            columns.append(pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(value)]))
        else:
            columns.append(pa.array([value], type=f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _media_bytes(row: dict) -> int:
    """Bytes of the binary values of a row (top level or one struct deep, like ``image.bytes``)."""
    n = 0
    for value in row.values():
        if isinstance(value, (bytes, bytearray)):  # a stored volume's .npy is a bytearray filled slab by slab
            n += len(value)
        elif isinstance(value, dict):
            n += sum(len(v) for v in value.values() if isinstance(v, (bytes, bytearray)))
    return n


# --------------------------------------------------------------------------- parts
@dataclass
class PartInput:
    """What one part starts from: how many catalog rows will be routed to it, and the catalog's own
    quarantine rows it owns (a whole source owns them; a hash bucket none)."""

    total: int
    catalog_quarantine: Iterable[dict] = ()


class PartSink:
    """The files of one part, written as its outcomes arrive."""

    def __init__(self, settings: Settings, source: MedicalSource, part: str, spec: PartInput):
        layout = settings.layout
        self.source, self.part, self.layout = source, part, layout
        self.writers = {"records": _StreamWriter(layout.table(source.name, "records", part), RECORDS_SCHEMA)}
        self.extra_names = tuple(source.extra_tables())
        for name, schema in source.extra_tables().items():
            self.writers[name] = _StreamWriter(layout.table(source.name, name, part), schema)
        self.quarantine = _StreamWriter(layout.quarantine(source.name, part), QUARANTINE_SCHEMA)
        self.reasons: Counter = Counter()
        self.labels: Counter = Counter()
        self.items_ok = 0
        self.inputs = 0
        for q in spec.catalog_quarantine:
            self._quarantine(q)
            self.inputs += 1

    def _quarantine(self, row: dict) -> None:
        self.quarantine.add(row)
        self.reasons[row["reason"]] += 1

    def add(self, row: CatalogRow, outcome: Outcome) -> None:
        status, first, second = outcome
        self.inputs += 1
        if status == "quarantine":
            self._quarantine(quarantine_row(self.source.name, "decode", str(first), str(second),
                                            self.source._public_id(row.native_id), row.raw_path))
            return
        records = self.writers["records"]
        for rec in first:
            records.add(rec)
            for f in rec["findings"] or ():
                if f["status"] == "present":
                    self.labels[f["label"]] += 1
        for name, extra_rows in second.items():
            writer = self.writers[name]
            for rec in extra_rows:
                writer.add(rec)
        self.items_ok += 1

    def abort(self) -> None:
        for w in (*self.writers.values(), self.quarantine):
            w.abort()

    def close(self) -> StageCounts:
        for w in (*self.writers.values(), self.quarantine):
            w.close()
        counts = StageCounts(
            source=self.source.name,
            inputs=self.inputs,
            records=self.writers["records"].count,
            quarantined=self.quarantine.count,
            items_ok=self.items_ok,
            reasons=dict(sorted(self.reasons.items())),
            label_distribution=dict(sorted(self.labels.items())),
            extra_tables={n: self.writers[n].count for n in self.extra_names},
        )
        atomic_write_json(self.layout.counts(self.source.name, self.part), asdict(counts), indent=2)
        return counts
