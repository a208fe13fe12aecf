"""Assemble a collection's release from staging: validate, fingerprint, publish.

The Dagster release assets call ``build_release``; so does a plain script.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
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


RECORD_COLUMNS = ["record_id", "source", "native_id", "patient_id", "split", "modality", "body_part", "view",
                  "height", "width", "slice_index", "num_slices", "abnormal", "complete", "raw_sha256",
                  "findings", "targets"]
WEREWOLF_TABLES = ("games", "utterances", "votes")
# Media columns are never needed by the suites; leaving them out keeps validation memory small.
_SKIP_COLUMNS = {"audio", "image", "image_npy", "label_npy"}


def _read_without_media(files: list[Path]):
    from shardsmith.validation.frames import read_tables

    names: list[str] = []
    for f in files:
        names += [c for c in pq.read_schema(f).names if c not in _SKIP_COLUMNS and c not in names]
    return read_tables(files, names)


def validate_tables(table_files: dict[str, list[Path]], out_dir: Path) -> dict[str, dict]:
    """GX suites and integrity checks for every table of a release, before anything is published.

    Writes ``<table>.json`` (suite outcomes + integrity checks) and one Data Docs site (``docs/``)
    to ``out_dir``; returns the summaries by table, each with ``success``.
    """
    from shardsmith.validation import integrity as I
    from shardsmith.validation.frames import read_tables, record_frames, volume_frames, werewolf_frames
    from shardsmith.validation.gx_runner import run_tables
    from shardsmith.validation.suites import suites_for

    inputs: dict[str, tuple[dict, dict]] = {}
    checks: dict[str, list[I.CheckOutcome]] = {}
    frames_by_table: dict[str, dict] = {}
    if "records" in table_files:
        table = read_tables(table_files["records"], RECORD_COLUMNS)
        frames_by_table["records"] = record_frames(table)
        checks["records"] = I.record_integrity(frames_by_table["records"]) + [I.masks_decode_to_image_size(table)]
    if "volumes" in table_files:
        frames_by_table["volumes"] = volume_frames(table_files["volumes"])
        checks["volumes"] = [
            I.patients_in_one_split(frames_by_table["volumes"]["volumes"]),
            I.volume_labels_named(table_files["volumes"]),
        ]
        if "records" in frames_by_table:
            checks["volumes"].append(I.patients_in_one_split_across(
                [frames_by_table["records"]["records"], frames_by_table["volumes"]["volumes"]]))
    ww = [t for t in WEREWOLF_TABLES if t in table_files]
    if ww:
        tables = {t: _read_without_media(table_files[t]) if t in table_files else None for t in WEREWOLF_TABLES}
        frames = werewolf_frames(tables["games"], tables["utterances"], tables["votes"])
        per_table = {"games": ("games", "seats", "phases"), "utterances": ("utterances", "words"),
                     "votes": ("votes",)}
        integrity = {c.name: c for c in I.werewolf_integrity(frames)}
        owner = {"utterances_do_not_overlap": "utterances", "utterance_times_inside_media": "utterances",
                 "votes_reference_roster": "votes"}
        for t in ww:
            frames_by_table[t] = {k: frames[k] for k in per_table[t] if k in frames}
            checks[t] = [c for name, c in integrity.items() if owner[name] == t]
    for t, frames in frames_by_table.items():
        inputs[t] = (frames, suites_for(t))
    reports = run_tables(inputs, out_dir / "docs")
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, dict] = {}
    for t, report in reports.items():
        summary = {**report.to_json(), "integrity": [c.__dict__ for c in checks.get(t, [])]}
        summary["success"] = report.success and all(c.passed for c in checks.get(t, []))
        (out_dir / f"{t}.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
        summaries[t] = summary
    return summaries


def validate_records(files: list[Path], out_dir: Path) -> dict:
    """GX suites + integrity checks over staged records; writes JSON and Data Docs to out_dir."""
    return validate_tables({"records": files}, out_dir)["records"]


def _failure_text(summaries: dict[str, dict]) -> str:
    parts = []
    for t, s in summaries.items():
        if s["success"]:
            continue
        failed = [{"suite": x["suite"], "failed": x["failed"]} for x in s["suites"] if not x["success"]]
        broken = [f"{c['name']}: {c['detail']} {c['examples']}" for c in s["integrity"] if not c["passed"]]
        parts.append(f"{t}: {json.dumps(failed, default=str)[:600]} {broken}")
    return "; ".join(parts)


def build_release(settings: Settings, collection: str, sources: list[str],
                  crash_hook: Callable[[str], None] | None = None) -> PublishResult:
    """Validate every staged table of ``collection`` and publish them as one release.

    Any failed suite or integrity check raises ValidationFailedError before a byte is published;
    the suite results and Data Docs ship in the release's ``validation/``.
    """
    tables = []
    for name in COLLECTION_TABLES[collection]:
        files = staging_files(settings, sources, name)
        if files:
            tables.append(TableInput(TABLES[name], files))
    if not tables:
        raise ValueError(f"nothing staged for collection {collection!r} (sources: {sources})")
    hooks: dict[str, Callable[[dict], None]] = {}
    stats: dict = {}
    scratch = Path(tempfile.mkdtemp(prefix="shardsmith-validation-"))
    try:
        summaries = validate_tables({t.spec.name: t.files for t in tables}, scratch)
        if not all(s["success"] for s in summaries.values()):
            raise ValidationFailedError(
                f"{collection}: validation failed; nothing published: {_failure_text(summaries)}"[:4000]
            )
        if any(t.spec.name == "records" for t in tables):
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
