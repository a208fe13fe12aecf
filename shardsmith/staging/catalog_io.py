"""The staged catalog of a medical source: written as the source's entries stream in, read back in
batches. A catalog row stays a cheap tuple (id, path, checksum, size, item JSON) until a worker
decodes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.atomic import atomic_write_json, commit, temp_path, write_parquet_atomic
from shardsmith.config import Settings
from shardsmith.schemas.quarantine import QUARANTINE_SCHEMA
from shardsmith.sources.medical.base import Catalog, CatalogEntry, CatalogStream, LabelledItem, MedicalSource
from shardsmith.staging.layout import WHOLE
from shardsmith.staging.versions import bucket_of

CATALOG_SCHEMA = pa.schema(
    [
        ("native_id", pa.string()),
        ("raw_path", pa.string()),
        ("raw_sha256", pa.string()),
        ("size", pa.int64()),
        ("item_json", pa.string()),
    ]
)
CATALOG_BATCH = 2048  # catalog rows per row group written, and per batch read back


class CatalogRow(NamedTuple):
    """One staged catalog row as stored: cheap to read, pickle and route; the item is parsed only
    where it is decoded (in the worker)."""

    native_id: str
    raw_path: str
    raw_sha256: str
    size: int
    item_json: str

    def entry(self) -> CatalogEntry:
        return CatalogEntry(LabelledItem.from_json(self.item_json), self.raw_path, self.raw_sha256, self.size)

    @classmethod
    def of(cls, entry: CatalogEntry | CatalogRow) -> CatalogRow:
        if isinstance(entry, CatalogRow):
            return entry
        return cls(entry.item.native_id, entry.raw_path, entry.raw_sha256, entry.size, entry.item.to_json())


def write_catalog(settings: Settings, source: MedicalSource, catalog: Catalog | CatalogStream) -> Path:
    """Write the catalog as its entries come, ``CATALOG_BATCH`` rows per row group (a
    :class:`CatalogStream` is consumed here; its items are freed as they are written)."""
    layout = settings.layout
    out = layout.catalog(source.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(out)
    n = 0
    try:
        with pq.ParquetWriter(tmp, CATALOG_SCHEMA, compression="zstd") as writer:
            batch: list[CatalogEntry] = []
            for entry in catalog.entries:
                batch.append(entry)
                if len(batch) >= CATALOG_BATCH:
                    writer.write_table(_catalog_table(batch))
                    n += len(batch)
                    batch = []
            if batch or n == 0:
                writer.write_table(_catalog_table(batch))
                n += len(batch)
        commit(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    write_parquet_atomic(pa.Table.from_pylist(catalog.quarantine, schema=QUARANTINE_SCHEMA),
                         layout.catalog_quarantine(source.name))
    meta = {
        "label_files": catalog.label_files,
        "images_on_disk": catalog.images_on_disk,
        "entries": n,
        "quarantined": len(catalog.quarantine),
    }
    atomic_write_json(layout.catalog_meta(source.name), meta, indent=2)
    return out


def _catalog_table(entries: list[CatalogEntry]) -> pa.Table:
    cols = {
        "native_id": [e.item.native_id for e in entries],
        "raw_path": [e.raw_path for e in entries],
        "raw_sha256": [e.raw_sha256 for e in entries],
        "size": [e.size for e in entries],
        "item_json": [e.item.to_json() for e in entries],
    }
    return pa.Table.from_pydict(cols, schema=CATALOG_SCHEMA)


def fill_raw_sha256(settings: Settings, source_name: str, hashed: dict[str, str]) -> None:
    """Rewrite the staged catalog with the digests of ``hashed`` (raw path -> sha256) where a row has
    none: the same row groups and columns, so the file is the one the catalog step would have
    written had it hashed those files itself."""
    path = settings.layout.catalog(source_name)
    tmp = temp_path(path)
    pf = pq.ParquetFile(path)
    try:
        with pq.ParquetWriter(tmp, CATALOG_SCHEMA, compression="zstd") as writer:
            for i in range(pf.num_row_groups):
                table = pf.read_row_group(i, columns=list(CATALOG_SCHEMA.names))
                sha = table.column("raw_sha256").to_pylist()
                if any(not s and p in hashed for s, p in zip(sha, table.column("raw_path").to_pylist(), strict=True)):
                    paths = table.column("raw_path").to_pylist()
                    sha = [s or hashed.get(p, "") for s, p in zip(sha, paths, strict=True)]
                    table = table.set_column(table.schema.get_field_index("raw_sha256"), "raw_sha256",
                                             pa.array(sha, pa.string()))
                writer.write_table(table)
        commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def iter_catalog(settings: Settings, source_name: str, part: str = WHOLE) -> Iterator[CatalogRow]:
    """The staged catalog's rows in order, read ``CATALOG_BATCH`` at a time; only ``part``'s
    (a hash bucket of ``settings.buckets``) unless ``part`` is WHOLE."""
    pf = pq.ParquetFile(settings.layout.catalog(source_name))
    for batch in pf.iter_batches(batch_size=CATALOG_BATCH, columns=list(CATALOG_SCHEMA.names)):
        cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for row in zip(*cols, strict=True):
            if part == WHOLE or bucket_of(row[0], settings.buckets) == part:
                yield CatalogRow(*row)


def read_catalog(settings: Settings, source_name: str) -> tuple[list[CatalogEntry], list[dict]]:
    """The whole catalog in memory (tests and small tools; staging streams with ``iter_catalog``)."""
    layout = settings.layout
    entries = [row.entry() for row in iter_catalog(settings, source_name)]
    quarantine = pq.read_table(layout.catalog_quarantine(source_name)).to_pylist()
    return entries, quarantine
