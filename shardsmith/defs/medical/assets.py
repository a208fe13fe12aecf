"""Per medical source: ``<source>_catalog`` -> ``<source>_records`` -> blocking checks.

Thin: every asset calls one function of ``shardsmith.staging.steps`` and turns its outcome into
metadata. Sources come from the registry; a source that declares ``partitioned`` gets its
records partitioned into ``settings.buckets`` stable hash buckets of the native id.
"""


import logging
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from shardsmith.config import Settings
from shardsmith.defs.resources import ShardsmithResource
from shardsmith.pipeline import keys
from shardsmith.sources.registry import get_source, medical_source_names
from shardsmith.staging import steps
from shardsmith.staging.layout import StagingLayout
from shardsmith.staging.versions import bucket_keys

GROUP = "medical"
progress_log = logging.getLogger("shardsmith.progress")


def buckets_def(settings: Settings) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(bucket_keys(settings.buckets))


# --- metadata ---------------------------------------------------------------------------------------


def md_table(rows: dict, key: str, value: str) -> dg.MetadataValue:
    lines = [f"| {key} | {value} |", "| --- | ---: |"] + [f"| {k} | {v} |" for k, v in rows.items()]
    return dg.MetadataValue.md("\n".join(lines) if rows else "_none_")


def _preview(path: Path, n: int = 8) -> dg.MetadataValue:
    cols = ["record_id", "split", "view", "abnormal", "height", "width"]
    pf = pq.ParquetFile(path)
    if pf.metadata.num_rows == 0:
        return dg.MetadataValue.md("_no records_")
    batch = next(pf.iter_batches(batch_size=n, columns=cols + ["findings", "targets"]))
    lines = ["| " + " | ".join(cols + ["present", "targets"]) + " |", "|" + " --- |" * (len(cols) + 2)]
    for r in batch.to_pylist():
        present = ", ".join(f["label"] for f in r["findings"] or [] if f["status"] == "present")
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + f" | {present} | {len(r['targets'] or [])} |")
    return dg.MetadataValue.md("\n".join(lines))


def _pictures(layout: StagingLayout, source: str, part: str, distribution: dict[str, int], refresh: bool) -> dict:
    """Contact sheet and label chart next to the staged records; drawn again only when rebuilt."""
    from shardsmith.publish.preview import contact_sheet, label_bars_markdown, label_chart

    records = layout.table(source, "records", part)
    sheet_path, chart_path = layout.preview(source, part), layout.label_chart(source, part)
    out: dict = {"label_bars": dg.MetadataValue.md(label_bars_markdown(distribution))}
    sheet = sheet_path if sheet_path.is_file() and not refresh else contact_sheet(records, sheet_path)
    if sheet:
        out["contact_sheet"] = dg.MetadataValue.path(str(sheet))
        out["contact_sheet_image"] = dg.MetadataValue.md(f"![contact sheet](file://{sheet})")
    chart = chart_path if chart_path.is_file() and not refresh else label_chart(distribution, chart_path)
    if chart:
        out["label_chart"] = dg.MetadataValue.path(str(chart))
        out["label_chart_image"] = dg.MetadataValue.md(f"![labels](file://{chart})")
    return out


def _progress(context: dg.AssetExecutionContext, label: str) -> Callable[[int, int, float], None]:
    """Progress to the run log and to the ``shardsmith.progress`` logger (the CLI prints it)."""

    def progress(done: int, total: int, secs: float) -> None:
        rate = done / secs if secs else 0.0
        eta = (total - done) / rate if rate else 0.0
        msg = f"{label}: {done}/{total} items decoded ({rate:.1f}/s, eta {eta:.0f}s)"
        context.log.info(msg)
        progress_log.info(msg, extra={"progress": (label, done, total)})

    return progress


def _check_result(outcome: steps.CheckOutcome) -> dg.AssetCheckResult:
    meta = {k: dg.MetadataValue.json(v) if isinstance(v, list | dict) else v for k, v in outcome.metadata.items()}
    if "data_docs" in meta:  # the rendered Data Docs of a failing check: where a user looks first
        meta["data_docs"] = dg.MetadataValue.path(outcome.metadata["data_docs"])
    return dg.AssetCheckResult(passed=outcome.passed, metadata=meta)


# --- the assets -------------------------------------------------------------------------------------


def build_source_assets(name: str, settings: Settings) -> tuple[list, list]:
    source = get_source(name, settings)
    pdef = buckets_def(settings) if source.partitioned else None

    @dg.asset(
        name=keys.catalog(name), group_name=GROUP, code_version=source.adapter_version,
        description=f"{name}: label files parsed and joined with images on disk; checksums, no pixels.",
        kinds={"python", "parquet"},
        metadata={"licence": source.licence, "homepage": source.homepage},
    )
    def catalog(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
        settings = shardsmith.settings()
        try:
            out = steps.stage_catalog(settings, get_source(name, settings))
        except steps.RawMissingError as e:
            raise dg.Failure(str(e)) from e
        context.log.info(f"{name}: {out.counts}{' (reused)' if not out.recomputed else ''}")
        meta = {**out.counts, "recomputed": out.recomputed,
                "staging_path": dg.MetadataValue.path(str(out.paths["catalog"]))}
        for key in ("removed_stale", "label_files"):
            if key in out.notes:
                meta[key] = dg.MetadataValue.json(out.notes[key])
        return dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(out.version))

    @dg.asset(
        name=keys.records(name), group_name=GROUP, code_version=f"{source.adapter_version}+b{settings.buckets}",
        deps=[catalog], kinds={"python", "parquet"}, partitions_def=pdef,
        automation_condition=dg.AutomationCondition.eager(),
        backfill_policy=dg.BackfillPolicy.single_run() if pdef else None,
        description=f"{name}: decoded, harmonised records in staging Parquet; failures quarantined."
                    + (f" Partitioned into {settings.buckets} stable hash buckets of the native id."
                       if pdef else ""),
    )
    def records(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
        settings = shardsmith.settings()
        src = get_source(name, settings)
        layout = settings.layout
        parts = _parts(context, src)
        meta: dict = {}
        recomputed, reused, totals = [], [], {"records": 0, "quarantined": 0, "inputs": 0}
        # every stale part in one pass over the catalog and one worker pool; unchanged parts reused
        outcomes = steps.stage_records_parts(settings, src, parts, _progress(context, name))
        for part in parts:
            out = outcomes[part]
            counts = out.counts
            label = name if part == steps.WHOLE else f"{name}[{part}]"
            if len(parts) > 1:
                (recomputed if out.recomputed else reused).append(part)
                for k in totals:
                    totals[k] += counts[k]
                if out.recomputed:  # the part's contact sheet and label chart, drawn again
                    _pictures(layout, name, part, counts["label_distribution"], refresh=True)
                context.log.info(f"{label}: {counts['records']} records, {counts['quarantined']} quarantined"
                                 f"{'' if out.recomputed else ' (reused)'}")
                continue
            path = out.paths["records"]
            meta = {
                "inputs": counts["inputs"], "records": counts["records"],
                "items_published": counts["items_ok"], "quarantined": counts["quarantined"],
                "reconciles": counts["inputs"] == counts["items_ok"] + counts["quarantined"],
                "recomputed": out.recomputed,
                "quarantine_reasons": md_table(counts["reasons"], "reason", "rows"),
                "label_distribution": md_table(counts["label_distribution"], "label", "records present"),
                "extra_tables": dg.MetadataValue.json(counts["extra_tables"]),
                "preview": _preview(path),
                **_pictures(layout, name, part, counts["label_distribution"], refresh=out.recomputed),
                "staging_path": dg.MetadataValue.path(str(path)),
                "counts_json": dg.MetadataValue.json(counts),
            }
            return dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(out.version))
        # One run over a range of buckets (a single-run backfill): every bucket's materialisation
        # carries these totals and says which buckets were decoded and which reused.
        return dg.MaterializeResult(metadata={
            "partitions": len(parts), **totals,
            "recomputed_parts": dg.MetadataValue.json(recomputed),
            "reused_parts": dg.MetadataValue.json(reused),
            "recomputed": bool(recomputed),
        })

    @dg.asset_check(asset=records, name="records_gx_suite", blocking=True, partitions_def=pdef,
                    description="Great Expectations suites over records, findings and targets "
                                "(per partition; skipped when the partition's data passed unchanged).")
    def gx_check(context: dg.AssetCheckExecutionContext, shardsmith: ShardsmithResource) -> dg.AssetCheckResult:
        settings = shardsmith.settings()
        src = get_source(name, settings)
        return _check_result(steps.check_parts(settings, src, _parts(context, src)))

    @dg.asset_check(asset=records, name="records_integrity", blocking=True, partitions_def=pdef,
                    description="Counts reconcile (inputs = records + quarantined); no patient in two "
                                "splits; normal records carry no abnormality.")
    def integrity_check(context: dg.AssetCheckExecutionContext, shardsmith: ShardsmithResource) -> dg.AssetCheckResult:
        settings = shardsmith.settings()
        src = get_source(name, settings)
        return _check_result(steps.check_integrity_parts(settings, src, _parts(context, src)))

    return [catalog, records], [gx_check, integrity_check]


def _parts(context, source) -> list[str]:
    """The parts this run covers: one partition, a range (single-run backfill), or the whole source."""
    if not source.partitioned:
        return [steps.WHOLE]
    if context.has_partition_key_range:
        return list(context.partition_keys)
    return [context.partition_key]


def medical_assets(settings: Settings) -> tuple[list, list]:
    assets, checks = [], []
    for name in medical_source_names():
        a, c = build_source_assets(name, settings)
        assets += a
        checks += c
    return assets, checks
