"""Assemble a collection's release from staging: validate, fingerprint, publish.

The Dagster release assets call ``build_release``; so does a plain script.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from shardsmith.config import Settings
from shardsmith.publish.card import render_card
from shardsmith.publish.release import PublishResult, TableInput, label_counter, publish
from shardsmith.schemas.tables import COLLECTION_TABLES, TABLES

log = logging.getLogger(__name__)


class ValidationFailedError(RuntimeError):
    """The data failed a blocking validation; nothing was published."""


def staging_files(settings: Settings, sources: list[str], table: str) -> list[Path]:
    """Staging Parquet of ``table`` for ``sources`` in a fixed order (sources sorted, parts sorted)."""
    files: list[Path] = []
    for source in sorted(sources):
        d = settings.staging_dir(source)
        if table == "records":
            files += sorted(p for p in d.glob("records*.parquet"))
        else:
            files += sorted(d.glob(f"{table}.parquet")) + sorted(d.glob(f"{table}-*.parquet"))
            files += sorted((d / table).glob("*.parquet")) if (d / table).is_dir() else []
    return [f for f in files if pq.ParquetFile(f).metadata.num_rows > 0]


def source_fingerprint(settings: Settings, source: str) -> str:
    """Digest of what a source's staging was built from: raw checksums and staging content."""
    h = hashlib.sha256()
    d = settings.staging_dir(source)
    for p in sorted(d.rglob("*.parquet")):
        if p.name.startswith("."):
            continue
        h.update(p.relative_to(d).as_posix().encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def validate_records(files: list[Path], out_dir: Path) -> dict:
    """GX suites + integrity checks over staged records; writes JSON and Data Docs to out_dir."""
    from shardsmith.validation.frames import read_tables, record_frames
    from shardsmith.validation.gx_runner import run_suites
    from shardsmith.validation.integrity import record_integrity
    from shardsmith.validation.suites import record_suites

    columns = ["record_id", "source", "native_id", "patient_id", "split", "modality", "body_part", "view",
               "height", "width", "slice_index", "num_slices", "abnormal", "complete", "raw_sha256",
               "findings", "targets"]
    frames = record_frames(read_tables(files, columns))
    report = run_suites("records", frames, record_suites(), out_dir / "docs")
    checks = record_integrity(frames)
    summary = {
        **report.to_json(),
        "integrity": [c.__dict__ for c in checks],
    }
    summary["success"] = report.success and all(c.passed for c in checks)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "records.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return summary


def build_release(settings: Settings, collection: str, sources: list[str], crash_hook=None) -> PublishResult:
    tables = []
    hooks = {}
    stats: dict = {}
    for name in COLLECTION_TABLES[collection]:
        files = staging_files(settings, sources, name)
        if files:
            tables.append(TableInput(TABLES[name], files))
    if not tables:
        raise ValueError(f"nothing staged for collection {collection!r} (sources: {sources})")
    scratch = Path(tempfile.mkdtemp(prefix="shardsmith-validation-"))
    try:
        for t in tables:
            if t.spec.name == "records":
                summary = validate_records(t.files, scratch)
                if not summary["success"]:
                    raise ValidationFailedError(
                        f"records failed validation; nothing published: "
                        f"{json.dumps([s for s in summary['suites'] if not s['success']])[:800]} "
                        f"{[c for c in summary['integrity'] if not c['passed']]}"
                    )
                hook, stats = label_counter()
                hooks["records"] = hook
        fingerprints = {s: source_fingerprint(settings, s) for s in sorted(sources)}
        return publish(
            settings.releases, collection, tables,
            input_fingerprints=fingerprints,
            card=lambda manifest: render_card(manifest, stats),
            validation_dir=scratch,
            stats_hooks=hooks,
            crash_hook=crash_hook,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
