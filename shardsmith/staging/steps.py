"""The steps of one medical source as plain functions: catalog, records of one part, and the
checks over what a part staged. The Dagster assets (``defs/medical``) call these and attach
their results as metadata; a script or a test can call them the same way.

Each step is versioned: its inputs are digested (raw tree fingerprint, catalog rows, adapter,
options, key tag) and when ``versions.json`` says the step already built exactly that version
and its files are there, the step reuses them instead of working again.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.atomic import atomic_write_json, write_parquet_atomic
from shardsmith.config import Settings
from shardsmith.schemas.quarantine import QUARANTINE_SCHEMA
from shardsmith.sources.medical.base import CatalogEntry, MedicalSource
from shardsmith.staging import fingerprint
from shardsmith.staging.catalog_io import fill_raw_sha256
from shardsmith.staging.layout import WHOLE, StagingLayout
from shardsmith.staging.runner import CatalogRow, PartInput, build_parts, iter_catalog, write_catalog
from shardsmith.staging.versions import (
    add_catalog_row,
    bucket_of,
    finish_records_version,
    locked_versions,
    read_versions,
    records_hasher,
    suite_tag,
)
from shardsmith.validation.outcome import CheckOutcome

log = logging.getLogger(__name__)
progress_log = logging.getLogger("shardsmith.progress")
CHECK_CHUNK_ROWS = 25_000  # records per GX run when checking several parts at once
SUITES_CHECK, INTEGRITY_CHECK = "records_gx_suite", "records_integrity"  # the asset checks' names


class RawMissingError(FileNotFoundError):
    """``raw/<source>`` does not exist."""


@dataclass
class StepOutcome:
    """What a step did: ``recomputed`` False when it reused its staged output."""

    version: str
    recomputed: bool
    counts: dict
    paths: dict[str, Path] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)


def remove_whole_source_staging(layout: StagingLayout, source: MedicalSource) -> list[str]:
    """A partitioned source must not also have whole-source staging, or a release counts it twice."""
    removed = []
    for p in layout.whole_source_files(source.name, list(source.extra_tables())):
        if p.exists():
            p.unlink()
            removed.append(p.name)
    return removed


def stage_catalog(settings: Settings, source: MedicalSource) -> StepOutcome:
    """Scan ``raw/<source>`` (checksums, no pixels), join labels with images, stage the catalog."""
    layout = settings.layout
    name = source.name
    root = settings.raw_dir(name)
    if not root.is_dir():
        raise RawMissingError(f"{root} does not exist: put {name} there in its native layout")
    previous = read_versions(layout, name)
    # images are hashed by the workers that decode them (record_raw_digests), not here
    state = fingerprint.scan(root, previous.get("raw"), hash_new=False)
    version = fingerprint.digest(state, source.adapter_version, "catalog")
    removed = remove_whole_source_staging(layout, source) if source.partitioned else []
    cat_file = layout.catalog(name)
    if previous.get("catalog") == version and cat_file.is_file() and layout.catalog_meta(name).is_file():
        meta = json.loads(layout.catalog_meta(name).read_text())
        log.info("%s: raw tree unchanged (%d files); catalog reused", name, len(state))
        return StepOutcome(version, False, {"items": meta["entries"], "quarantined": meta["quarantined"],
                                            "raw_files": len(state)}, {"catalog": cat_file})
    deferred: set[str] = set()  # raw paths of catalog entries whose digest a worker computes
    try:
        # "" for a file not hashed yet: the entry is written without its digest
        cat = source.catalog_stream(root, known_sha256={rel: v[2] or "" for rel, v in state.items()})
        cat.entries = _noting_deferred(cat.entries, deferred)
        out = write_catalog(settings, source, cat)  # streams the entries: the source's rows are never all held
    except Exception as exc:
        # The source failed as a whole (a broken label file, say): leave a marker so the release
        # refuses to publish stale staging of it, then fail the step with the error.
        atomic_write_json(layout.source_failure(name), {
            "source": name, "reason": getattr(exc, "reason", type(exc).__name__), "detail": str(exc)[:2000]})
        raise
    layout.source_failure(name).unlink(missing_ok=True)
    meta = json.loads(layout.catalog_meta(name).read_text())
    if source.partitioned:
        # Partitions see only their bucket's items; items rejected while cataloguing (no image,
        # bad label row) belong to the source as a whole, so they go to the source-level file.
        write_parquet_atomic(pa.Table.from_pylist(cat.quarantine, schema=QUARANTINE_SCHEMA),
                             layout.source_quarantine(name))
    # what no worker will read (label files, images the catalog quarantined) is hashed here
    fingerprint.hash_pending(root, state, deferred)
    version = fingerprint.digest(state, source.adapter_version, "catalog")
    with locked_versions(layout, name) as v:
        v["raw"], v["catalog"] = state, version
    log.info("%s: %d items with images, %d quarantined", name, meta["entries"], meta["quarantined"])
    return StepOutcome(version, True, {"items": meta["entries"], "images_on_disk": cat.images_on_disk,
                                       "quarantined": meta["quarantined"], "raw_files": len(state)},
                       {"catalog": out}, {"removed_stale": removed, "label_files": cat.label_files})


def _noting_deferred(entries: Iterator[CatalogEntry], deferred: set[str]) -> Iterator[CatalogEntry]:
    for entry in entries:
        if not entry.raw_sha256:
            deferred.add(entry.raw_path)
        yield entry


def record_raw_digests(settings: Settings, source: MedicalSource, hashed: dict[str, str]) -> None:
    """Write the digests the workers computed (raw path -> sha256) where the catalog step left
    none: into the staged catalog and the raw fingerprint, and the catalog version again, so the
    staging is what it would be had the catalog step hashed every file (a rebuild reuses it)."""
    if not hashed:
        return
    layout = settings.layout
    with locked_versions(layout, source.name) as v:
        # under the lock: the parts of one source staged in two processes at once (two partition
        # runs from the UI) would otherwise each rewrite the catalog, the later dropping the
        # earlier's digests
        fill_raw_sha256(settings, source.name, hashed)
        raw = v.get("raw", {})
        consistent = v.get("catalog") == fingerprint.digest(raw, source.adapter_version, "catalog")
        for rel, sha in hashed.items():
            if rel in raw and raw[rel][2] is None:
                raw[rel][2] = sha
        if consistent:
            v["catalog"] = fingerprint.digest(raw, source.adapter_version, "catalog")


def part_inputs(settings: Settings, source: MedicalSource, part: str) -> tuple[list, list[dict]]:
    """Catalog entries of one part (and, for a whole source, its catalog quarantine rows), in
    memory: for tests and tools. Staging streams them (:func:`stage_records_parts`)."""
    entries = [row.entry() for row in iter_catalog(settings, source.name, part)]
    return entries, _catalog_quarantine(settings, source, part)


def _catalog_quarantine(settings: Settings, source: MedicalSource, part: str) -> list[dict]:
    if part != WHOLE:
        return []
    return pq.read_table(settings.layout.catalog_quarantine(source.name)).to_pylist()


def part_versions(settings: Settings, source: MedicalSource, parts: list[str]) -> dict[str, tuple[str, int]]:
    """(records version, catalog rows) of each part, from one streamed pass over the catalog."""
    hashers = {p: records_hasher(settings, source.adapter_version) for p in parts}
    sizes = dict.fromkeys(parts, 0)
    whole = WHOLE in hashers
    buckets = [p for p in parts if p != WHOLE]
    for row in iter_catalog(settings, source.name):
        targets = [WHOLE] if whole else []
        if buckets:
            b = bucket_of(row.native_id, settings.buckets)
            if b in hashers:
                targets.append(b)
        for p in targets:
            add_catalog_row(hashers[p], row.native_id, row.raw_path, row.raw_sha256, row.item_json)
            sizes[p] += 1
    return {p: (finish_records_version(h, _catalog_quarantine(settings, source, p)), sizes[p])
            for p, h in hashers.items()}


def stage_records_parts(settings: Settings, source: MedicalSource, parts: list[str],
                        progress: Callable[[int, int, float], None] | None = None) -> dict[str, StepOutcome]:
    """Stage several parts of one source in ONE pass over its catalog and ONE worker pool (a first
    build of every bucket pays the pool's start and its tail once, not once per bucket).

    Parts whose inputs have the version they last built are reused; the others are decoded
    together. Each part's files are the same bytes as :func:`stage_records` writes for it alone.
    """
    layout = settings.layout
    name = source.name
    if any(p != WHOLE for p in parts):
        remove_whole_source_staging(layout, source)
    versions = part_versions(settings, source, list(dict.fromkeys(parts)))
    built = read_versions(layout, name).get("records", {})
    outcomes: dict[str, StepOutcome] = {}
    todo: dict[str, PartInput] = {}
    for part, (version, n) in versions.items():
        paths = layout.part_paths(name, part)
        label = name if part == WHOLE else f"{name}[{part}]"
        if built.get(part) == version and all(p.is_file() for p in paths.values()):
            log.info("%s: inputs unchanged (version %s); staged records reused", label, version[:12])
            progress_log.info("%s: unchanged, %d items reused", label, n)
            outcomes[part] = StepOutcome(version, False, json.loads(paths["counts"].read_text()), paths)
        else:
            todo[part] = PartInput(n, _catalog_quarantine(settings, source, part))
    if todo:
        hashed: dict[str, str] = {}  # raw path -> sha256 the workers computed for the catalog
        counts = build_parts(settings, source, _routed(settings, source, list(todo)), todo, progress, hashed)
        if hashed:  # the parts' versions as they are with the digests in the catalog
            record_raw_digests(settings, source, hashed)
            versions.update(part_versions(settings, source, list(todo)))
        with locked_versions(layout, name) as v:
            for part in todo:
                v.setdefault("records", {})[part] = versions[part][0]
        for part, c in counts.items():
            outcomes[part] = StepOutcome(versions[part][0], True, asdict(c), layout.part_paths(name, part))
    return {p: outcomes[p] for p in parts}


def _routed(settings: Settings, source: MedicalSource, parts: list[str]) -> Iterator[tuple[str, CatalogRow]]:
    """Catalog rows tagged with the part (among ``parts``) they belong to, in catalog order."""
    if parts == [WHOLE]:
        for row in iter_catalog(settings, source.name):
            yield WHOLE, row
        return
    wanted = set(parts)
    for row in iter_catalog(settings, source.name):
        b = bucket_of(row.native_id, settings.buckets)
        if b in wanted:
            yield b, row


def stage_records(settings: Settings, source: MedicalSource, part: str = WHOLE,
                  progress: Callable[[int, int, float], None] | None = None) -> StepOutcome:
    """Decode one part into staging (or reuse it when its inputs have the version it last built)."""
    return stage_records_parts(settings, source, [part], progress)[part]


def part_reconciles(settings: Settings, source: MedicalSource, part: str = WHOLE) -> CheckOutcome:
    """A staged part's counts hold on the files it wrote: inputs = items published + rows in its
    quarantine file, and its records file holds the records the counts name. This, not a row count,
    decides whether a part lost anything: a part whose every input is quarantined with a reason
    reconciles; a part that drops or invents an item does not, however many rows it has."""
    from shardsmith.validation.integrity import reconcile

    paths = settings.layout.part_paths(source.name, part)
    counts = json.loads(paths["counts"].read_text())
    quarantined = pq.read_metadata(paths["quarantine"]).num_rows
    rows = pq.read_metadata(paths["records"]).num_rows
    out = reconcile(counts["inputs"], counts["items_ok"], quarantined)
    if rows != counts["records"]:
        out.passed = False
        out.detail += f"; the records file holds {rows} rows, the counts say {counts['records']}"
    out.metadata = {"inputs": counts["inputs"], "items_ok": counts["items_ok"], "quarantined": quarantined,
                    "rows": rows}
    return out


def check_records_suites(settings: Settings, source: MedicalSource, part: str = WHOLE) -> CheckOutcome:
    """GX suites over one part's records (skipped when data and suites passed unchanged before).

    A part passes when its counts reconcile (:func:`part_reconciles`) and its rows pass the suites;
    an empty part passes when every input is in quarantine. A failing run renders Data Docs under
    ``staging/<source>/data_docs/<part>/`` and names the page in the outcome (``data_docs``)."""
    from shardsmith.validation.partition import check_records_partition

    layout = settings.layout
    path = layout.table(source.name, "records", part)
    versions = read_versions(layout, source.name)
    stamp = f"{versions.get('records', {}).get(part)}+{suite_tag()}"
    if versions.get("checks", {}).get(part, {}).get("gx") == stamp:
        return CheckOutcome(SUITES_CHECK, True, "data and suites unchanged since this check last passed",
                            metadata={"note": "data and suites unchanged since this check last passed",
                                      "version": stamp[:12]})
    counted = part_reconciles(settings, source, part)
    report = check_records_partition(source.name, path, counted.metadata["inputs"],
                                     layout.source_dir(source.name) / "data_docs" / part,
                                     quarantined=counted.metadata["quarantined"])
    meta: dict = {**counted.metadata, "suites": [s.__dict__ for s in report.suites]}
    passed = report.success and counted.passed
    if not counted.passed:
        meta["not_reconciled"] = counted.detail
    if passed:
        with locked_versions(layout, source.name) as v:
            v.setdefault("checks", {}).setdefault(part, {})["gx"] = stamp
    elif report.docs_index is not None:
        meta["data_docs"] = str(report.docs_index)
    return CheckOutcome(SUITES_CHECK, passed, counted.detail, metadata=meta)


def check_records_integrity(settings: Settings, source: MedicalSource, part: str = WHOLE) -> CheckOutcome:
    """Counts reconcile (inputs = records + quarantined); no patient in two splits; normal records
    carry no abnormality."""
    from shardsmith.validation.frames import read_tables, record_frames
    from shardsmith.validation.integrity import reconcile, record_integrity

    layout = settings.layout
    paths = layout.part_paths(source.name, part)
    ids = pq.read_table(layout.catalog(source.name), columns=["native_id"]).column("native_id").to_pylist()
    if part != WHOLE:
        expected = sum(1 for i in ids if bucket_of(i, settings.buckets) == part)
    else:
        expected = len(ids) + pq.read_metadata(layout.catalog_quarantine(source.name)).num_rows
    counts = json.loads(paths["counts"].read_text())
    quarantined = pq.read_metadata(paths["quarantine"]).num_rows
    table = read_tables([paths["records"]], ["record_id", "source", "native_id", "patient_id", "split",
                                             "height", "width", "abnormal", "findings", "targets"])
    outcomes = [reconcile(expected, counts["items_ok"], quarantined)]
    if table.num_rows != counts["records"]:
        outcomes.append(reconcile(counts["records"], table.num_rows, 0))
    if table.num_rows:
        outcomes += record_integrity(record_frames(table))
    return CheckOutcome(INTEGRITY_CHECK, all(o.passed for o in outcomes),
                        "; ".join(o.detail for o in outcomes if not o.passed),
                        [e for o in outcomes for e in o.examples][:5],
                        {o.name: f"{'ok' if o.passed else 'FAILED'}: {o.detail}" for o in outcomes})


def check_parts(settings: Settings, source: MedicalSource, parts: list[str]) -> CheckOutcome:
    """The GX suites once over several parts (a single-run backfill validates a source once, not once
    per bucket); parts whose data and suites already passed are left out. Every part must reconcile
    (inputs = published + quarantined, :func:`part_reconciles`), whatever its row count: a bucket
    whose inputs were all quarantined passes. A failing run renders Data Docs and names the page."""
    from shardsmith.validation.chunked import chunks_of, merge_reports
    from shardsmith.validation.frames import record_frames
    from shardsmith.validation.gx_runner import ChunkRunner, validate_with_docs
    from shardsmith.validation.suites import record_suites

    if len(parts) == 1:
        return check_records_suites(settings, source, parts[0])
    layout = settings.layout
    versions = read_versions(layout, source.name)
    tag = suite_tag()
    stamps = {p: f"{versions.get('records', {}).get(p)}+{tag}" for p in parts}
    todo = [p for p in parts if versions.get("checks", {}).get(p, {}).get("gx") != stamps[p]]
    if not todo:
        return CheckOutcome(SUITES_CHECK, True, "data and suites unchanged since these parts last passed",
                            metadata={"note": "data and suites unchanged since these parts last passed",
                                      "parts": len(parts)})
    counted = {p: part_reconciles(settings, source, p) for p in todo}
    rows = {p: o.metadata["rows"] for p, o in counted.items()}
    unreconciled = {p: o.detail for p, o in counted.items() if not o.passed}
    files = [layout.table(source.name, "records", p) for p in todo if rows[p] > 0]
    meta: dict = {"parts_validated": len(todo), "parts": len(parts), "rows": sum(rows.values()),
                  "quarantined": sum(o.metadata["quarantined"] for o in counted.values())}
    success = not unreconciled
    if unreconciled:
        meta["not_reconciled"] = unreconciled
    if files:
        cols = [c for c in pq.read_schema(files[0]).names if c not in ("image",)]
        # In bounded chunks: one suite run per CHECK_CHUNK_ROWS records, outcomes combined.
        runner = ChunkRunner()  # one GX context for every chunk
        reports = [runner.run(f"{source.name}_records", record_frames(chunk), record_suites())
                   for chunk in chunks_of(files, cols, CHECK_CHUNK_ROWS)]
        report = merge_reports(reports)
        if not report.success:  # Data Docs of the first failing chunk, where a user looks first
            docs = layout.source_dir(source.name) / "data_docs" / f"{todo[0]}-{todo[-1]}"
            bad = next((i for i, r in enumerate(reports) if not r.success), 0)
            chunk = next(itertools.islice(chunks_of(files, cols, CHECK_CHUNK_ROWS), bad, None))
            meta["data_docs"] = str(validate_with_docs(f"{source.name}_records", record_frames(chunk),
                                                       record_suites(), docs)[1])
        meta["suites"] = [s.__dict__ for s in report.suites]
        success = success and report.success
    if success:
        with locked_versions(layout, source.name) as v:
            for p in todo:
                v.setdefault("checks", {}).setdefault(p, {})["gx"] = stamps[p]
    detail = "; ".join(f"{p}: {d}" for p, d in unreconciled.items())
    return CheckOutcome(SUITES_CHECK, success, detail, sorted(unreconciled)[:5], meta)


def check_integrity_parts(settings: Settings, source: MedicalSource, parts: list[str]) -> CheckOutcome:
    """Integrity of several parts; the metadata names the parts that failed."""
    outcomes = {p: check_records_integrity(settings, source, p) for p in parts}
    if len(parts) == 1:
        return outcomes[parts[0]]
    failed = {p: o.metadata for p, o in outcomes.items() if not o.passed}
    return CheckOutcome(INTEGRITY_CHECK, not failed, "; ".join(f"{p}: {outcomes[p].detail}" for p in failed),
                        sorted(failed)[:5], {"parts": len(parts), "failed_parts": failed})
