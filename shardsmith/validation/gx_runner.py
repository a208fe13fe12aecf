"""Run expectation suites with Great Expectations (GX Core 1.x) and render Data Docs.

There is no maintained Dagster integration for GX 1.x, so this thin wrapper is ours: a file
context in a scratch folder, one pandas data asset per frame, a checkpoint per table whose
UpdateDataDocsAction renders the HTML that a release ships in ``validation/``. GX is imported
lazily: it costs seconds to import and only validation steps need it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
    return value


def run_suites(
    table: str,
    frames: dict[str, pd.DataFrame],
    suites: dict[str, list[tuple[str, dict]]],
    docs_out: Path | None = None,
) -> ValidationReport:
    """Validate each frame against its suite; optionally copy rendered Data Docs to ``docs_out``."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    scratch = Path(tempfile.mkdtemp(prefix="shardsmith-gx-"))
    try:
        ctx = gx.get_context(mode="file", project_root_dir=str(scratch))
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        ds = ctx.data_sources.add_pandas(name=f"{table}_frames")
        outcomes: list[SuiteOutcome] = []
        for frame_name, expectations in suites.items():
            df = frames.get(frame_name)
            if df is None:
                continue
            suite = ctx.suites.add(gx.ExpectationSuite(name=f"{table}.{frame_name}"))
            for cls_name, kwargs in expectations:
                if "column" in kwargs and kwargs["column"] not in df.columns:
                    continue
                suite.add_expectation(getattr(gx.expectations, cls_name)(**kwargs))
            bd = ds.add_dataframe_asset(name=frame_name).add_batch_definition_whole_dataframe("all")
            vd = ctx.validation_definitions.add(
                gx.ValidationDefinition(name=f"{table}.{frame_name}", data=bd, suite=suite)
            )
            actions = [gx.checkpoint.UpdateDataDocsAction(name="docs")] if docs_out else []
            cp = ctx.checkpoints.add(gx.Checkpoint(name=f"{table}.{frame_name}.cp",
                                                   validation_definitions=[vd], actions=actions,
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
                            "column": cfg.kwargs.get("column"),
                            "unexpected_count": _plain(res.get("unexpected_count")),
                            "sample": _plain(res.get("partial_unexpected_list", [])[:5]),
                        })
                outcomes.append(SuiteOutcome(f"{table}.{frame_name}", bool(vr.success),
                                             len(vr.results), failed))
        docs_dir = None
        if docs_out:
            site = scratch / "gx" / "uncommitted" / "data_docs" / "local_site"
            if site.is_dir():
                docs_out.mkdir(parents=True, exist_ok=True)
                shutil.copytree(site, docs_out, dirs_exist_ok=True)
                docs_dir = docs_out
        report = ValidationReport(table, all(o.success for o in outcomes), outcomes, docs_dir)
        log.info("validation %s: %s", table, json.dumps(report.to_json())[:500])
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
