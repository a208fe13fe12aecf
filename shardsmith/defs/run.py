"""The build driver (Dagster layer): materialise the selected sources and the releases in-process through Dagster.

The one driver of a whole build. Settings are made once here and handed to the Dagster resource;
:mod:`.preflight` has checked the selection before the first run starts. Unpartitioned assets run
together; each partitioned stage runs ONCE over its whole partition range (a single-run backfill:
one pool, one validation per source), and whatever depends on it runs after. Steps whose inputs
are unchanged reuse their staged output, so a repeated build is cheap. A source whose step fails
does not stop the others: its later steps are skipped and the release is refused, naming it,
unless ``allow_partial`` (then the release is built without it). With ``DAGSTER_HOME`` set the
runs are recorded in that instance (the UI shows them); Dagster's own event lines go to the
instance always and to the terminal only with ``verbose``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from shardsmith import config
from shardsmith.pipeline import keys, plan
from shardsmith.pipeline.preflight import Selection, build_settings, select

log = logging.getLogger(__name__)


def quiet_dagster(verbose: bool) -> None:
    """Dagster's Beta/Preview/supersession warnings and alembic's migration INFO off the terminal
    unless ``verbose``; the events themselves are still stored in the instance."""
    if verbose:
        return
    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning, dg.ConfigArgumentWarning):
        warnings.filterwarnings("ignore", category=category)
    for noisy in ("alembic", "great_expectations", "dagster", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run_config(verbose: bool) -> dict:
    """The console logger at DEBUG (everything) with ``verbose``, else nothing: the build prints its own summary and causes."""
    return {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "CRITICAL"}}}}


MAX_DETAIL_LINES = 20


def _cause(error) -> list[str]:
    """The user's error inside Dagster's wrappers: the innermost cause's message, line by line (its
    first line names the exception type; a validation failure lists what failed below it)."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    if error is None:
        return ["failed (no error recorded)"]
    lines = [ln.rstrip() for ln in (error.message or "").splitlines() if ln.strip()]
    if lines and error.cls_name and ": " in lines[0]:  # "pkg.module.Error: text" -> "Error: text"
        head, text = lines[0].split(": ", 1)
        if head.endswith(error.cls_name):
            lines[0] = f"{error.cls_name}: {text}"
    return lines[:MAX_DETAIL_LINES] or [error.cls_name or "failed"]


def _check_failure(evaluation) -> dict:
    """A failed asset check as data: which asset, which check, what failed, where the docs are."""
    meta = {k: getattr(v, "value", v) for k, v in (evaluation.metadata or {}).items()}
    failures = []
    for suite in meta.get("suites") or []:
        for f in suite.get("failed", []) if isinstance(suite, dict) else []:
            failures.append({"suite": suite.get("suite"), **f})
    broken = {k: v for k, v in meta.items() if isinstance(v, str) and v.startswith("FAILED")}
    return {"asset": evaluation.asset_key.to_user_string(), "check": evaluation.check_name,
            "failures": failures, "integrity": broken, "data_docs": meta.get("data_docs"),
            "detail": {k: v for k, v in meta.items() if k in ("empty_parts_with_inputs", "failed_parts")}}


def run_build(home: Path, echo: bool = True, sources: tuple[str, ...] = (), workers: int | None = None,
              allow_partial: bool = False, verbose: bool = False,
              say: Callable[[str], None] | None = None) -> dict:
    """Build ``home``: preflight, then every stage in dependency order; returns the summary.

    Raises :class:`~shardsmith.pipeline.preflight.PreflightError` before anything runs when a
    precondition fails.
    """
    t0 = time.monotonic()
    settings = build_settings(home, workers, allow_partial)
    selection = select(settings, sources, allow_partial=allow_partial)
    say = say or ((lambda msg: log.info(msg)) if echo else (lambda msg: None))
    for warning in selection.warnings:
        say(f"warning: {warning}")
    summary: dict = {"success": True, "runs": 0, "failed_checks": [], "check_failures": [], "recomputed": [],
                     "reused": [], "failed_steps": [], "failed_sources": [], "errors": [], "steps": [],
                     "warnings": list(selection.warnings)}
    wanted_names = keys.build_keys(selection.medical, selection.games)
    if plan.trusts_plan(settings, selection.all, allow_partial):
        # The last build of these sources succeeded: run only what the plan finds stale, and
        # report the rest as reused without starting Dagster for it.
        the_plan = plan.plan_build(settings, selection.medical, selection.games)
        stale = plan.stale_keys(the_plan)
        summary["plan"] = the_plan["steps"]
        summary["reused"] += [s for s in plan.reused_steps(the_plan) if s.split("[", 1)[0] not in stale]
        wanted_names = [k for k in wanted_names if k in stale]
        if not wanted_names:
            say("nothing to do: every step's inputs are unchanged since the last successful build")
            summary["seconds"] = round(time.monotonic() - t0, 1)
            summary["partial"] = False
            return summary
    from shardsmith.validation import gx_runner  # pandas and numpy: not for a build with nothing to do

    if keys.validates(wanted_names):
        # GX takes seconds to import: a child process pays that on the other core while this one
        # imports Dagster and stages the catalog and records; every check of the build runs there.
        gx_runner.start_process(verbose)
    try:
        return _materialise(settings, selection, wanted_names, summary, say, home, workers, allow_partial,
                            verbose, t0)
    finally:
        gx_runner.stop_process()


def _materialise(settings: config.Settings, selection: Selection, wanted_names: list[str], summary: dict, say: Callable[[str], None],
                 home: Path, workers: int | None, allow_partial: bool, verbose: bool, t0: float) -> dict:
    """The Dagster runs of :func:`run_build`, stage by stage; fills and returns ``summary``."""
    quiet_dagster(verbose)  # before the definitions are imported: their decorators warn
    import dagster as dg

    from shardsmith.definitions import graph_parts
    from shardsmith.defs.resources import ShardsmithResource

    wanted = [dg.AssetKey(k) for k in wanted_names]
    assets, checks = graph_parts(settings)
    instance = dg.DagsterInstance.get() if config.dagster_home() else dg.DagsterInstance.ephemeral()
    resources = {"shardsmith": ShardsmithResource(home=str(home), workers=workers if workers is not None else -1,
                                                  allow_partial=allow_partial)}

    def run(selected: set, parts: list[str] | None) -> set:
        """One Dagster run; returns the asset keys whose step or blocking check failed."""
        t = time.monotonic()
        tags = {}
        if parts:
            tags = {"dagster/asset_partition_range_start": parts[0], "dagster/asset_partition_range_end": parts[-1]}
        with warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            result = dg.materialize(
                [*assets, *checks], selection=dg.AssetSelection.assets(*selected), resources=resources,
                instance=instance, raise_on_error=False, tags=tags, run_config=_run_config(verbose),
            )
        failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
        failed = {e.asset_key for e in failed_checks}
        names = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in failed_checks]
        summary["check_failures"] += [_check_failure(e) for e in failed_checks]
        for ev in result.all_events:
            if not ev.is_step_failure:
                continue
            message, *details = _cause(ev.step_failure_data.error)
            hit = {ev.asset_key} if ev.asset_key is not None else {
                k for k in selected if ev.step_key and ev.step_key.startswith(k.to_python_identifier())}
            failed |= hit
            summary["errors"].append({"step": ev.step_key, "message": message, "details": details})
        materialised = set()
        done: dict[str, list[str]] = {"recomputed": [], "reused": []}
        for ev in result.get_asset_materialization_events():
            mat = ev.event_specific_data.materialization
            materialised.add(mat.asset_key)
            name = mat.asset_key.to_user_string() + (f"[{mat.partition}]" if mat.partition else "")
            meta = mat.metadata
            if "recomputed_parts" in meta:
                kind = "recomputed" if mat.partition in meta["recomputed_parts"].value else "reused"
            else:
                kind = "reused" if meta.get("recomputed") is not None and meta["recomputed"].value is False \
                    else "recomputed"
            done[kind].append(name)
        failed |= {k for k in selected if k not in materialised and not result.success}
        summary["runs"] += 1
        summary["failed_checks"] += names
        for k, v in done.items():
            summary[k] += v
        secs = time.monotonic() - t
        asset_names = sorted(k.to_user_string() for k in selected)
        label = run_label(asset_names, len(parts) if parts else 0)
        summary["steps"].append({"run": ", ".join(asset_names) + (f" ({len(parts)} partitions)" if parts else ""),
                                 "label": label, "ok": not failed, "seconds": round(secs, 1),
                                 "built": len(done["recomputed"]), "reused": len(done["reused"]),
                                 "failed": sorted(k.to_user_string() for k in failed)})
        say(f"{label}: {'ok' if not failed else 'FAILED'} in {secs:.1f}s "
            f"({len(done['recomputed'])} built, {len(done['reused'])} reused)")
        return failed

    failed_sources: set[str] = set()
    for stage_keys, pdef in _stages(assets, wanted):
        stage_keys = {k for k in stage_keys if keys.describe(k.to_user_string()).source not in failed_sources}
        for rel in [k for k in stage_keys if keys.describe(k.to_user_string()).stage == keys.RELEASE]:
            coll = keys.describe(rel.to_user_string()).collection
            bad = sorted(s for s in failed_sources if keys.describe(keys.catalog(s)).collection == coll)
            if bad and not allow_partial:
                say(f"{rel.to_user_string()}: REFUSED: source(s) {bad} failed to stage "
                    "(--allow-partial publishes without them)")
                summary["failed_steps"].append(rel.to_user_string())
                summary["errors"].append({"step": rel.to_user_string(),
                                          "message": f"refused: source(s) {', '.join(bad)} failed to stage"})
                stage_keys.discard(rel)
            elif bad:
                say(f"{rel.to_user_string()}: publishing without {bad} (--allow-partial)")
        if not stage_keys:
            continue
        if pdef is None:
            failed = run(stage_keys, None)
        else:
            parts = pdef.get_partition_keys(dynamic_partitions_store=instance)
            if not parts:
                continue
            failed = run(stage_keys, parts)
        for k in failed:
            info = keys.describe(k.to_user_string())
            summary["failed_steps"].append(info.key)
            if info.source is not None:
                failed_sources.add(info.source)
            else:
                summary["success"] = False
    summary["failed_sources"] = sorted(failed_sources)
    tolerated = {k for s in failed_sources for k in keys.source_keys(s)} if allow_partial else set()
    if set(summary["failed_steps"]) - tolerated:
        summary["success"] = False
    summary["partial"] = bool(failed_sources) and allow_partial
    plan.write_last_build(settings, selection.all, allow_partial, summary["success"])
    summary["seconds"] = round(time.monotonic() - t0, 1)
    return summary


def run_label(names: list[str], partitions: int = 0) -> str:
    """A short, whole-word name for a run on a terminal: its assets when few, else what they are."""
    tail = f" x {partitions} partitions" if partitions else ""
    if len(names) <= 3:
        return ", ".join(names) + tail
    stages: dict[str, int] = {}
    for n in names:
        stage = keys.describe(n).stage
        stages[stage] = stages.get(stage, 0) + 1
    what = ", ".join(f"{c} {s.replace('werewolf_', '')}" for s, c in stages.items())
    return f"{len(names)} assets ({what}){tail}"


def _stages(assets: list, wanted: list) -> list[tuple[set, object]]:
    """Order the selection into runs: unpartitioned closures and one stage per partitions definition."""
    by_key = {k: a for a in assets if hasattr(a, "specs_by_key") for k in a.keys}
    parents = {k: {d.asset_key for d in by_key[k].specs_by_key[k].deps} for k in wanted}
    pdefs = {k: by_key[k].partitions_def for k in wanted}
    remaining, stages = set(wanted), []

    def ancestors(k, seen=None) -> set:
        seen = set() if seen is None else seen
        for p in parents.get(k, ()):
            if p in remaining and p not in seen:
                seen.add(p)
                ancestors(p, seen)
        return seen

    while remaining:
        whole = {k for k in remaining if pdefs[k] is None and all(pdefs[a] is None for a in ancestors(k))}
        if whole:
            stages.append((whole, None))
            remaining -= whole
            continue
        ready = [k for k in remaining if not (ancestors(k) & remaining)]
        pdef = pdefs[ready[0]]
        group = {k for k in ready if pdefs[k] == pdef}
        stages.append((group, pdef))
        remaining -= group
    return stages
