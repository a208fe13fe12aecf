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

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict

import pyarrow.parquet as pq

from shardsmith.config import Settings
from shardsmith.sources.medical.base import CatalogEntry, MedicalSource
from shardsmith.staging.catalog_io import CatalogRow, iter_catalog, read_catalog, write_catalog
from shardsmith.staging.layout import WHOLE
from shardsmith.staging.pool import WorkerError, outcomes
from shardsmith.staging.sinks import PartInput, PartSink, StageCounts

__all__ = ["CatalogRow", "PartInput", "StageCounts", "WorkerError", "build_parts", "build_records",
           "iter_catalog", "read_catalog", "run_source", "write_catalog"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int, float], None]  # done, total, seconds elapsed


def build_parts(settings: Settings, source: MedicalSource, routed: Iterable[tuple[str, CatalogRow]],
                parts: Mapping[str, PartInput], progress: Progress | None = None,
                hashed: dict[str, str] | None = None) -> dict[str, StageCounts]:
    """Decode catalog rows, each tagged with its part, into every part's staging files in one pass
    over one pool (a first build of all buckets of a source pays the pool's start and tail once).
    The digests workers computed for rows the catalog left without one go into ``hashed``.

    Rows of one part are written in the order they come, whatever the worker count, so each part's
    files are the same bytes as when that part is built alone or serially.
    """
    root = settings.raw_dir(source.name)
    total = sum(p.total for p in parts.values())
    workers = 0 if settings.workers == 1 else settings.usable_workers(max(total, 1))
    sinks: dict[str, PartSink] = {}
    start = time.monotonic()
    results = outcomes(source, routed, root, settings, tuple(source.extra_tables()), workers, hashed)
    try:
        for part, spec in parts.items():
            sinks[part] = PartSink(settings, source, part, spec)
        for i, (part, row, outcome) in enumerate(results, start=1):
            sinks[part].add(row, outcome)
            if progress and (i % 25 == 0 or i == total):
                progress(i, total, time.monotonic() - start)
    except BaseException:
        results.close()
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
    total = pq.read_metadata(settings.layout.catalog(source.name)).num_rows
    counts = build_records(settings, source, iter_catalog(settings, source.name), stream.quarantine, progress,
                           total=total)
    log.info("%s: %s", source.name, json.dumps(asdict(counts)))
    return counts
