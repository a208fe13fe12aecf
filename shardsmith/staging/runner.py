"""Run one medical source end to end into staging: catalog -> records (+ volumes) -> quarantine.

Plain library code (no Dagster): the assets call these functions, and so can a script.
Everything streams in bounded batches: the catalog is written while the source's labels are
joined with its images, parts read it back batch by batch, and records and quarantine rows go to
Parquet as they come, so memory does not grow with the number of rows.

Decoding uses every core: items go to a bounded process pool (``Settings.workers``, default the
usable CPU count, 1 = serial in this process) whose workers come from a fork server, and rows are
written in catalog order, so the output is byte-identical whatever the worker count. The pool is
pebble's, for its per-task timeout: an item that runs longer than ``Settings.item_timeout_s`` has
its worker stopped and becomes a ``timeout`` quarantine row, a worker that dies (segfault, OOM
kill) makes its item a ``worker_crashed`` row, and the rest goes on. As with any non-fork
multiprocessing, a *script* that calls ``run_source`` needs an ``if __name__ == "__main__":``
guard (workers import the main module); without one the workers cannot start and decoding falls
back to serial with a warning.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import logging
import multiprocessing
import multiprocessing.context
import os
import pickle
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from pebble import ProcessExpired, ProcessPool

from shardsmith import config
from shardsmith.atomic import atomic_write_json, commit, temp_path, write_parquet_atomic
from shardsmith.config import Settings
from shardsmith.errors import RecordError
from shardsmith.pseudonym import use_key
from shardsmith.schemas.quarantine import QUARANTINE_SCHEMA, quarantine_row
from shardsmith.schemas.records import RECORDS_SCHEMA
from shardsmith.sources.medical.base import Catalog, CatalogEntry, CatalogStream, LabelledItem, MedicalSource
from shardsmith.staging.layout import WHOLE, StagingLayout
from shardsmith.staging.versions import bucket_of

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
CATALOG_BATCH = 2048  # catalog rows per row group written, and per batch read back
BATCH_ROWS = 64
BATCH_BYTES = 32 << 20  # media bytes buffered before a row group is flushed
IN_FLIGHT_PER_WORKER = 4  # chunks submitted ahead per worker: keeps cores busy, bounds memory
CHUNK_ITEMS = 32  # items per pool task at most ...
CHUNK_BYTES = 2 << 20  # ... or this much raw file: large files go one per task
IN_FLIGHT_PER_WORKER_VOLUMES = 1  # one volume item carries a whole scan's slices
POOL_START_TIMEOUT_S = 180.0  # workers that have not answered by then cannot start (no main guard, ...)
POOL_RESTARTS = 3  # a pool that breaks as a whole (not one worker) is restarted this often per call
# Imported once by the fork server, so workers start with the 2D decoders already loaded.
_PRELOAD = ("shardsmith.staging.runner", "shardsmith.media.raster")
Progress = Callable[[int, int, float], None]  # done, total, seconds elapsed


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


def write_catalog(settings: Settings, source: MedicalSource, catalog: Catalog | CatalogStream) -> Path:
    """Write the catalog as its entries come, ``CATALOG_BATCH`` rows per row group (a
    :class:`CatalogStream` is consumed here; its items are freed as they are written)."""
    layout = StagingLayout(settings.home)
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


def iter_catalog(settings: Settings, source_name: str, part: str = WHOLE) -> Iterator[CatalogRow]:
    """The staged catalog's rows in order, read ``CATALOG_BATCH`` at a time; only ``part``'s
    (a hash bucket of ``settings.buckets``) unless ``part`` is WHOLE."""
    pf = pq.ParquetFile(StagingLayout(settings.home).catalog(source_name))
    for batch in pf.iter_batches(batch_size=CATALOG_BATCH, columns=list(CATALOG_SCHEMA.names)):
        cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for row in zip(*cols, strict=True):
            if part == WHOLE or bucket_of(row[0], settings.buckets) == part:
                yield CatalogRow(*row)


def read_catalog(settings: Settings, source_name: str) -> tuple[list[CatalogEntry], list[dict]]:
    """The whole catalog in memory (tests and small tools; staging streams with ``iter_catalog``)."""
    layout = StagingLayout(settings.home)
    entries = [row.entry() for row in iter_catalog(settings, source_name)]
    quarantine = pq.read_table(layout.catalog_quarantine(source_name)).to_pylist()
    return entries, quarantine


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
        # nor min/max statistics, which would copy such a value twice more.
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd",
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
            self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema))
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


def _media_bytes(row: dict) -> int:
    """Bytes of the binary values of a row (top level or one struct deep, like ``image.bytes``)."""
    n = 0
    for value in row.values():
        if isinstance(value, bytes):
            n += len(value)
        elif isinstance(value, dict):
            n += sum(len(v) for v in value.values() if isinstance(v, bytes))
    return n


# --------------------------------------------------------------------------- per-item work
# One item's outcome: ("ok", record rows, extra-table rows), ("quarantine", reason, detail) or,
# from a worker process only, ("error", "ExceptionClass: message", remote traceback).
Outcome = tuple[str, object, object]


class WorkerError(RuntimeError):
    """An unexpected exception in a worker process, re-raised in the parent with its traceback.

    Unexpected errors stop the build exactly as they do when decoding serially (a missing
    pseudonym key must not quietly quarantine every image); only RecordError quarantines.
    """


def _build_one(source: MedicalSource, row: CatalogRow, root: Path, settings: Settings,
               extra_names: tuple[str, ...]) -> Outcome:
    """Decode one entry. RecordError comes back as a value: it does not survive pickling."""
    try:
        entry = row.entry()
        rows = list(source.build_records(entry, root, settings))
        extra = {name: list(source.build_extra(name, entry, root, settings)) for name in extra_names}
    except RecordError as e:
        return ("quarantine", e.reason, e.detail)
    return ("ok", rows, extra)


# Per worker process: the job (source, raw root, settings, extra tables) it was started for. The
# pool is started per job, so a task carries only its catalog row.
_JOB: tuple[MedicalSource, Path, Settings, tuple[str, ...]] | None = None
_POOL: ProcessPool | None = None
_POOL_ID: tuple[bytes, int] | None = None


def _init_worker(job: bytes) -> None:
    """Unpickle the job once per worker; stop OpenCV from starting its own thread pool in each
    worker (the pool already uses every core)."""
    global _JOB
    import cv2

    cv2.setNumThreads(1)
    source, root, settings, extra_names, key = pickle.loads(job)
    use_key(key)
    _JOB = (source, root, settings, extra_names)


def _work(row: CatalogRow) -> Outcome:
    assert _JOB is not None, "worker started without a job"
    source, root, settings, extra_names = _JOB
    try:
        return _build_one(source, row, root, settings, extra_names)
    except Exception as e:  # re-raised by the parent; the exception object itself may not pickle
        return ("error", f"{e.__class__.__name__}: {e}", traceback.format_exc())


def _mp_context() -> multiprocessing.context.BaseContext:
    """forkserver where available, else spawn: never a plain fork of this process.

    The caller may be a Dagster run with live threads, and OpenCV's thread pool does not survive a
    fork (a forked worker hung in ``cv2.setNumThreads``); a fork server is a clean, single-threaded
    process that imports the decoders once and forks every worker from that state.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(_PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")


def _pool_for(job: bytes, workers: int) -> ProcessPool | None:
    """The pool for this job, started once and reused by every call with the same job (all parts
    of a source, in one call or one after the other in one process).

    None when workers cannot start at all (typically a script without an ``if __name__ ==
    "__main__":`` guard, which every worker re-imports): the caller then decodes serially rather
    than mistaking a broken environment for crashing files.
    """
    global _POOL, _POOL_ID
    ident = (hashlib.sha256(job).digest(), workers)
    if _POOL is not None and _POOL_ID == ident and _POOL.active:
        return _POOL
    _drop_pool()
    pool = ProcessPool(max_workers=workers, context=_mp_context(), initializer=_init_worker, initargs=(job,))
    try:
        pool.schedule(os.getpid).result(timeout=POOL_START_TIMEOUT_S)
    except Exception as exc:
        log.warning("worker processes did not start (%s: %s)", exc.__class__.__name__, exc)
        pool.stop()
        pool.join(timeout=10)
        return None
    _POOL, _POOL_ID = pool, ident
    return pool


def _drop_pool() -> None:
    global _POOL, _POOL_ID
    if _POOL is not None:
        _POOL.stop()
        _POOL.join(timeout=10)
        _POOL, _POOL_ID = None, None


atexit.register(_drop_pool)


def _outcomes(source: MedicalSource, routed: Iterable[tuple[str, CatalogRow]], root: Path, settings: Settings,
              extra_names: tuple[str, ...], workers: int) -> Iterator[tuple[str, CatalogRow, Outcome]]:
    """(part, row, outcome) in input order.

    With a pool, small items travel in chunks (``CHUNK_ITEMS`` or ``CHUNK_BYTES`` of raw files,
    whichever comes first: a 2 KB PNG costs less to decode than to send alone); at most
    ``IN_FLIGHT_PER_WORKER * workers`` chunks are in flight (bounded memory) and results are taken
    in submission order, so the output is the same bytes as the serial path. A chunk gets one
    item's time limit; a chunk that runs over it or loses its worker is redone item by item, each
    with the full limit, so only the item that hangs or crashes on its own is quarantined.
    """
    job = None
    if workers > 0:
        try:
            job = pickle.dumps((source, root, settings, extra_names, config.pseudonym_key()),
                               protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            log.warning("%s: the source cannot be pickled for worker processes (%s); decoding serially",
                        source.name, exc)
    pool = _pool_for(job, workers) if job is not None else None
    if job is not None and pool is None:
        log.warning("%s: worker processes could not start; decoding serially (a script calling this "
                    "needs an `if __name__ == \"__main__\":` guard, or set SHARDSMITH_WORKERS=1)", source.name)
    if pool is None:
        for part, row in routed:
            yield part, row, _build_one(source, row, root, settings, extra_names)
        return
    timeout = settings.item_timeout_s if settings.item_timeout_s > 0 else None
    per_worker = IN_FLIGHT_PER_WORKER_VOLUMES if extra_names else IN_FLIGHT_PER_WORKER
    limit = per_worker * workers
    todo: Iterator[list[tuple[str, CatalogRow]]] = _chunks(routed, 1 if extra_names else CHUNK_ITEMS)
    pending: deque[tuple[list[tuple[str, CatalogRow]], object]] = deque()
    restarts = 0
    try:
        while True:
            while len(pending) < limit and (chunk := next(todo, None)) is not None:
                pending.append((chunk, pool.schedule(_work_chunk, args=([r for _, r in chunk],), timeout=timeout)))
            if not pending:
                return
            chunk, fut = pending.popleft()
            results = _result(fut, chunk, source, timeout)
            if results is None and restarts < POOL_RESTARTS:
                # The pool itself broke (not one item's worker): a fresh pool redoes what was queued.
                restarts += 1
                redo = [chunk, *(c for c, _ in pending)]
                pending.clear()
                _drop_pool()
                pool = _pool_for(job, workers)
                if pool is None:
                    for c in itertools.chain(redo, todo):
                        for p, r in c:
                            yield p, r, _build_one(source, r, root, settings, extra_names)
                    return
                todo = itertools.chain(redo, todo)
                continue
            if results is None:
                results = [("quarantine", "worker_crashed", "the worker pool broke repeatedly on this item")]
            if len(results) != len(chunk):  # the chunk as a whole timed out or crashed: one by one
                singles = [pool.schedule(_work_chunk, args=([r],), timeout=timeout) for _, r in chunk]
                broke = [("quarantine", "worker_crashed", "the worker pool broke while decoding this item")]
                results = [(_result(f, [c], source, timeout) or broke)[0] for f, c in zip(singles, chunk, strict=True)]
            for (part, row), outcome in zip(chunk, results, strict=True):
                yield part, row, _checked(outcome, row)
    finally:
        for _, f in pending:  # the consumer stopped early (an error): drop queued work
            f.cancel()


def _chunks(routed: Iterable[tuple[str, CatalogRow]], max_items: int) -> Iterator[list[tuple[str, CatalogRow]]]:
    chunk: list[tuple[str, CatalogRow]] = []
    size = 0
    for item in routed:
        chunk.append(item)
        size += item[1].size or 0
        if len(chunk) >= max_items or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _work_chunk(rows: list[CatalogRow]) -> list[Outcome]:
    return [_work(row) for row in rows]


def _result(fut, chunk: list[tuple[str, CatalogRow]], source: MedicalSource,
            timeout: float | None) -> list[Outcome] | None:
    """A chunk's outcomes. When the chunk's worker hung or died: for a single item, its quarantine
    outcome; for several, an empty list (the caller redoes them one by one). None: the pool broke."""
    try:
        return fut.result()
    except TimeoutError:
        if len(chunk) > 1:
            return []
        row = chunk[0][1]
        log.error("%s: %s took longer than %g s; its worker was stopped and the item quarantined",
                  source.name, row.raw_path, timeout)
        return [("quarantine", "timeout",
                 f"no result after {timeout:g} s (item_timeout_s / SHARDSMITH_ITEM_TIMEOUT_S); the worker was stopped")]
    except ProcessExpired as e:
        if len(chunk) > 1:
            return []
        row = chunk[0][1]
        log.error("%s: worker process died on %s (exit code %s); quarantined", source.name, row.raw_path,
                  e.exitcode)
        return [("quarantine", "worker_crashed",
                 f"the worker process decoding this file died (exit code {e.exitcode}: crash or out of memory)")]
    except (BrokenProcessPool, RuntimeError) as e:
        log.warning("%s: the worker pool broke (%s); restarting it", source.name, e)
        return None


def _checked(outcome: Outcome, row: CatalogRow) -> Outcome:
    if outcome[0] == "error":
        raise WorkerError(f"{row.raw_path}: {outcome[1]}\n--- worker traceback ---\n{outcome[2]}")
    return outcome


# --------------------------------------------------------------------------- parts
@dataclass
class PartInput:
    """What one part starts from: how many catalog rows will be routed to it, and the catalog's own
    quarantine rows it owns (a whole source owns them; a hash bucket none)."""

    total: int
    catalog_quarantine: Iterable[dict] = ()


class _PartSink:
    """The files of one part, written as its outcomes arrive."""

    def __init__(self, settings: Settings, source: MedicalSource, part: str, spec: PartInput):
        layout = StagingLayout(settings.home)
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


def build_parts(settings: Settings, source: MedicalSource, routed: Iterable[tuple[str, CatalogRow]],
                parts: Mapping[str, PartInput], progress: Progress | None = None) -> dict[str, StageCounts]:
    """Decode catalog rows, each tagged with its part, into every part's staging files in one pass
    over one pool (a first build of all buckets of a source pays the pool's start and tail once).

    Rows of one part are written in the order they come, whatever the worker count, so each part's
    files are the same bytes as when that part is built alone or serially.
    """
    root = settings.raw_dir(source.name)
    total = sum(p.total for p in parts.values())
    workers = 0 if settings.workers == 1 else settings.usable_workers(max(total, 1))
    sinks: dict[str, _PartSink] = {}
    start = time.monotonic()
    outcomes = _outcomes(source, routed, root, settings, tuple(source.extra_tables()), workers)
    try:
        for part, spec in parts.items():
            sinks[part] = _PartSink(settings, source, part, spec)
        for i, (part, row, outcome) in enumerate(outcomes, start=1):
            sinks[part].add(row, outcome)
            if progress and (i % 25 == 0 or i == total):
                progress(i, total, time.monotonic() - start)
    except BaseException:
        outcomes.close()
        for sink in sinks.values():
            sink.abort()
        raise
    counts = {part: sink.close() for part, sink in sinks.items()}
    log.info("%s: %d items in %d part(s) with %s in %.1fs", source.name, total, len(parts),
             f"{workers} worker(s)" if workers else "no pool (serial)", time.monotonic() - start)
    return counts


def build_records(
    settings: Settings,
    source: MedicalSource,
    entries: Iterable[CatalogEntry | CatalogRow],
    catalog_quarantine: Iterable[dict],
    progress: Progress | None = None,
    part: str = WHOLE,
    total: int | None = None,
) -> StageCounts:
    """Decode every catalog entry of one part into staging Parquet; failures become quarantine rows.

    ``entries`` may be a stream (give ``total`` then, for the worker count and progress).
    """
    if total is None:
        entries = list(entries)
        total = len(entries)
    routed = ((part, CatalogRow.of(e)) for e in entries)
    return build_parts(settings, source, routed, {part: PartInput(total, catalog_quarantine)}, progress)[part]


def run_source(settings: Settings, source: MedicalSource, progress: Progress | None = None) -> StageCounts:
    """Catalog and records in one call (the CLI's ``labels``-free path and the tests use it)."""
    stream = source.catalog_stream(settings.raw_dir(source.name))
    write_catalog(settings, source, stream)
    total = pq.read_metadata(StagingLayout(settings.home).catalog(source.name)).num_rows
    counts = build_records(settings, source, iter_catalog(settings, source.name), stream.quarantine, progress,
                           total=total)
    log.info("%s: %s", source.name, json.dumps(asdict(counts)))
    return counts
