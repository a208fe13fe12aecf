"""Decoding items in a bounded process pool (pebble, fork-server workers) with a per-item time limit.

Items travel in chunks, results come back in submission order (the output is the same bytes as the
serial path), a hung item becomes a ``timeout`` quarantine outcome, a dead worker a
``worker_crashed`` one, and an unexpected exception in a worker is re-raised in the parent
(:class:`WorkerError`). Without working worker processes decoding falls back to serial.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import logging
import multiprocessing
import multiprocessing.context
import os
import pickle
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from pebble import ProcessExpired, ProcessPool

from shardsmith import config
from shardsmith.config import Settings
from shardsmith.errors import RecordError
from shardsmith.hashing import sha256_file
from shardsmith.pseudonym import use_key
from shardsmith.sources.medical.base import CatalogEntry, MedicalSource
from shardsmith.staging.catalog_io import CatalogRow

log = logging.getLogger(__name__)

IN_FLIGHT_PER_WORKER = 4  # chunks submitted ahead per worker: keeps cores busy, bounds memory
CHUNK_ITEMS = 32  # items per pool task at most ...
CHUNK_BYTES = 2 << 20  # ... or this much raw file: large files go one per task
IN_FLIGHT_PER_WORKER_VOLUMES = 1  # one volume item carries a whole scan's slices
POOL_START_TIMEOUT_S = 180.0  # workers that have not answered by then cannot start (no main guard, ...)
POOL_RESTARTS = 3  # a pool that breaks as a whole (not one worker) is restarted this often per call
# Imported once by the fork server, so workers start with the 2D decoders already loaded.
_PRELOAD = ("shardsmith.staging.pool", "shardsmith.media.raster")


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
               extra_names: tuple[str, ...]) -> tuple[str, Outcome]:
    """Decode one entry: (the raw file's sha256 when the catalog left it to this worker, else "";
    the outcome). RecordError comes back as a value: it does not survive pickling.

    The raw file is hashed here, in the process that reads it anyway (a source that hashes the bytes
    it reads, ``MedicalSource.hashes_while_reading``, fills ``entry.raw_sha256`` itself), so its
    records carry the digest and the parent never reads the file."""
    entry = row.entry()
    try:
        if not entry.raw_sha256 and not source.hashes_while_reading:
            try:
                entry.raw_sha256 = sha256_file(root / entry.raw_path)
            except OSError as e:
                raise RecordError("unreadable", f"{entry.raw_path}: cannot read ({e.strerror or e})") from e
        rows = list(source.build_records(entry, root, settings))
        extra = {name: list(source.build_extra(name, entry, root, settings)) for name in extra_names}
    except RecordError as e:
        return (_new_digest(row, entry), ("quarantine", e.reason, e.detail))
    return (_new_digest(row, entry), ("ok", rows, extra))


def _new_digest(row: CatalogRow, entry: CatalogEntry) -> str:
    return entry.raw_sha256 if not row.raw_sha256 else ""


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


def _work(row: CatalogRow) -> tuple[str, Outcome]:
    assert _JOB is not None, "worker started without a job"
    source, root, settings, extra_names = _JOB
    try:
        return _build_one(source, row, root, settings, extra_names)
    except Exception as e:  # re-raised by the parent; the exception object itself may not pickle
        return ("", ("error", f"{e.__class__.__name__}: {e}", traceback.format_exc()))


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


def outcomes(source: MedicalSource, routed: Iterable[tuple[str, CatalogRow]], root: Path, settings: Settings,
              extra_names: tuple[str, ...], workers: int,
              hashed: dict[str, str] | None = None) -> Iterator[tuple[str, CatalogRow, Outcome]]:
    """(part, row, outcome) in input order; the sha256 a worker computed for a row the catalog left
    without one goes into ``hashed`` (raw path -> digest).

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
    found = hashed if hashed is not None else {}

    def done(part: str, row: CatalogRow, result: tuple[str, Outcome]) -> tuple[str, CatalogRow, Outcome]:
        digest, outcome = result
        if digest:
            found[row.raw_path] = digest
        return part, row, _checked(outcome, row)

    if pool is None:
        for part, row in routed:
            yield done(part, row, _build_one(source, row, root, settings, extra_names))
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
                            yield done(p, r, _build_one(source, r, root, settings, extra_names))
                    return
                todo = itertools.chain(redo, todo)
                continue
            if results is None:
                results = [("", ("quarantine", "worker_crashed", "the worker pool broke repeatedly on this item"))]
            if len(results) != len(chunk):  # the chunk as a whole timed out or crashed: one by one
                singles = [pool.schedule(_work_chunk, args=([r],), timeout=timeout) for _, r in chunk]
                broke = [("", ("quarantine", "worker_crashed", "the worker pool broke while decoding this item"))]
                results = [(_result(f, [c], source, timeout) or broke)[0] for f, c in zip(singles, chunk, strict=True)]
            for (part, row), result in zip(chunk, results, strict=True):
                yield done(part, row, result)
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


def _work_chunk(rows: list[CatalogRow]) -> list[tuple[str, Outcome]]:
    return [_work(row) for row in rows]


def _result(fut, chunk: list[tuple[str, CatalogRow]], source: MedicalSource,
            timeout: float | None) -> list[tuple[str, Outcome]] | None:
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
        return [("", ("quarantine", "timeout",
                      f"no result after {timeout:g} s (item_timeout_s / SHARDSMITH_ITEM_TIMEOUT_S); "
                      "the worker was stopped"))]
    except ProcessExpired as e:
        if len(chunk) > 1:
            return []
        row = chunk[0][1]
        log.error("%s: worker process died on %s (exit code %s); quarantined", source.name, row.raw_path,
                  e.exitcode)
        return [("", ("quarantine", "worker_crashed",
                      f"the worker process decoding this file died (exit code {e.exitcode}: crash or out of memory)"))]
    except (BrokenProcessPool, RuntimeError) as e:
        log.warning("%s: the worker pool broke (%s); restarting it", source.name, e)
        return None


def _checked(outcome: Outcome, row: CatalogRow) -> Outcome:
    if outcome[0] == "error":
        raise WorkerError(f"{row.raw_path}: {outcome[1]}\n--- worker traceback ---\n{outcome[2]}")
    return outcome
