"""Run one medical source end to end into staging: catalog -> records (+ volumes) -> quarantine.

Plain library code (no Dagster): the assets call these functions, and so can a script.
Records are streamed into Parquet in batches so memory does not grow with the dataset.

Decoding uses every core: items go to a bounded process pool (``SHARDSMITH_WORKERS``, default the
usable CPU count, 1 = serial in this process) whose workers come from a fork server, and rows are
written in catalog order, so the output is byte-identical whatever the worker count. As with any
non-fork multiprocessing, a *script* that calls ``run_source`` needs an
``if __name__ == "__main__":`` guard (workers import the main module); without one the workers
cannot start and decoding falls back to serial with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import multiprocessing.context
import os
import pickle
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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
BATCH_BYTES = 32 << 20  # media bytes buffered before a row group is flushed
WORKERS_ENV = "SHARDSMITH_WORKERS"
IN_FLIGHT_PER_WORKER = 2  # items submitted ahead per worker: keeps cores busy, bounds memory
# Imported once by the fork server, so workers start with the 2D decoders already loaded.
_PRELOAD = ("shardsmith.sources.pipeline", "shardsmith.media.raster")
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
    """Batches rows into a Parquet file (temp name until closed).

    A batch is flushed at ``BATCH_ROWS`` rows or ``BATCH_BYTES`` of media bytes, whichever comes
    first, so native-size 16-bit images cannot make one buffered batch hold gigabytes.
    """

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = path, schema
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
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
        os.replace(self.tmp, self.path)

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


def _build_one(source: MedicalSource, entry: CatalogEntry, root: Path, settings: Settings,
               extra_names: tuple[str, ...]) -> Outcome:
    """Decode one entry. RecordError comes back as a value: it does not survive pickling."""
    try:
        rows = list(source.build_records(entry, root, settings))
        extra = {name: list(source.build_extra(name, entry, root, settings)) for name in extra_names}
    except RecordError as e:
        return ("quarantine", e.reason, e.detail)
    return ("ok", rows, extra)


# Per worker process: unpickled jobs by digest, so a job's source and settings are unpickled once
# per worker even though every task carries them (a pool outlives one build_records call).
_JOBS: dict[bytes, tuple[MedicalSource, Path, Settings, tuple[str, ...]]] = {}
_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0


def _init_worker() -> None:
    """Stop OpenCV from starting its own thread pool in each worker: the pool already uses every core."""
    import cv2

    cv2.setNumThreads(1)


def _work(job_key: bytes, job: bytes, entry: CatalogEntry) -> Outcome:
    spec = _JOBS.get(job_key)
    if spec is None:
        if len(_JOBS) > 8:
            _JOBS.clear()
        spec = _JOBS[job_key] = pickle.loads(job)
    source, root, settings, extra_names = spec
    try:
        return _build_one(source, entry, root, settings, extra_names)
    except Exception as e:  # re-raised by the parent; the exception object itself may not pickle
        return ("error", f"{e.__class__.__name__}: {e}", traceback.format_exc())


def worker_count(n_items: int) -> int:
    """``SHARDSMITH_WORKERS`` if set (1 = serial, in this process), else the usable CPU count."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        workers = int(value)
    else:
        try:
            workers = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            workers = os.cpu_count() or 1
    return max(1, min(workers, n_items))


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


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(), initializer=_init_worker)


def _shared_pool(workers: int) -> ProcessPoolExecutor | None:
    """One pool per process, reused by every build_records call (partitions run one after the
    other in one Dagster process: starting workers for each would cost more than small partitions).

    None when workers cannot start at all (typically a script without an ``if __name__ ==
    "__main__":`` guard, which every worker re-imports): the caller then decodes serially rather
    than mistaking a broken environment for crashing files.
    """
    global _POOL, _POOL_WORKERS
    if _POOL is None or _POOL_WORKERS != workers:
        _drop_shared_pool()
        pool = _new_pool(workers)
        try:
            pool.submit(os.getpid).result()
        except BrokenProcessPool:
            pool.shutdown(wait=True, cancel_futures=True)
            return None
        _POOL, _POOL_WORKERS = pool, workers
    return _POOL


def _drop_shared_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
        _POOL = None


def _outcomes(source: MedicalSource, entries: list[CatalogEntry], root: Path, settings: Settings,
              extra_names: tuple[str, ...], workers: int) -> Iterator[Outcome]:
    """Outcomes in catalog order. With several workers, a process pool keeps at most
    ``IN_FLIGHT_PER_WORKER * workers`` items in flight (bounded memory) and results are taken in
    submission order, so the output is the same bytes as the serial path."""
    if workers > 1:
        try:
            job = pickle.dumps((source, root, settings, extra_names), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            log.warning("%s: the source cannot be pickled for worker processes (%s); decoding serially",
                        source.name, exc)
            workers = 1
    if workers <= 1:
        for entry in entries:
            yield _build_one(source, entry, root, settings, extra_names)
        return
    pool = _shared_pool(workers)
    if pool is None:
        log.warning("%s: worker processes could not start; decoding serially (a script calling this "
                    "needs an `if __name__ == \"__main__\":` guard, or set %s=1)", source.name, WORKERS_ENV)
        yield from _outcomes(source, entries, root, settings, extra_names, 1)
        return
    key = hashlib.sha256(job).digest()
    limit = IN_FLIGHT_PER_WORKER * workers
    todo = iter(entries)
    pending: deque[tuple[CatalogEntry, Future]] = deque()
    try:
        while True:
            while len(pending) < limit and (entry := next(todo, None)) is not None:
                pending.append((entry, pool.submit(_work, key, job, entry)))
            if not pending:
                return
            entry, fut = pending.popleft()
            try:
                yield _checked(fut.result(), entry)
                continue
            except BrokenProcessPool:
                pass
            # A worker died (segfault in a decoder, out of memory, os._exit): every in-flight item
            # failed with it. Keep results that were already complete, redo the others one at a
            # time in a fresh process to find the culprit, then carry on with a fresh pool.
            _drop_shared_pool()
            for e, f in [(entry, fut), *pending]:
                done = f.done() and not f.cancelled() and f.exception() is None
                yield _checked(f.result(), e) if done else _isolated(key, job, e, source)
            pending.clear()
            pool = _shared_pool(workers)
            if pool is None:  # the environment broke, not a file: finish serially
                for e in todo:
                    yield _build_one(source, e, root, settings, extra_names)
                return
    finally:
        for _, f in pending:  # the consumer stopped early (an error): drop queued work
            f.cancel()


def _checked(outcome: Outcome, entry: CatalogEntry) -> Outcome:
    if outcome[0] == "error":
        raise WorkerError(f"{entry.raw_path}: {outcome[1]}\n--- worker traceback ---\n{outcome[2]}")
    return outcome


def _isolated(key: bytes, job: bytes, entry: CatalogEntry, source: MedicalSource) -> Outcome:
    """Run one entry alone in a new worker; if that worker dies too, the entry is the cause."""
    pool = _new_pool(1)
    try:
        return _checked(pool.submit(_work, key, job, entry).result(), entry)
    except BrokenProcessPool:
        log.error("%s: worker process died on %s; quarantined", source.name, entry.raw_path)
        return ("quarantine", "worker_crashed",
                "the worker process decoding this file died (crash or out of memory)")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def build_records(
    settings: Settings,
    source: MedicalSource,
    entries: list[CatalogEntry],
    catalog_quarantine: list[dict],
    progress: Progress | None = None,
    part: str = "records",
) -> StageCounts:
    """Decode every catalog entry into staging Parquet; failures become quarantine rows.

    Decoding runs in a bounded process pool (``SHARDSMITH_WORKERS``, default: every usable core);
    rows are written in catalog order whatever the worker count, so staging is byte-identical.
    """
    root = settings.raw_dir(source.name)
    staging = settings.staging_dir(source.name)
    # ``part`` names a partition (e.g. a hash bucket): records-<part>.parquet beside counts-<part>.json.
    rname = "records.parquet" if part == "records" else f"records-{part}.parquet"
    writers = {"records": _StreamWriter(staging / rname, RECORDS_SCHEMA)}
    extra_schemas = source.extra_tables()
    for name, schema in extra_schemas.items():
        writers[name] = _StreamWriter(staging / f"{name}-{part}.parquet" if part != "records"
                                      else staging / f"{name}.parquet", schema)
    quarantine = list(catalog_quarantine)
    labels: Counter = Counter()
    items_ok = 0
    start = time.monotonic()
    workers = worker_count(len(entries))
    outcomes = _outcomes(source, entries, root, settings, tuple(extra_schemas), workers)
    try:
        for i, (entry, outcome) in enumerate(zip(entries, outcomes, strict=True), start=1):
            status, first, second = outcome
            if status == "quarantine":
                quarantine.append(
                    quarantine_row(source.name, "decode", str(first), str(second),
                                   source._public_id(entry.item.native_id), entry.raw_path)
                )
            else:
                for row in first:
                    writers["records"].add(row)
                    for f in row["findings"] or ():
                        if f["status"] == "present":
                            labels[f["label"]] += 1
                for name, extra_rows in second.items():
                    for row in extra_rows:
                        writers[name].add(row)
                items_ok += 1
            if progress and (i % 25 == 0 or i == len(entries)):
                progress(i, len(entries), time.monotonic() - start)
    except BaseException:
        outcomes.close()
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
    log.info("%s: %d items with %d worker(s) in %.1fs", source.name, len(entries), workers,
             time.monotonic() - start)
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
