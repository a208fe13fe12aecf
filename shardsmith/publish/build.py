"""Assemble a release from staged tables: identity -> views -> validation -> publish.

``assemble_release`` is called by the build seam (``pipeline.releases``), which decides which
sources and files go in and what the partial-release policy allows; this module validates the
rows exactly as they will be published and writes them.
"""

from __future__ import annotations

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
from shardsmith.memory import trim
from shardsmith.publish.card import render_card
from shardsmith.publish.preview import label_pictures
from shardsmith.publish.release import (
    PublishResult,
    TableInput,
    label_counter,
    publish,
    write_final_rows,
)
from shardsmith.schemas.tables import TABLES
from shardsmith.validation.outcome import CheckOutcome

log = logging.getLogger(__name__)


class ValidationFailedError(RuntimeError):
    """The data failed a blocking validation; nothing was published."""


RECORD_COLUMNS = ["record_id", "source", "native_id", "patient_id", "split", "split_source", "split_official",
                  "modality", "body_part", "view", "media_type",
                  "height", "width", "slice_index", "num_slices", "abnormal", "complete", "raw_sha256",
                  "findings", "targets"]
WEREWOLF_TABLES = ("games", "utterances", "votes", "decisions", "role_inference", "speech_items")
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
    """GX suites and integrity checks for every table of a release, on the files it will publish.

    Writes ``<table>.json`` (suite outcomes + integrity checks) and one Data Docs site (``docs/``)
    to ``out_dir``; returns the summaries by table, each with ``success``.

    Records and task views are read in bounded chunks (``RECORD_CHUNK_ROWS``, ``VIEW_CHUNK_ROWS``):
    every chunk goes through the same suites and per-chunk checks and the outcomes are combined.
    What needs every row at once runs over the whole table on narrow columns: the checks a table
    declares as whole-table (``TableSpec.checks``; a patient in one split reads three columns) and
    the unique keys its main suite declares (``validation.checks.unique_over_files``: a key repeated
    in two chunks passes each chunk's GX run, not this). The Data Docs site shows the first chunk of
    each table; the JSON summaries cover all rows.
    """
    from shardsmith.validation.checks import CheckInput, run_checks, unique_over_files
    from shardsmith.validation.chunked import chunks_of, merge_reports
    from shardsmith.validation.frames import read_tables, record_frames, volume_frames, werewolf_frames
    from shardsmith.validation.gx_runner import ChunkRunner, run_tables
    from shardsmith.validation.suites import suites_for, unique_keys

    first: dict[str, tuple[dict, dict]] = {}  # the first chunk of each table: validated with the docs
    more: dict[str, list] = {}  # reports of the other chunks
    checks: dict[str, list[list[CheckOutcome]]] = {}
    chunk_runner = None  # one GX context for every later chunk of every table, made when needed

    def validate(table: str, frames: dict, suites: dict, chunk_checks: list[CheckOutcome]) -> None:
        nonlocal chunk_runner
        checks.setdefault(table, []).append(chunk_checks)
        if table not in first:
            first[table] = (frames, suites)
        else:
            chunk_runner = chunk_runner or ChunkRunner()
            more.setdefault(table, []).append(chunk_runner.run(table, frames, suites))

    split_frame = None
    if "records" in table_files:
        files, declared = table_files["records"], TABLES["records"].checks
        # distinct (source, patient, split) triples: the check's answer, a fraction of the rows
        split_frame = (read_tables(files, ["source", "patient_id", "split"])
                       .group_by(["source", "patient_id", "split"], use_threads=False).aggregate([]).to_pandas())
        checks["records"] = [run_checks(declared, CheckInput(files=files, splits=[split_frame]), "table")]
        for table in chunks_of(files, RECORD_COLUMNS, RECORD_CHUNK_ROWS):
            frames = record_frames(table)
            validate("records", frames, suites_for("records"),
                     run_checks(declared, CheckInput(frames, table), "chunk"))
            del frames, table
            trim()
    if "volumes" in table_files:
        files = table_files["volumes"]
        frames = volume_frames(files)
        splits = [frames["volumes"], *([split_frame] if split_frame is not None else [])]
        validate("volumes", frames, suites_for("volumes"),
                 run_checks(TABLES["volumes"].checks, CheckInput(frames, files=files, splits=splits)))
    ww = [t for t in WEREWOLF_TABLES if t in table_files]
    if ww:
        tables = {t: _read_without_media(table_files[t]) if t in table_files else None for t in WEREWOLF_TABLES}
        frames = werewolf_frames(tables["games"], tables["utterances"], tables["votes"],
                                 decisions=tables["decisions"], role_inference=tables["role_inference"],
                                 speech_items=tables["speech_items"])
        for t in ww:  # a table's frames are the ones its suites name; its checks are the ones it declares
            suites = suites_for(t)
            validate(t, {k: frames[k] for k in suites if k in frames}, suites,
                     run_checks(TABLES[t].checks, CheckInput(frames)))
    if "duplicates" in table_files:
        validate("duplicates", {"duplicates": _read_without_media(table_files["duplicates"]).to_pandas()},
                 suites_for("duplicates"), [])
    for t in (t for t in VIEW_TABLES if t in table_files):
        _validate_view(t, table_files, validate)
    if any(t in table_files for t in PRETRAINING_TABLES):
        _validate_pretraining(table_files, validate)
    for t, files in table_files.items():  # unique keys over the whole table, not chunk by chunk
        main = (_view_suites(t) if t in VIEW_TABLES else _pretraining_suites(t) if t in PRETRAINING_TABLES
                else suites_for(t)).get(t)
        if main is not None:
            checks.setdefault(t, []).append([unique_over_files(files, key) for key in unique_keys(main)])
    reports = run_tables(first, out_dir / "docs")
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, dict] = {}
    for t, report in reports.items():
        report = merge_reports([report, *more.get(t, [])])
        merged = _merge_checks(checks.get(t, []))
        summary = {**report.to_json(), "integrity": [c.to_json() for c in merged]}
        if t in more:
            summary["chunks"] = 1 + len(more[t])
        summary["success"] = report.success and all(c.passed for c in merged)
        (out_dir / f"{t}.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
        summaries[t] = summary
    return summaries


def _merge_checks(chunks: list[list[CheckOutcome]]) -> list[CheckOutcome]:
    """Integrity outcomes of several chunks, one per check name (first-seen order)."""
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
PRETRAINING_TABLES = ("pretrain", "pairs", "knowledge")


def _validate_pretraining(table_files: dict[str, list[Path]], validate: Callable) -> None:
    """The pretraining views (issue 23), ``VIEW_CHUNK_ROWS`` rows at a time as Arrow tables, against
    one Arrow index of the records being published (``views.pretraining_checks``)."""
    import pyarrow.compute as pc

    from shardsmith.validation.checks import CheckInput, run_checks
    from shardsmith.views.pretraining_checks import (
        pretraining_frame,
        pretraining_suites,
        record_index,
        record_texts,
    )

    records = table_files.get("records", [])
    index = record_index(records)
    groups = pa.table({"image_group": pc.unique(index["image_group"])})
    for table in (t for t in PRETRAINING_TABLES if t in table_files):
        files, spec = table_files[table], TABLES[table]
        suites = {table: pretraining_suites()[table]}
        whole = run_checks(spec.checks, CheckInput({"record_groups": groups}, files=files), "table")
        # A table of exactly k * VIEW_CHUNK_ROWS rows ends on a full chunk: an empty chunk after it
        # has no columns and fails every expectation; an empty table is still validated once.
        for chunk in _table_chunks(files, VIEW_CHUNK_ROWS):
            texts = None
            if table == "knowledge":
                ids = pc.drop_null(pc.list_flatten(chunk["record_ids"])) if "record_ids" in chunk.column_names else []
                texts = record_texts(records, set(pa.array(ids, pa.string()).to_pylist()))
            frame = pretraining_frame(table, chunk, index, texts)
            validate(table, {table: frame}, suites,
                     whole + run_checks(spec.checks, CheckInput({table: frame}), "chunk"))
            whole = []
        trim()


def _table_chunks(files: list[Path], rows: int):
    """The rows of ``files`` as Arrow tables of ``rows`` rows (the last one shorter; one empty table
    when there is no row at all, so an empty view is still validated and reported)."""
    pending: list[pa.Table] = []
    held = done = 0
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=4096):
            pending.append(pa.Table.from_batches([batch]))
            held += batch.num_rows
            while held >= rows:
                whole = pa.concat_tables(pending, promote_options="default")
                yield whole.slice(0, rows)
                done += 1
                pending, held = [whole.slice(rows)], whole.num_rows - rows
    if held or not done:
        yield pa.concat_tables(pending, promote_options="default") if pending else pa.table({})


def _pretraining_suites(table: str) -> dict:
    from shardsmith.views.pretraining_checks import pretraining_suites

    return {table: pretraining_suites()[table]}


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
    """The records a chunk of view rows refers to, read forward through the records being published.

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
    from shardsmith.validation.checks import CheckInput, run_checks
    from shardsmith.views.validation import view_frames

    wanted = pa.array(sorted({r["record_id"] for r in rows}), pa.string())
    frames = view_frames(cursor.select(wanted), **{table: rows})
    validate(table, {table: frames[table]}, _view_suites(table),
             run_checks(TABLES[table].checks, CheckInput({table: frames[table]}), "chunk"))
    del frames
    trim()


MAX_FAILURE_LINES = 15


def failure_lines(summaries: dict[str, dict]) -> list[str]:
    """One line per failed expectation (table, suite, expectation, column, failing rows) and per
    failed integrity check (table, check, detail), the most useful first."""
    lines = []
    for t, s in summaries.items():
        if s["success"]:
            continue
        for suite in s.get("suites", []):
            for f in suite.get("failed", []):
                lines.append(f"table {t}: {suite['suite']}: {f.get('expectation')} column={f.get('column')} "
                             f"failing_rows={f.get('unexpected_count')} sample={f.get('sample')}"[:400])
        for c in s.get("integrity", []):
            if not c["passed"]:
                lines.append(f"table {t}: check {c['name']}: {c['detail']} {c.get('examples') or ''}"[:400])
    return lines


def failure_message(collection: str, summaries: dict[str, dict], docs: Path) -> str:
    """The error of a refused release: a first line, what failed line by line, where to look."""
    lines = failure_lines(summaries)
    more = len(lines) - MAX_FAILURE_LINES
    return "\n".join([f"{collection}: validation failed; nothing published", *lines[:MAX_FAILURE_LINES],
                      *([f"... and {more} more"] if more > 0 else []),
                      f"Data Docs: {docs / 'docs' / 'index.html'} (results: {docs}/<table>.json)"])


def _present_counts(stats: dict) -> dict[str, int]:
    """Records with each label present, summed over sources (the label chart's bars)."""
    return {label: sum(by_source.values()) for label, by_source in (stats.get("findings") or {}).items()}


def assemble_release(settings: Settings, collection: str, tables: list[TableInput], fingerprints: dict[str, str],
                     card_note: str = "", crash_hook: Callable[[str], None] | None = None) -> PublishResult:
    """Validate ``tables`` (staged files) of ``collection`` and publish them as one release.

    Medical records first get their duplicate group's split, written once to a scratch copy
    (``write_final_rows``); the views are built from that copy, and the copy is what the suites and
    integrity checks validate and what ``publish`` writes, unchanged. Any failed suite or integrity
    check raises ValidationFailedError before a byte is published, naming each failure and the
    Data Docs kept under ``staging/_validation/<collection>/``; on success the suite results and
    Data Docs ship in the release's ``validation/``. Scratch files live under ``staging/`` (the
    home's disk, not ``/tmp``): a large release's remapped records need that room.
    """
    if not tables:
        raise ValueError(f"nothing staged for collection {collection!r}")
    hooks: dict[str, Callable[[pa.Table], None]] = {}
    stats: dict = {}
    work = settings.layout.staging_root / "_release"
    work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{collection}-validation-", dir=work))
    views_dir = Path(tempfile.mkdtemp(prefix=f"{collection}-views-", dir=work))
    try:
        extra_card = ""
        records = next((t for t in tables if t.spec.name == "records"), None)
        if collection == "medical" and records is not None:
            from shardsmith.identity import stage as identity_stage
            from shardsmith.views.stage import stage_views

            identity = identity_stage.stage_identity(settings.layout.identity_dir(), records.files, fingerprints,
                                                     settings.split_seed)
            passed, examples = identity_stage.check_groups(identity)
            if not passed:
                raise ValidationFailedError(f"{collection}: duplicate groups span splits: {examples}")
            # The group's split, applied once: these files are what is validated and then published.
            records.files = write_final_rows(records.spec, records.files, views_dir / "records", identity.remap())
            staged = stage_views(records.files, views_dir)
            tables += [TableInput(TABLES[n], staged.files[n]) for n in VIEW_TABLES + PRETRAINING_TABLES
                       if n in staged.files]
            dup_file = views_dir / "duplicates.parquet"
            write_parquet_atomic(identity.duplicates, dup_file)
            if identity.duplicates.num_rows:
                tables.append(TableInput(TABLES["duplicates"], [dup_file]))
            extra_card = identity_stage.card_section(identity) + "\n" + staged.card_markdown
        summaries = validate_tables({t.spec.name: t.files for t in tables}, scratch)
        trim()  # the validation's frames (the first chunk of each table, kept for Data Docs) are freed
        if not all(s["success"] for s in summaries.values()):
            kept = _keep_failed_validation(settings, collection, scratch)
            raise ValidationFailedError(failure_message(collection, summaries, kept))
        if any(t.spec.name == "records" for t in tables):
            hook, stats = label_counter()
            hooks["records"] = hook
        return publish(
            settings.releases, collection, tables,
            input_fingerprints=fingerprints,
            card=lambda manifest: (render_card(manifest, stats) + ("\n" + extra_card if extra_card else "")
                                   + ("\n" + card_note if card_note else "")),
            validation_dir=scratch,
            stats_hooks=hooks,
            crash_hook=crash_hook,
            pictures=(lambda folder: label_pictures(records.files, folder, _present_counts(stats)))
            if records is not None else None,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(views_dir, ignore_errors=True)


def _keep_failed_validation(settings: Settings, collection: str, scratch: Path) -> Path:
    """The results and Data Docs of a refused release, kept where the user can open them (the
    scratch folder is removed): ``staging/_validation/<collection>/``, replaced by the next refusal."""
    kept = settings.layout.staging_root / "_validation" / collection
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(scratch, kept)
    return kept
