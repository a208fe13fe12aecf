"""Run expectation suites with Great Expectations (GX Core 1.x) and render Data Docs.

There is no maintained Dagster integration for GX 1.x, so this thin wrapper is ours: one pandas
data asset, suite and checkpoint per (table, frame), all in ONE ephemeral GX context per process,
and a file context in a scratch folder only where Data Docs are rendered (a release ships them in
``validation/``; a failing check names them), so a site shows exactly the tables it was asked for.

GX is imported lazily: its import costs seconds (2-3 s on a quiet machine, a quarter of a one-image
rebuild of the demo home) and only validating steps need it. A build that knows it will validate
(``defs.run.run_build``) calls :func:`start_process` first: a child process then imports GX on the
other core while this one imports Dagster and stages the catalog and records, and every validation
of the build (the staging checks and the release, same suites, same rows, same Data Docs) runs
there. Without it everything runs in this process, as before.

Nothing is skipped silently: each frame's declared columns become one ``ExpectTableColumnsToMatchSet``
(extra columns allowed, a missing one fails), every expectation runs even when its column is missing
(it then fails too), a frame absent from the input is validated as an empty frame (so it fails its
columns and row count, visibly, in Data Docs), a frame must have rows unless its suite allows empty,
and a report without a single suite outcome is not a success.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import shutil
import sys
import tempfile
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shardsmith.config import gx_quiet
from shardsmith.validation.suites import FrameSuite, Suite

log = logging.getLogger(__name__)


@dataclass
class SuiteOutcome:
    suite: str
    success: bool
    evaluated: int
    failed: list[dict] = field(default_factory=list)  # {expectation, column, unexpected_count, sample}


@dataclass
class ValidationReport:
    table: str
    success: bool
    suites: list[SuiteOutcome]
    docs_dir: Path | None = None

    @property
    def docs_index(self) -> Path | None:
        """The Data Docs site's ``index.html``, when docs were rendered."""
        index = self.docs_dir / "index.html" if self.docs_dir else None
        return index if index is not None and index.is_file() else None

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "success": self.success,
            "suites": [s.__dict__ for s in self.suites],
        }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _frame_suite(spec: FrameSuite | list[tuple[str, dict]]) -> FrameSuite:
    """Accept a bare expectation list too (a caller's ad-hoc suite): it must then have rows."""
    return spec if isinstance(spec, FrameSuite) else FrameSuite(list(spec))


def _expectations(spec: FrameSuite) -> list[tuple[str, dict]]:
    """Declared columns and the row-count rule first, then the suite's own expectations."""
    out: list[tuple[str, dict]] = [("ExpectTableColumnsToMatchSet",
                                    {"column_set": list(spec.columns), "exact_match": False})]
    counted = any(cls == "ExpectTableRowCountToBeBetween" for cls, _ in spec.expectations)
    if not spec.allow_empty and not counted:
        out.append(("ExpectTableRowCountToBeBetween", {"min_value": 1}))
    return out + list(spec.expectations)


def run_suites(
    table: str,
    frames: dict[str, pd.DataFrame],
    suites: Suite,
    docs_out: Path | None = None,
) -> ValidationReport:
    """Validate each frame against its suite; optionally copy rendered Data Docs to ``docs_out``."""
    return run_tables({table: (frames, suites)}, docs_out)[table]


def validate_with_docs(table: str, frames: dict[str, pd.DataFrame], suites: Suite,
                       docs_out: Path) -> tuple[ValidationReport, Path]:
    """Validate and render Data Docs into ``docs_out`` whether the run passes or fails.

    Returns the report and the site's ``index.html``: for a failing partition check, the place a
    user needs the docs most, put that path in the check's metadata.
    """
    report = run_suites(table, frames, suites, docs_out)
    if report.docs_index is None:
        raise RuntimeError(f"GX rendered no Data Docs into {docs_out}")
    return report, report.docs_index


def run_tables(
    tables: dict[str, tuple[dict[str, pd.DataFrame], Suite]],
    docs_out: Path | None = None,
) -> dict[str, ValidationReport]:
    """Validate several tables together, so one Data Docs site covers them all.

    See the module docstring for the rules (declared columns, missing frames, empty frames).
    ``docs_out`` receives the rendered HTML site, failing or not.
    """
    for table, (frames, suites) in tables.items():
        _warn_missing(table, frames, suites)
    reports = _dispatch("run_tables", _run_tables_here, tables, docs_out)
    for report in reports.values():
        _log_report(report)
    return reports


def _run_tables_here(tables: dict[str, tuple[dict[str, pd.DataFrame], Suite]],
                     docs_out: Path | None) -> dict[str, ValidationReport]:
    """:func:`run_tables` in this process: the process's context, or a fresh file context for docs.

    The docs get a context of their own (about 30 ms to make, after the import) so the site holds
    only these tables, not every staging check the process ran before.
    """
    if docs_out is None:
        return {table: _shared_runner().run(table, frames, suites) for table, (frames, suites) in tables.items()}
    gx_quiet()
    import great_expectations as gx

    scratch = Path(tempfile.mkdtemp(prefix="shardsmith-gx-"))
    try:
        ctx = gx.get_context(mode="file", project_root_dir=str(scratch))
        _count_context("file")
        runner = _LocalRunner(ctx)
        reports = {table: runner.run(table, frames, suites) for table, (frames, suites) in tables.items()}
        ctx.build_data_docs()
        site = scratch / "gx" / "uncommitted" / "data_docs" / "local_site"
        if site.is_dir():
            docs_out.mkdir(parents=True, exist_ok=True)
            shutil.copytree(site, docs_out, dirs_exist_ok=True)
            for report in reports.values():
                report.docs_dir = docs_out
        return reports
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class ChunkRunner:
    """Validates frames in the process's one GX context (or the GX process's, once started):
    the chunks of a large table (10,000 records each), the staging checks and the release are each
    a checkpoint run, instead of a new context, data source, suite and checkpoint per chunk (1-2 s
    apiece). Holds no state: every runner of a process shares that context."""

    def run(self, table: str, frames: dict[str, pd.DataFrame], suites: Suite) -> ValidationReport:
        _warn_missing(table, frames, suites)
        report = _dispatch("run", _run_here, table, frames, suites)
        _log_report(report)
        return report


def _warn_missing(table: str, frames: dict[str, pd.DataFrame], suites: Suite) -> None:
    """Said here, in the caller's process, whose log a user reads."""
    for frame_name in suites:
        if frames.get(frame_name) is None:
            log.warning("validation %s: frame %s is missing", table, frame_name)


def _log_report(report: ValidationReport) -> None:
    log.info("validation %s: %s", report.table, json.dumps(report.to_json(), default=str)[:500])


class _LocalRunner:
    """Suites and checkpoints in one GX context of this process, each made once per (table, frame,
    suite) and reused for every later frame with that suite."""

    def __init__(self, ctx: Any = None) -> None:
        gx_quiet()
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        if ctx is None:
            ctx = gx.get_context(mode="ephemeral")
            _count_context("ephemeral")
        self.ctx = ctx
        self.ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.sources: dict[str, Any] = {}
        self.checkpoints: dict[tuple[str, str], list[tuple[FrameSuite, Any]]] = {}  # -> [(suite spec, checkpoint)]
        self.made = 0
        self.lock = threading.Lock()

    def _checkpoint(self, table: str, frame_name: str, spec: FrameSuite) -> Any:
        made = self.checkpoints.setdefault((table, frame_name), [])
        got = next((cp for s, cp in made if s == spec), None)
        if got is not None:
            return got
        gx, ctx = self.gx, self.ctx
        # A second suite for the same frame (another row rule, say) gets a name of its own: names
        # are unique in a context, and one context serves every check of the process.
        name = f"{table}.{frame_name}" if not made else f"{table}.{frame_name}.{self.made}"
        self.made += 1
        ds = self.sources.get(table)
        if ds is None:
            ds = self.sources[table] = ctx.data_sources.add_pandas(name=f"{table}_frames")
        # Built whole, then added once: add_expectation on a stored suite re-saves it each time.
        configured = [getattr(gx.expectations, cls_name)(**kwargs) for cls_name, kwargs in _expectations(spec)]
        suite = ctx.suites.add(gx.ExpectationSuite(name=name, expectations=configured))
        bd = ds.add_dataframe_asset(name=name.split(".", 1)[1]).add_batch_definition_whole_dataframe("all")
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=bd, suite=suite))
        # Docs are rendered once at the end: an UpdateDataDocsAction per checkpoint rebuilds
        # the whole site every time.
        cp = ctx.checkpoints.add(gx.Checkpoint(name=f"{name}.cp", validation_definitions=[vd], actions=[],
                                               result_format={"result_format": "SUMMARY"}))
        made.append((spec, cp))
        return cp

    def run(self, table: str, frames: dict[str, pd.DataFrame], suites: Suite) -> ValidationReport:
        with self.lock:
            return self._run(table, frames, suites)

    def _run(self, table: str, frames: dict[str, pd.DataFrame], suites: Suite) -> ValidationReport:
        outcomes: list[SuiteOutcome] = []
        for frame_name, raw_spec in suites.items():
            spec = _frame_suite(raw_spec)
            df = frames.get(frame_name)
            if df is None:  # validated empty: its columns and row count fail where GX shows them
                df = pd.DataFrame()
            result = self._checkpoint(table, frame_name, spec).run(batch_parameters={"dataframe": df})
            for vr in result.run_results.values():
                failed = []
                for r in vr.results:
                    if not r.success:
                        cfg = r.expectation_config
                        res = r.result or {}
                        failed.append({
                            "expectation": cfg.type,
                            "column": cfg.kwargs.get("column") or cfg.kwargs.get("column_list")
                            or cfg.kwargs.get("column_set")
                            or [cfg.kwargs.get("column_A"), cfg.kwargs.get("column_B")],
                            "unexpected_count": _plain(res.get("unexpected_count")),
                            "sample": _plain(res.get("partial_unexpected_list", [])[:5]),
                            "observed": _plain(res.get("observed_value")),
                            "details": _plain(res.get("details")),
                            "error": (r.exception_info or {}).get("exception_message")
                            if isinstance(r.exception_info, dict) else None,
                        })
                outcomes.append(SuiteOutcome(f"{table}.{frame_name}", bool(vr.success), len(vr.results), failed))
        # no suite at all is not a pass: nothing was checked
        return ValidationReport(table, bool(outcomes) and all(o.success for o in outcomes), outcomes)


# --------------------------------------------------------------------------- one context per process

_SHARED: _LocalRunner | None = None
_SHARED_LOCK = threading.Lock()
_CONTEXTS: dict[str, int] = {"ephemeral": 0, "file": 0}


def _shared_runner() -> _LocalRunner:
    """This process's one ephemeral context and its checkpoints, made on first use."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = _LocalRunner()
        return _SHARED


def _run_here(table: str, frames: dict[str, pd.DataFrame], suites: Suite) -> ValidationReport:
    return _shared_runner().run(table, frames, suites)


def _count_context(kind: str) -> None:
    _CONTEXTS[kind] += 1


def gx_stats() -> dict[str, Any]:
    """Where validation runs and how many GX contexts it made there (``pid``, ``ephemeral``,
    ``file``): a build's checks must share one ephemeral context, plus one file context per site."""
    return _dispatch("stats", _stats_here)


def _stats_here() -> dict[str, Any]:
    return {"pid": os.getpid(), **_CONTEXTS}


# --------------------------------------------------------------------------- the GX process

class GxProcessError(RuntimeError):
    """The GX process exited or could not send its answer back."""


class _NeverStartedError(GxProcessError):
    """The GX process exited before it was ready (typically a script without an ``if __name__ ==
    "__main__":`` guard, which a spawned child re-runs): nothing was validated there yet."""


class _GxProcess:
    """A child process (spawned: a clean interpreter, whatever threads this one runs) that imports
    GX as soon as it starts and then answers calls in order over a pipe: the frames and suites go
    in, :class:`ValidationReport` objects come back, an exception is raised here as it was there."""

    def __init__(self, verbose: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, verbose), name="shardsmith-gx", daemon=True)
        self.proc.start()
        child.close()
        self.lock = threading.Lock()
        self.ready = False

    def _await_ready(self) -> None:
        try:
            self.conn.recv()  # ("ready", pid), sent once GX is imported
        except (EOFError, OSError) as exc:
            raise _NeverStartedError(f"exit code {self.proc.exitcode}") from exc
        self.ready = True

    def call(self, op: str, *args: Any) -> Any:
        with self.lock:
            if not self.ready:
                self._await_ready()
            try:
                self.conn.send((op, args))
                status, value = self.conn.recv()
            except (EOFError, OSError) as exc:
                raise GxProcessError(f"the GX process (pid {self.proc.pid}) exited "
                                     f"(exit code {self.proc.exitcode})") from exc
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        """Ends the child at once: it holds nothing to flush (each call cleans its scratch folder
        before answering), and a clean interpreter exit with GX loaded costs half a second."""
        with self.lock:
            self.conn.close()
            self.proc.terminate()
            self.proc.join(timeout=10)


_PROCESS: _GxProcess | None = None


def start_process(verbose: bool = False) -> None:
    """Validate in a child process from now on, started now so its GX import overlaps this
    process's work. Idempotent; a process whose child has died starts a new one."""
    global _PROCESS
    with _SHARED_LOCK:
        if _PROCESS is not None and _PROCESS.proc.is_alive():
            return
        _PROCESS = _GxProcess(verbose)


def _dispatch(op: str, here: Any, *args: Any) -> Any:
    """``op`` in the GX process when one was started, else ``here(*args)`` in this process (also
    when the process could not start: said once, as a warning)."""
    proc = _PROCESS
    if proc is not None:
        try:
            return proc.call(op, *args)
        except _NeverStartedError as exc:
            log.warning("the GX process did not start (%s); validating in this process", exc)
            _drop(proc)
    return here(*args)


def _drop(proc: _GxProcess) -> None:
    global _PROCESS
    with _SHARED_LOCK:
        if _PROCESS is proc:
            _PROCESS = None
    proc.close()


def stop_process() -> None:
    """Back to validating in this process; the child exits."""
    global _PROCESS
    with _SHARED_LOCK:
        proc, _PROCESS = _PROCESS, None
    if proc is not None:
        proc.close()


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling (its traceback as a note), else a
    RuntimeError that carries its type, message and traceback."""
    text = "".join(traceback.format_exception(exc))
    try:
        exc.add_note(f"in the GX process:\n{text}")
        return pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{exc.__class__.__name__}: {exc}\n{text}")


def _serve(conn: Any, verbose: bool) -> None:
    """The GX process: import GX, then answer calls until told to close or the parent goes."""
    os.dup2(2, 1)  # stdout belongs to the parent (``shardsmith build --json``); GX prints go to stderr
    sys.stdout = sys.stderr
    root = logging.getLogger()
    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s [gx process]: %(message)s")
    else:
        root.handlers[:] = [logging.NullHandler()]
        warnings.simplefilter("ignore")
    gx_quiet()
    import great_expectations  # noqa: F401  the reason this process exists: paid while the parent works
    from tqdm import tqdm

    # GX makes a tqdm per validation even with its bars off, and tqdm's default lock is a
    # multiprocessing semaphore: this child, ended with SIGTERM, would leave it for the parent's
    # resource tracker to warn about on the terminal. Nothing here shares tqdm across processes.
    tqdm.set_lock(threading.RLock())

    conn.send(("ready", os.getpid()))
    ops = {"run": _run_here, "run_tables": _run_tables_here, "stats": _stats_here}
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return
        if op == "close":
            return
        try:
            answer: tuple[str, Any] = ("ok", ops[op](*args))
        except Exception as exc:
            answer = ("error", _portable(exc))
        try:
            conn.send(answer)
        except Exception as exc:  # an answer that does not pickle
            conn.send(("error", GxProcessError(f"{op}: the answer could not be sent back: {exc!r}")))
