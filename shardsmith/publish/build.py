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
from shardsmith.hashing import sha256_file
from shardsmith.publish.card import render_card
from shardsmith.publish.preview import label_pictures
from shardsmith.publish.release import PublishResult, TableInput, label_counter, publish, read_latest
from shardsmith.schemas.tables import COLLECTION_TABLES, TABLES
from shardsmith.staging.layout import StagingLayout

log = logging.getLogger(__name__)


class ValidationFailedError(RuntimeError):
    """The data failed a blocking validation; nothing was published."""


def staging_files(settings: Settings, sources: list[str], table: str) -> list[Path]:
    """Staging Parquet of ``table`` for ``sources`` in a fixed order (sources sorted, parts sorted)."""
    layout = StagingLayout(settings.home)
    return [f for source in sorted(sources) for f in layout.table_files(source, table)]


def source_fingerprint(settings: Settings, source: str) -> str:
    """Digest of what a source's staging holds: every staged Parquet file's path and content."""
    h = hashlib.sha256()
    d = StagingLayout(settings.home).source_dir(source)
    for p in sorted(d.rglob("*.parquet")):
        if p.name.startswith("."):
            continue
        h.update(p.relative_to(d).as_posix().encode())
        h.update(bytes.fromhex(sha256_file(p)))
    return h.hexdigest()


def enabled_sources(settings: Settings, collection: str) -> list[str]:
    """Sources of ``collection`` with raw data present and something staged for the release."""
    from shardsmith.sources.registry import source_names

    layout = StagingLayout(settings.home)
    first = COLLECTION_TABLES[collection][0]
    failed = failed_sources(settings, collection)
    return [n for n in source_names(collection)
            if settings.raw_dir(n).is_dir() and n not in failed and layout.has_table(n, first)]


def failed_sources(settings: Settings, collection: str) -> dict[str, dict]:
    """Sources of ``collection`` whose last staging attempt failed as a whole, with the reason."""
    from shardsmith.sources.registry import source_names

    layout = StagingLayout(settings.home)
    out = {}
    for n in source_names(collection):
        marker = layout.source_failure(n)
        if settings.raw_dir(n).is_dir() and marker.is_file():
            out[n] = json.loads(marker.read_text())
    return out


class PartialReleaseRefusedError(RuntimeError):
    """Some sources failed to stage; a release without them needs ``allow_partial``."""


def check_partial(settings: Settings, collection: str) -> dict[str, dict]:
    """The failed sources a release would leave out; raises unless ``settings.allow_partial``."""
    failed = failed_sources(settings, collection)
    if failed and not settings.allow_partial:
        detail = "; ".join(f"{s}: {f.get('detail', '')[:300]}" for s, f in sorted(failed.items()))
        raise PartialReleaseRefusedError(
            f"{collection}: source(s) {sorted(failed)} failed to stage, so the release is refused "
            f"(allow_partial / --allow-partial publishes without them): {detail}")
    return failed


def partial_card_note(failed: dict[str, dict]) -> str:
    """The card section that says a release was built without some sources, and why."""
    if not failed:
        return ""
    lines = ["## Built without some sources", "",
             "This release was published with `allow_partial`: these sources failed to stage and are "
             "not in it.", "", "| source | reason | detail |", "| --- | --- | --- |"]
    lines += [f"| {s} | {f.get('reason', '')} | {str(f.get('detail', '')).replace('|', '/')[:200]} |"
              for s, f in sorted(failed.items())]
    return "\n".join(lines) + "\n"


def unchanged_release(settings: Settings, collection: str, fingerprints: dict[str, str]) -> dict | None:
    """The LATEST manifest when it was built from exactly these staging fingerprints, else None.

    Validation and packing are the expensive part of a release; when no source's staging changed
    the result would be the same content, so the release step reuses LATEST instead.
    """
    coll = settings.releases / collection
    latest = read_latest(coll) if coll.is_dir() else None
    if not latest:
        return None
    manifest_path = coll / latest / "manifest.json"
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    return manifest if manifest.get("input_fingerprints") == dict(sorted(fingerprints.items())) else None


RECORD_COLUMNS = ["record_id", "source", "native_id", "patient_id", "split", "modality", "body_part", "view",
                  "height", "width", "slice_index", "num_slices", "abnormal", "complete", "raw_sha256",
                  "findings", "targets"]
WEREWOLF_TABLES = ("games", "utterances", "votes", "decisions", "role_inference")
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
        frames = werewolf_frames(tables["games"], tables["utterances"], tables["votes"],
                                 decisions=tables["decisions"], role_inference=tables["role_inference"])
        per_table = {"games": ("games", "seats", "phases"), "utterances": ("utterances", "words"),
                     "votes": ("votes",), "decisions": ("decisions", "decision_context"),
                     "role_inference": ("role_inference", "role_utterances")}
        integrity = {c.name: c for c in I.werewolf_integrity(frames)}
        owner = {"utterances_do_not_overlap": "utterances", "utterance_times_inside_media": "utterances",
                 "votes_reference_roster": "votes", "decision_context_before_vote": "decisions",
                 "decisions_cover_votes": "decisions", "role_items_cover_roster": "role_inference",
                 "role_items_list_the_seats_lines": "role_inference"}
        for t in ww:
            frames_by_table[t] = {k: frames[k] for k in per_table[t] if k in frames}
            checks[t] = [c for name, c in integrity.items() if owner[name] == t]
    views = [t for t in VIEW_TABLES if t in table_files]
    if views:
        _view_checks(table_files, views, frames_by_table, checks)
    for t, frames in frames_by_table.items():
        inputs[t] = (frames, _view_suites(t) if t in VIEW_TABLES else suites_for(t))
    reports = run_tables(inputs, out_dir / "docs")
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, dict] = {}
    for t, report in reports.items():
        summary = {**report.to_json(), "integrity": [c.__dict__ for c in checks.get(t, [])]}
        summary["success"] = report.success and all(c.passed for c in checks.get(t, []))
        (out_dir / f"{t}.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
        summaries[t] = summary
    return summaries


VIEW_TABLES = ("grounding", "consensus", "dialogues")


def _view_suites(table: str) -> dict:
    from shardsmith.views.validation import view_suites

    return {table: view_suites()[table]}


def _view_checks(table_files: dict[str, list[Path]], views: list[str], frames_by_table: dict, checks: dict) -> None:
    """Frames and integrity checks of the task views (issue 14): every row refers to a real record,
    finding and target of the records being published."""
    from shardsmith.validation.frames import read_tables
    from shardsmith.views import VIEW_COLUMNS
    from shardsmith.views.validation import view_frames, view_integrity

    def rows(files: list[Path]) -> list[dict]:
        return read_tables(files, [c for c in VIEW_COLUMNS if c in pq.read_schema(files[0]).names]).to_pylist()

    view_rows = {t: _read_without_media(table_files[t]).to_pylist() for t in views}
    frames = view_frames(rows(table_files.get("records", [])), **view_rows)
    outcomes = view_integrity({t: frames[t] for t in views})
    for t in views:
        frames_by_table[t] = {t: frames[t]}
        checks[t] = [o for o in outcomes if o.name.startswith(f"{t}.")]


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


def _present_counts(stats: dict) -> dict[str, int]:
    """Records with each label present, summed over sources (the label chart's bars)."""
    return {label: sum(by_source.values()) for label, by_source in (stats.get("findings") or {}).items()}


def build_release(settings: Settings, collection: str, sources: list[str],
                  crash_hook: Callable[[str], None] | None = None) -> PublishResult:
    """Validate every staged table of ``collection`` and publish them as one release.

    Any failed suite or integrity check raises ValidationFailedError before a byte is published;
    the suite results and Data Docs ship in the release's ``validation/``.
    """
    failed = check_partial(settings, collection)
    sources = [s for s in sources if s not in failed]
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
    views_dir = Path(tempfile.mkdtemp(prefix="shardsmith-views-"))
    try:
        extra_card = ""
        records = next((t for t in tables if t.spec.name == "records"), None)
        if collection == "medical" and records is not None:
            from shardsmith.views.stage import stage_views

            staged = stage_views(records.files, views_dir)
            tables += [TableInput(TABLES[n], staged.files[n]) for n in VIEW_TABLES if n in staged.files]
            extra_card = staged.card_markdown
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
            card=lambda manifest: (render_card(manifest, stats) + ("\n" + extra_card if extra_card else "")
                                   + ("\n" + partial_card_note(failed) if failed else "")),
            validation_dir=scratch,
            stats_hooks=hooks,
            crash_hook=crash_hook,
            pictures=(lambda folder: label_pictures(records.files, folder, _present_counts(stats)))
            if records is not None else None,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(views_dir, ignore_errors=True)
