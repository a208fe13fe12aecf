"""Run expectation suites with Great Expectations (GX Core 1.x) and render Data Docs.

There is no maintained Dagster integration for GX 1.x, so this thin wrapper is ours: a file
context in a scratch folder, one pandas data asset per frame, a checkpoint per table whose
UpdateDataDocsAction renders the HTML that a release ships in ``validation/``. GX is imported
lazily: it costs seconds to import and only validation steps need it.
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


def _columns_of(kwargs: dict) -> list[str]:
    cols = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    return cols + list(kwargs.get("column_list", ()))


def run_suites(
    table: str,
    frames: dict[str, pd.DataFrame],
    suites: dict[str, list[tuple[str, dict]]],
    docs_out: Path | None = None,
) -> ValidationReport:
    """Validate each frame against its suite; optionally copy rendered Data Docs to ``docs_out``."""
    return run_tables({table: (frames, suites)}, docs_out)[table]


def run_tables(
    tables: dict[str, tuple[dict[str, pd.DataFrame], dict[str, list[tuple[str, dict]]]]],
    docs_out: Path | None = None,
) -> dict[str, ValidationReport]:
    """Validate several tables in one GX context, so one Data Docs site covers them all.

    An expectation naming a column its frame lacks is skipped (a source may not have it); a frame
    missing from ``frames`` skips its suite. ``docs_out`` receives the rendered HTML site.
    """
    gx_quiet()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    scratch = Path(tempfile.mkdtemp(prefix="shardsmith-gx-"))
    try:
        # Data Docs need a file context; without them an ephemeral one skips writing YAML on every add.
        ctx = (gx.get_context(mode="file", project_root_dir=str(scratch)) if docs_out
               else gx.get_context(mode="ephemeral"))
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        reports: dict[str, ValidationReport] = {}
        for table, (frames, suites) in tables.items():
            ds = ctx.data_sources.add_pandas(name=f"{table}_frames")
            outcomes: list[SuiteOutcome] = []
            for frame_name, expectations in suites.items():
                df = frames.get(frame_name)
                if df is None:
                    continue
                # Built whole, then added once: add_expectation on a stored suite re-saves it each time.
                configured = [getattr(gx.expectations, cls_name)(**kwargs) for cls_name, kwargs in expectations
                              if all(c in df.columns for c in _columns_of(kwargs))]
                suite = ctx.suites.add(gx.ExpectationSuite(name=f"{table}.{frame_name}", expectations=configured))
                bd = ds.add_dataframe_asset(name=frame_name).add_batch_definition_whole_dataframe("all")
                vd = ctx.validation_definitions.add(
                    gx.ValidationDefinition(name=f"{table}.{frame_name}", data=bd, suite=suite)
                )
                # Docs are rendered once at the end: an UpdateDataDocsAction per checkpoint rebuilds
                # the whole site every time.
                cp = ctx.checkpoints.add(gx.Checkpoint(name=f"{table}.{frame_name}.cp",
                                                       validation_definitions=[vd], actions=[],
                                                       result_format={"result_format": "SUMMARY"}))
                result = cp.run(batch_parameters={"dataframe": df})
                for vr in result.run_results.values():
                    failed = []
                    for r in vr.results:
                        if not r.success:
                            cfg = r.expectation_config
                            res = r.result or {}
                            failed.append({
                                "expectation": cfg.type,
                                "column": cfg.kwargs.get("column") or cfg.kwargs.get("column_list")
                                or [cfg.kwargs.get("column_A"), cfg.kwargs.get("column_B")],
                                "unexpected_count": _plain(res.get("unexpected_count")),
                                "sample": _plain(res.get("partial_unexpected_list", [])[:5]),
                                "observed": _plain(res.get("observed_value")),
                            })
                    outcomes.append(SuiteOutcome(f"{table}.{frame_name}", bool(vr.success),
                                                 len(vr.results), failed))
            reports[table] = ValidationReport(table, all(o.success for o in outcomes), outcomes)
            log.info("validation %s: %s", table, json.dumps(reports[table].to_json(), default=str)[:500])
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
