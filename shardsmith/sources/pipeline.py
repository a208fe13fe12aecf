"""Run one medical source end to end into staging: catalog -> records (+ volumes) -> quarantine.

Plain library code (no Dagster): the assets call these functions, and so can a script.
Records are streamed into Parquet in batches so memory does not grow with the dataset.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.config import Settings
from shardsmith.schemas.quarantine import QUARANTINE_SCHEMA, quarantine_row
from shardsmith.schemas.records import RECORDS_SCHEMA
from shardsmith.sources.base import Catalog, CatalogEntry, LabelledItem, MedicalSource, RecordError

log = logging.getLogger(__name__)

CATALOG_SCHEMA = pa.schema(
    [
        ("native_id", pa.string()),
        ("raw_path", pa.string()),
        ("raw_sha256", pa.string()),
        ("size", pa.int64()),
        ("item_json", pa.string()),
    ]
)
BATCH_ROWS = 64
Progress = Callable[[int, int, float], None]  # done, total, seconds elapsed


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


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write via a temp file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_catalog(settings: Settings, source: MedicalSource, catalog: Catalog) -> Path:
    rows = [
        {
            "native_id": e.item.native_id,
            "raw_path": e.raw_path,
            "raw_sha256": e.raw_sha256,
            "size": e.size,
            "item_json": e.item.to_json(),
        }
        for e in catalog.entries
    ]
    out = settings.staging_dir(source.name) / "catalog.parquet"
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=CATALOG_SCHEMA), out)
    q = settings.staging_dir(source.name) / "catalog_quarantine.parquet"
    write_parquet_atomic(pa.Table.from_pylist(catalog.quarantine, schema=QUARANTINE_SCHEMA), q)
    meta = {
        "label_files": catalog.label_files,
        "images_on_disk": catalog.images_on_disk,
        "entries": len(catalog.entries),
        "quarantined": len(catalog.quarantine),
    }
    (settings.staging_dir(source.name) / "catalog.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return out


def read_catalog(settings: Settings, source_name: str) -> tuple[list[CatalogEntry], list[dict]]:
    d = settings.staging_dir(source_name)
    table = pq.read_table(d / "catalog.parquet")
    entries = [
        CatalogEntry(LabelledItem.from_json(r["item_json"]), r["raw_path"], r["raw_sha256"], r["size"])
        for r in table.to_pylist()
    ]
    quarantine = pq.read_table(d / "catalog_quarantine.parquet").to_pylist()
    return entries, quarantine


class _StreamWriter:
    """Batches rows into a Parquet file (temp name until closed)."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = path, schema
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        self.buffer: list[dict] = []
        self.count = 0

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema))
            self.count += len(self.buffer)
            self.buffer = []

    def close(self) -> None:
        self.flush()
        self.writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


def build_records(
    settings: Settings,
    source: MedicalSource,
    entries: list[CatalogEntry],
    catalog_quarantine: list[dict],
    progress: Progress | None = None,
    part: str = "records",
) -> StageCounts:
    """Decode every catalog entry into staging Parquet; failures become quarantine rows."""
    root = settings.raw_dir(source.name)
    staging = settings.staging_dir(source.name)
    writers = {"records": _StreamWriter(staging / f"{part}.parquet", RECORDS_SCHEMA)}
    extra_schemas = source.extra_tables()
    for name, schema in extra_schemas.items():
        writers[name] = _StreamWriter(staging / f"{name}-{part}.parquet" if part != "records"
                                      else staging / f"{name}.parquet", schema)
    quarantine = list(catalog_quarantine)
    labels: Counter = Counter()
    items_ok = 0
    start = time.monotonic()
    try:
        for i, entry in enumerate(entries, start=1):
            try:
                rows = list(source.build_records(entry, root, settings))
                extra = {name: list(source.build_extra(name, entry, root, settings)) for name in extra_schemas}
            except RecordError as e:
                quarantine.append(
                    quarantine_row(source.name, "decode", e.reason, e.detail,
                                   source._public_id(entry.item.native_id), entry.raw_path)
                )
            else:
                for row in rows:
                    writers["records"].add(row)
                    for f in row["findings"] or ():
                        if f["status"] == "present":
                            labels[f["label"]] += 1
                for name, extra_rows in extra.items():
                    for row in extra_rows:
                        writers[name].add(row)
                items_ok += 1
            if progress and (i % 25 == 0 or i == len(entries)):
                progress(i, len(entries), time.monotonic() - start)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    for w in writers.values():
        w.close()
    qname = "quarantine.parquet" if part == "records" else f"quarantine-{part}.parquet"
    write_parquet_atomic(pa.Table.from_pylist(quarantine, schema=QUARANTINE_SCHEMA),
                         settings.quarantine_dir(source.name) / qname)
    reasons = Counter(q["reason"] for q in quarantine)
    counts = StageCounts(
        source=source.name,
        inputs=len(entries) + len(catalog_quarantine),
        records=writers["records"].count,
        quarantined=len(quarantine),
        items_ok=items_ok,
        reasons=dict(sorted(reasons.items())),
        label_distribution=dict(sorted(labels.items())),
        extra_tables={n: writers[n].count for n in extra_schemas},
    )
    cname = "counts.json" if part == "records" else f"counts-{part}.json"
    (staging / cname).write_text(json.dumps(asdict(counts), indent=2, sort_keys=True))
    return counts


def run_source(settings: Settings, source: MedicalSource, progress: Progress | None = None) -> StageCounts:
    """Catalog and records in one call (the CLI's ``labels``-free path and the tests use it)."""
    catalog = source.catalog(settings.raw_dir(source.name))
    write_catalog(settings, source, catalog)
    counts = build_records(settings, source, catalog.entries, catalog.quarantine, progress)
    log.info("%s: %s", source.name, json.dumps(asdict(counts)))
    return counts
