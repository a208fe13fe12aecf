"""Run expectation suites with Great Expectations (GX Core 1.x) and render Data Docs.

There is no maintained Dagster integration for GX 1.x, so this thin wrapper is ours: a file
context in a scratch folder, one pandas data asset per frame, a checkpoint per table whose
UpdateDataDocsAction renders the HTML that a release ships in ``validation/``. GX is imported
lazily: it costs seconds to import and only validation steps need it.

Nothing is skipped silently: each frame's declared columns become one ``ExpectTableColumnsToMatchSet``
(extra columns allowed, a missing one fails), every expectation runs even when its column is missing
(it then fails too), a frame absent from the input is validated as an empty frame (so it fails its
columns and row count, visibly, in Data Docs), a frame must have rows unless its suite allows empty,
and a report without a single suite outcome is not a success.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
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
    """Validate several tables in one GX context, so one Data Docs site covers them all.

    See the module docstring for the rules (declared columns, missing frames, empty frames).
    ``docs_out`` receives the rendered HTML site, failing or not.
    """
    gx_quiet()
    import great_expectations as gx

    scratch = Path(tempfile.mkdtemp(prefix="shardsmith-gx-"))
    try:
        # Data Docs need a file context; without them an ephemeral one skips writing YAML on every add.
        ctx = (gx.get_context(mode="file", project_root_dir=str(scratch)) if docs_out
               else gx.get_context(mode="ephemeral"))
        runner = ChunkRunner(ctx)
        reports = {table: runner.run(table, frames, suites) for table, (frames, suites) in tables.items()}
        if docs_out:
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
    """Validates frames in one GX context, reusing each (table, frame)'s suite and checkpoint: the
    chunks of a large table (10,000 records each) are each one checkpoint run, instead of a new
    context, data source, suite and checkpoint per chunk (1-2 s apiece)."""

    def __init__(self, ctx: Any = None) -> None:
        gx_quiet()
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.ctx = ctx if ctx is not None else gx.get_context(mode="ephemeral")
        self.ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.sources: dict[str, Any] = {}
        self.checkpoints: dict[tuple[str, str], tuple[Any, Any]] = {}  # -> (suite spec, checkpoint)

    def _checkpoint(self, table: str, frame_name: str, spec: FrameSuite) -> Any:
        got = self.checkpoints.get((table, frame_name))
        if got is not None and got[0] == spec:
            return got[1]
        gx, ctx = self.gx, self.ctx
        n = len(self.checkpoints)
        name = f"{table}.{frame_name}" if got is None else f"{table}.{frame_name}.{n}"
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
        self.checkpoints[(table, frame_name)] = (spec, cp)
        return cp

    def run(self, table: str, frames: dict[str, pd.DataFrame], suites: Suite) -> ValidationReport:
        outcomes: list[SuiteOutcome] = []
        for frame_name, raw_spec in suites.items():
            spec = _frame_suite(raw_spec)
            df = frames.get(frame_name)
            if df is None:  # validated empty: its columns and row count fail where GX shows them
                log.warning("validation %s: frame %s is missing", table, frame_name)
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
        report = ValidationReport(table, bool(outcomes) and all(o.success for o in outcomes), outcomes)
        log.info("validation %s: %s", table, json.dumps(report.to_json(), default=str)[:500])
        return report
