"""Per medical source: ``<source>_catalog`` -> ``<source>_records`` -> blocking checks."""

import json
from dataclasses import asdict

import dagster as dg
import pyarrow.parquet as pq

from shardsmith.assets.resources import ShardsmithResource
from shardsmith.sources.pipeline import build_records, read_catalog, write_catalog
from shardsmith.sources.registry import get_source, medical_source_names

GROUP = "medical"


def _md_table(rows: dict, key: str, value: str) -> dg.MetadataValue:
    lines = [f"| {key} | {value} |", "| --- | ---: |"] + [f"| {k} | {v} |" for k, v in rows.items()]
    return dg.MetadataValue.md("\n".join(lines) if rows else "_none_")


def _preview(path, n: int = 8) -> dg.MetadataValue:
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


def build_source_assets(name: str) -> list:
    source = get_source(name)

    @dg.asset(
        name=f"{name}_catalog", group_name=GROUP, code_version=source.adapter_version,
        description=f"{name}: label files parsed and joined with images on disk; checksums, no pixels.",
        kinds={"python", "parquet"},
    )
    def catalog(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
        settings = shardsmith.settings()
        root = settings.raw_dir(name)
        if not root.is_dir():
            raise dg.Failure(f"{root} does not exist: put {name} there in its native layout")
        cat = source.catalog(root)
        out = write_catalog(settings, source, cat)
        context.log.info(f"{name}: {len(cat.entries)} items with images, {len(cat.quarantine)} quarantined")
        return dg.MaterializeResult(metadata={
            "items": len(cat.entries),
            "images_on_disk": cat.images_on_disk,
            "quarantined": len(cat.quarantine),
            "label_files": dg.MetadataValue.json(cat.label_files),
            "staging_path": dg.MetadataValue.path(str(out)),
        })

    @dg.asset(
        name=f"{name}_records", group_name=GROUP, code_version=source.adapter_version,
        deps=[catalog], kinds={"python", "parquet"},
        description=f"{name}: decoded, harmonised records in staging Parquet; failures quarantined.",
    )
    def records(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
        settings = shardsmith.settings()
        entries, cat_q = read_catalog(settings, name)

        def progress(done: int, total: int, secs: float) -> None:
            rate = done / secs if secs else 0.0
            context.log.info(f"{name}: {done}/{total} items decoded ({rate:.1f}/s)")

        counts = build_records(settings, source, entries, cat_q, progress)
        path = settings.staging_dir(name) / "records.parquet"
        return dg.MaterializeResult(metadata={
            "inputs": counts.inputs,
            "records": counts.records,
            "items_published": counts.items_ok,
            "quarantined": counts.quarantined,
            "reconciles": counts.reconciles,
            "quarantine_reasons": _md_table(counts.reasons, "reason", "rows"),
            "label_distribution": _md_table(counts.label_distribution, "label", "records present"),
            "extra_tables": dg.MetadataValue.json(counts.extra_tables),
            "preview": _preview(path),
            "staging_path": dg.MetadataValue.path(str(path)),
            "counts_json": dg.MetadataValue.json(json.loads(json.dumps(asdict(counts)))),
        })

    @dg.asset_check(asset=records, name="records_gx_suite", blocking=True,
                    description="Great Expectations suites over records, findings and targets.")
    def gx_check(shardsmith: ShardsmithResource) -> dg.AssetCheckResult:
        from shardsmith.validation.frames import read_tables, record_frames
        from shardsmith.validation.gx_runner import run_suites
        from shardsmith.validation.suites import record_suites

        settings = shardsmith.settings()
        path = settings.staging_dir(name) / "records.parquet"
        cols = [c for c in pq.read_schema(path).names if c not in ("image",)]
        report = run_suites(f"{name}_records", record_frames(read_tables([path], cols)), record_suites())
        return dg.AssetCheckResult(
            passed=report.success,
            metadata={"suites": dg.MetadataValue.json([s.__dict__ for s in report.suites])},
        )

    @dg.asset_check(asset=records, name="records_integrity", blocking=True,
                    description="Counts reconcile (inputs = records + quarantined); no patient in two "
                                "splits; normal records carry no abnormality.")
    def integrity_check(shardsmith: ShardsmithResource) -> dg.AssetCheckResult:
        from shardsmith.validation.frames import read_tables, record_frames
        from shardsmith.validation.integrity import reconcile, record_integrity

        settings = shardsmith.settings()
        staging = settings.staging_dir(name)
        entries, cat_q = read_catalog(settings, name)
        counts = json.loads((staging / "counts.json").read_text())
        quarantined = pq.read_metadata(settings.quarantine_dir(name) / "quarantine.parquet").num_rows
        records_path = staging / "records.parquet"
        table = read_tables([records_path], ["record_id", "source", "native_id", "patient_id", "split",
                                             "height", "width", "abnormal", "findings", "targets"])
        outcomes = [reconcile(len(entries) + len(cat_q), counts["items_ok"], quarantined)]
        if table.num_rows != counts["records"]:
            outcomes.append(reconcile(counts["records"], table.num_rows, 0))
        outcomes += record_integrity(record_frames(table))
        return dg.AssetCheckResult(
            passed=all(o.passed for o in outcomes),
            metadata={o.name: dg.MetadataValue.text(f"{'ok' if o.passed else 'FAILED'}: {o.detail}")
                      for o in outcomes},
        )

    return [catalog, records, gx_check, integrity_check]


def medical_assets() -> tuple[list, list]:
    assets, checks = [], []
    for name in medical_source_names():
        a_catalog, a_records, c1, c2 = build_source_assets(name)
        assets += [a_catalog, a_records]
        checks += [c1, c2]
    return assets, checks
