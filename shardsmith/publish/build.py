"""Assemble a collection's release from staging: validate, fingerprint, publish.

The Dagster release assets call ``build_release``; so does a plain script.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.atomic import write_parquet_atomic
from shardsmith.config import Settings
from shardsmith.hashing import sha256_file
from shardsmith.memory import trim
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


RECORD_COLUMNS = ["record_id", "source", "native_id", "patient_id", "split", "split_source", "split_official",
                  "modality", "body_part", "view",
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


# Records and view rows are validated this many at a time, so validation memory does not grow with
# the release (a whole-release frame of 335,000 records with 14 findings each was gigabytes).
RECORD_CHUNK_ROWS = 10_000
VIEW_CHUNK_ROWS = 20_000


def validate_tables(table_files: dict[str, list[Path]], out_dir: Path) -> dict[str, dict]:
    """GX suites and integrity checks for every table of a release, before anything is published.

    Writes ``<table>.json`` (suite outcomes + integrity checks) and one Data Docs site (``docs/``)
    to ``out_dir``; returns the summaries by table, each with ``success``.

    Records and task views are read in bounded chunks (``RECORD_CHUNK_ROWS``, ``VIEW_CHUNK_ROWS``):
    every chunk goes through the same suites and per-row checks and the outcomes are combined;
    the check that needs every row at once (a patient in one split) reads three narrow columns.
    The Data Docs site shows the first chunk of each table; the JSON summaries cover all rows.
    """
    from shardsmith.validation import integrity as I
    from shardsmith.validation.chunked import chunks_of, merge_reports
    from shardsmith.validation.frames import read_tables, record_frames, volume_frames, werewolf_frames
    from shardsmith.validation.gx_runner import ChunkRunner, run_tables
    from shardsmith.validation.suites import suites_for

    first: dict[str, tuple[dict, dict]] = {}  # the first chunk of each table: validated with the docs
    more: dict[str, list] = {}  # reports of the other chunks
    checks: dict[str, list[list[I.CheckOutcome]]] = {}
    chunk_runner = None  # one GX context for every later chunk of every table, made when needed

    def validate(table: str, frames: dict, suites: dict, chunk_checks: list[I.CheckOutcome]) -> None:
        nonlocal chunk_runner
        checks.setdefault(table, []).append(chunk_checks)
        if table not in first:
            first[table] = (frames, suites)
        else:
            chunk_runner = chunk_runner or ChunkRunner()
            more.setdefault(table, []).append(chunk_runner.run(table, frames, suites))

    split_frame = None
    if "records" in table_files:
        files = table_files["records"]
        # distinct (source, patient, split) triples: the check's answer, a fraction of the rows
        split_frame = (read_tables(files, ["source", "patient_id", "split"])
                       .group_by(["source", "patient_id", "split"], use_threads=False).aggregate([]).to_pandas())
        checks["records"] = [[I.patients_in_one_split(split_frame)]]
        for table in chunks_of(files, RECORD_COLUMNS, RECORD_CHUNK_ROWS):
            frames = record_frames(table)
            validate("records", frames, suites_for("records"),
                     [I.normal_has_no_abnormality(frames["records"], frames["targets"], frames["findings"]),
                      I.masks_decode_to_image_size(table)])
            del frames, table
            trim()
    if "volumes" in table_files:
        frames = volume_frames(table_files["volumes"])
        vol_checks = [I.patients_in_one_split(frames["volumes"]), I.volume_labels_named(table_files["volumes"])]
        if split_frame is not None:
            vol_checks.append(I.patients_in_one_split_across([split_frame, frames["volumes"]]))
        validate("volumes", frames, suites_for("volumes"), vol_checks)
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
            validate(t, {k: frames[k] for k in per_table[t] if k in frames}, suites_for(t),
                     [c for name, c in integrity.items() if owner[name] == t])
    if "duplicates" in table_files:
        validate("duplicates", {"duplicates": _read_without_media(table_files["duplicates"]).to_pandas()},
                 suites_for("duplicates"), [])
    for t in (t for t in VIEW_TABLES if t in table_files):
        _validate_view(t, table_files, validate)
    reports = run_tables(first, out_dir / "docs")
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, dict] = {}
    for t, report in reports.items():
        report = merge_reports([report, *more.get(t, [])])
        merged = _merge_checks(checks.get(t, []))
        summary = {**report.to_json(), "integrity": [c.__dict__ for c in merged]}
        if t in more:
            summary["chunks"] = 1 + len(more[t])
        summary["success"] = report.success and all(c.passed for c in merged)
        (out_dir / f"{t}.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
        summaries[t] = summary
    return summaries


def _merge_checks(chunks: list[list]) -> list:
    """Integrity outcomes of several chunks, one per check name (first-seen order)."""
    from shardsmith.validation.integrity import CheckOutcome

    by_name: dict[str, list] = {}
    for outcomes in chunks:
        for o in outcomes:
            by_name.setdefault(o.name, []).append(o)
    merged = []
    for name, outs in by_name.items():
        if len(outs) == 1:
            merged.append(outs[0])
            continue
        details = list(dict.fromkeys(o.detail for o in outs if not o.passed)) or [outs[0].detail]
        merged.append(CheckOutcome(name, all(o.passed for o in outs),
                                   f"over {len(outs)} chunks: {' | '.join(details)}"[:1000],
                                   [e for o in outs for e in o.examples][:5]))
    return merged


VIEW_TABLES = ("grounding", "consensus", "dialogues")


def _view_suites(table: str) -> dict:
    from shardsmith.views.validation import view_suites

    return {table: view_suites()[table]}


def _validate_view(table: str, table_files: dict[str, list[Path]], validate: Callable) -> None:
    """Frames and integrity checks of one task view (issue 14), ``VIEW_CHUNK_ROWS`` rows at a time:
    every row refers to a real record, finding and target of the records being published. Each
    chunk reads only the records it refers to."""
    from shardsmith.validation.frames import iter_rows

    files = table_files[table]
    names: list[str] = []
    for f in files:
        names += [c for c in pq.read_schema(f).names if c not in _SKIP_COLUMNS and c not in names]
    cursor = _RecordCursor(table_files.get("records", []))
    chunk: list[dict] = []
    done = 0
    for row in iter_rows(files, names, batch_size=4096):
        chunk.append(row)
        if len(chunk) >= VIEW_CHUNK_ROWS:
            _validate_view_chunk(table, chunk, cursor, validate)
            chunk, done = [], done + 1
    if chunk or not done:  # an empty view is still validated (and reported) once
        _validate_view_chunk(table, chunk, cursor, validate)


class _RecordCursor:
    """The records a chunk of view rows refers to, read forward through the staged records.

    View rows are made in record order, so the records of one chunk follow those of the chunk
    before: each chunk continues where the last stopped (keeping the batch it stopped in, which a
    record's rows may straddle), instead of re-reading every record per chunk (quadratic: 34
    chunks x 335,000 records). Ids not found ahead are looked for once more from the start."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.ahead = self._batches()
        self.carry: list = []

    def _batches(self):
        from shardsmith.views import VIEW_COLUMNS

        for f in self.files:
            pf = pq.ParquetFile(f)
            cols = [c for c in VIEW_COLUMNS if c in pf.schema_arrow.names]
            yield from pf.iter_batches(batch_size=8192, columns=cols)

    def select(self, wanted) -> list:
        import pyarrow.compute as pc

        need = len(wanted)
        for restart in (False, True):
            if restart:
                self.ahead, self.carry = self._batches(), []
            out, found = [], 0
            for batch in itertools.chain(self.carry, self.ahead):
                picked = batch.filter(pc.is_in(batch.column("record_id"), value_set=wanted))
                if picked.num_rows:
                    out.append(picked)
                    found += picked.num_rows
                if found >= need:
                    self.carry = [batch]
                    return out
            self.carry = []
        return out  # some ids are not records at all: the checks report them


def _validate_view_chunk(table: str, rows: list[dict], cursor: _RecordCursor, validate: Callable) -> None:

    from shardsmith.views.validation import view_frames, view_integrity

    wanted = pa.array(sorted({r["record_id"] for r in rows}), pa.string())
    frames = view_frames(cursor.select(wanted), **{table: rows})
    validate(table, {table: frames[table]}, _view_suites(table), view_integrity({table: frames[table]}))
    del frames
    trim()


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
            from shardsmith.identity import stage as identity_stage
            from shardsmith.views.stage import stage_views

            fingerprints = {s: source_fingerprint(settings, s) for s in sorted(sources)}
            identity = identity_stage.stage_identity(StagingLayout(settings.home).identity_dir(),
                                                     records.files, fingerprints, settings.split_seed)
            passed, examples = identity_stage.check_groups(identity)
            if not passed:
                raise ValidationFailedError(f"{collection}: duplicate groups span splits: {examples}")
            records.transform = identity.remap()
            staged = stage_views(records.files, views_dir, records.transform)
            tables += [TableInput(TABLES[n], staged.files[n]) for n in VIEW_TABLES if n in staged.files]
            dup_file = views_dir / "duplicates.parquet"
            write_parquet_atomic(identity.duplicates, dup_file)
            if identity.duplicates.num_rows:
                tables.append(TableInput(TABLES["duplicates"], [dup_file]))
            extra_card = identity_stage.card_section(identity) + "\n" + staged.card_markdown
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
