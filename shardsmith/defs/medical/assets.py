"""Per medical source: ``<source>_catalog`` -> ``<source>_records`` -> blocking checks.

Large sources are partitioned by a stable hash bucket of the native id, so a backfill spreads
over workers and a change re-runs only the buckets it touches. Every materialisation carries a
data version; when the inputs of a step have the version it last built, the step reuses what is
staged instead of decoding again (``staging/<source>/versions.json`` remembers the versions).
"""


import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

from shardsmith.defs.resources import ShardsmithResource
from shardsmith.config import Settings
from shardsmith.staging import fingerprint
from shardsmith.schemas.quarantine import QUARANTINE_SCHEMA
from shardsmith.staging.runner import build_records, read_catalog, write_catalog, write_parquet_atomic
from shardsmith.sources.registry import get_source, medical_source_names

GROUP = "medical"
BUCKETS = int(os.environ.get("SHARDSMITH_BUCKETS", "8"))
BUCKET_KEYS = [f"b{i:02d}" for i in range(BUCKETS)]
BUCKETS_DEF = dg.StaticPartitionsDefinition(BUCKET_KEYS)
# 2D sources with tens of thousands of images; volumetric ones stay whole (few, large items).
PARTITIONED = frozenset({"vindr_cxr", "nih_cxr14", "rsna_pneumonia", "siim_acr", "chestx_det", "chexpert"})
VERSIONS_FILE = "versions.json"

progress_log = logging.getLogger("shardsmith.progress")


def bucket_of(native_id: str, buckets: int = BUCKETS) -> str:
    """Stable bucket of a native id (sha256, so it never moves between runs or machines)."""
    n = int.from_bytes(hashlib.sha256(native_id.encode()).digest()[:8], "big") % buckets
    return f"b{n:02d}"


def is_partitioned(name: str) -> bool:
    return name in PARTITIONED


# --- versions.json: what each step last built, so an unchanged input skips the work ---------------


def _versions_path(settings: Settings, name: str) -> Path:
    return settings.staging_dir(name) / VERSIONS_FILE


def read_versions(settings: Settings, name: str) -> dict:
    path = _versions_path(settings, name)
    return json.loads(path.read_text()) if path.is_file() else {}


@contextmanager
def _locked_versions(settings: Settings, name: str):
    """Read-modify-write of versions.json under a file lock (partitions may run in parallel)."""
    path = _versions_path(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        data = read_versions(settings, name)
        yield data
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, path)


def _key_tag() -> str:
    """Pseudonyms depend on the key: a keyed tag (not the key) makes a key change a new version."""
    from shardsmith.pseudonym import pseudonym_key

    try:
        key = pseudonym_key()
    except Exception:  # noqa: BLE001 - no key: the build step itself reports that
        return "nokey"
    return hmac.new(key, b"shardsmith-data-version", hashlib.sha256).hexdigest()[:16]


def _suite_tag() -> str:
    from shardsmith.validation.suites import record_suites

    return hashlib.sha256(repr(record_suites()).encode()).hexdigest()[:16]


def records_version(settings: Settings, adapter_version: str, entries: list, catalog_quarantine: list[dict]) -> str:
    """Digest of what a records partition is built from: its catalog rows, the adapter, image options."""
    h = hashlib.sha256()
    for part in (adapter_version, str(settings.image.max_side), str(settings.image.bit_depth), _key_tag()):
        h.update(part.encode() + b"\0")
    for e in sorted(entries, key=lambda e: (e.item.native_id, e.raw_path)):
        for part in (e.item.native_id, e.raw_path, e.raw_sha256 or "", e.item.to_json()):
            h.update(part.encode() + b"\0")
    h.update(json.dumps(catalog_quarantine, sort_keys=True, default=str).encode())
    return h.hexdigest()


def staged_paths(settings: Settings, name: str, part: str) -> dict[str, Path]:
    """The files one records step writes (``part`` is ``records`` for an unpartitioned source)."""
    staging, qdir = settings.staging_dir(name), settings.quarantine_dir(name)
    if part == "records":
        return {"records": staging / "records.parquet", "counts": staging / "counts.json",
                "quarantine": qdir / "quarantine.parquet"}
    return {"records": staging / f"records-{part}.parquet", "counts": staging / f"counts-{part}.json",
            "quarantine": qdir / f"quarantine-{part}.parquet"}


def remove_whole_source_staging(settings: Settings, name: str, extra_tables: list[str]) -> list[str]:
    """A partitioned source must not also have whole-source staging, or a release counts it twice."""
    staging = settings.staging_dir(name)
    removed = []
    for p in [staging / "records.parquet", staging / "counts.json", *(staging / f"{t}.parquet" for t in extra_tables)]:
        if p.exists():
            p.unlink()
            removed.append(p.name)
    return removed


# --- metadata ---------------------------------------------------------------------------------------


def _md_table(rows: dict, key: str, value: str) -> dg.MetadataValue:
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


def _pictures(records: Path, distribution: dict[str, int], stem: str, refresh: bool) -> dict:
    """Contact sheet and label chart next to the staged records; written again only when rebuilt."""
    from shardsmith.publish.preview import contact_sheet, label_bars_markdown, label_chart

    sheet_path = records.with_name(f"preview-{stem}.png")
    chart_path = records.with_name(f"labels-{stem}.png")
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
        progress_log.info(msg)

    return progress


# --- the assets -------------------------------------------------------------------------------------


def build_source_assets(name: str) -> list:
    source = get_source(name)
    partitioned = is_partitioned(name)
    pdef = BUCKETS_DEF if partitioned else None
    extra_names = list(source.extra_tables())

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
        staging = settings.staging_dir(name)
        previous = read_versions(settings, name)
        state = fingerprint.scan(root, previous.get("raw"))
        version = fingerprint.digest(state, source.adapter_version, "catalog")
        cat_file = staging / "catalog.parquet"
        removed = remove_whole_source_staging(settings, name, extra_names) if partitioned else []
        if previous.get("catalog") == version and cat_file.is_file():
            meta = json.loads((staging / "catalog.json").read_text())
            context.log.info(f"{name}: raw tree unchanged ({len(state)} files); catalog reused")
            return dg.MaterializeResult(
                metadata={"items": meta["entries"], "quarantined": meta["quarantined"], "recomputed": False,
                          "raw_files": len(state), "staging_path": dg.MetadataValue.path(str(cat_file))},
                data_version=dg.DataVersion(version),
            )
        cat = source.catalog(root, known_sha256={rel: v[2] for rel, v in state.items()})
        out = write_catalog(settings, source, cat)
        if partitioned:
            # Partitions see only their bucket's items; items rejected while cataloguing (no image,
            # bad label row) are the source's, so they go to the source-level quarantine file.
            write_parquet_atomic(pa.Table.from_pylist(cat.quarantine, schema=QUARANTINE_SCHEMA),
                                 settings.quarantine_dir(name) / "quarantine.parquet")
        with _locked_versions(settings, name) as v:
            v["raw"], v["catalog"] = state, version
        context.log.info(f"{name}: {len(cat.entries)} items with images, {len(cat.quarantine)} quarantined")
        return dg.MaterializeResult(
            metadata={
                "items": len(cat.entries),
                "images_on_disk": cat.images_on_disk,
                "quarantined": len(cat.quarantine),
                "recomputed": True,
                "raw_files": len(state),
                "removed_stale": dg.MetadataValue.json(removed),
                "label_files": dg.MetadataValue.json(cat.label_files),
                "staging_path": dg.MetadataValue.path(str(out)),
            },
            data_version=dg.DataVersion(version),
        )

    def _inputs(settings: Settings, part: str) -> tuple[list, list[dict]]:
        entries, cat_q = read_catalog(settings, name)
        if part == "records":
            return entries, cat_q
        return [e for e in entries if bucket_of(e.item.native_id) == part], []

    @dg.asset(
        name=f"{name}_records", group_name=GROUP, code_version=f"{source.adapter_version}+b{BUCKETS}",
        deps=[catalog], kinds={"python", "parquet"}, partitions_def=pdef,
        automation_condition=dg.AutomationCondition.eager(),
        description=f"{name}: decoded, harmonised records in staging Parquet; failures quarantined."
                    + (f" Partitioned into {BUCKETS} stable hash buckets of the native id." if partitioned else ""),
    )
    def records(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
        settings = shardsmith.settings()
        part = context.partition_key if partitioned else "records"
        label = f"{name}[{part}]" if partitioned else name
        if partitioned:
            remove_whole_source_staging(settings, name, extra_names)
        entries, cat_q = _inputs(settings, part)
        version = records_version(settings, source.adapter_version, entries, cat_q)
        paths = staged_paths(settings, name, part)
        have = read_versions(settings, name).get("records", {}).get(part)
        reuse = have == version and all(p.is_file() for p in paths.values())
        if reuse:
            context.log.info(f"{label}: inputs unchanged (version {version[:12]}); staged records reused")
            progress_log.info(f"{label}: unchanged, {len(entries)} items reused")
            counts = json.loads(paths["counts"].read_text())
        else:
            counts = asdict(build_records(settings, source, entries, cat_q, _progress(context, label), part=part))
            with _locked_versions(settings, name) as v:
                v.setdefault("records", {})[part] = version
        path = paths["records"]
        return dg.MaterializeResult(
            metadata={
                "inputs": counts["inputs"],
                "records": counts["records"],
                "items_published": counts["items_ok"],
                "quarantined": counts["quarantined"],
                "reconciles": counts["inputs"] == counts["items_ok"] + counts["quarantined"],
                "recomputed": not reuse,
                "quarantine_reasons": _md_table(counts["reasons"], "reason", "rows"),
                "label_distribution": _md_table(counts["label_distribution"], "label", "records present"),
                "extra_tables": dg.MetadataValue.json(counts["extra_tables"]),
                "preview": _preview(path),
                **_pictures(path, counts["label_distribution"], part, refresh=not reuse),
                "staging_path": dg.MetadataValue.path(str(path)),
                "counts_json": dg.MetadataValue.json(counts),
            },
            data_version=dg.DataVersion(version),
        )

    @dg.asset_check(asset=records, name="records_gx_suite", blocking=True, partitions_def=pdef,
                    description="Great Expectations suites over records, findings and targets "
                                "(per partition; skipped when the partition's data passed unchanged).")
    def gx_check(context: dg.AssetCheckExecutionContext, shardsmith: ShardsmithResource) -> dg.AssetCheckResult:
        settings = shardsmith.settings()
        part = context.partition_key if partitioned else "records"
        path = staged_paths(settings, name, part)["records"]
        if pq.read_metadata(path).num_rows == 0:
            return dg.AssetCheckResult(passed=True, metadata={"rows": 0, "note": "empty partition"})
        versions = read_versions(settings, name)
        stamp = f"{versions.get('records', {}).get(part)}+{_suite_tag()}"
        if versions.get("checks", {}).get(part, {}).get("gx") == stamp:
            return dg.AssetCheckResult(passed=True, metadata={
                "note": "data and suites unchanged since this check last passed", "version": stamp[:12]})

        from shardsmith.validation.frames import read_tables, record_frames
        from shardsmith.validation.gx_runner import run_suites
        from shardsmith.validation.suites import record_suites

        cols = [c for c in pq.read_schema(path).names if c not in ("image",)]
        report = run_suites(f"{name}_records", record_frames(read_tables([path], cols)), record_suites())
        if report.success:
            with _locked_versions(settings, name) as v:
                v.setdefault("checks", {}).setdefault(part, {})["gx"] = stamp
        return dg.AssetCheckResult(
            passed=report.success,
            metadata={"suites": dg.MetadataValue.json([s.__dict__ for s in report.suites])},
        )

    @dg.asset_check(asset=records, name="records_integrity", blocking=True, partitions_def=pdef,
                    description="Counts reconcile (inputs = records + quarantined); no patient in two "
                                "splits; normal records carry no abnormality.")
    def integrity_check(context: dg.AssetCheckExecutionContext, shardsmith: ShardsmithResource) -> dg.AssetCheckResult:
        from shardsmith.validation.frames import read_tables, record_frames
        from shardsmith.validation.integrity import reconcile, record_integrity

        settings = shardsmith.settings()
        part = context.partition_key if partitioned else "records"
        paths = staged_paths(settings, name, part)
        staging = settings.staging_dir(name)
        ids = pq.read_table(staging / "catalog.parquet", columns=["native_id"]).column("native_id").to_pylist()
        if partitioned:
            expected = sum(1 for i in ids if bucket_of(i) == part)
        else:
            expected = len(ids) + pq.read_metadata(staging / "catalog_quarantine.parquet").num_rows
        counts = json.loads(paths["counts"].read_text())
        quarantined = pq.read_metadata(paths["quarantine"]).num_rows
        table = read_tables([paths["records"]], ["record_id", "source", "native_id", "patient_id", "split",
                                                 "height", "width", "abnormal", "findings", "targets"])
        outcomes = [reconcile(expected, counts["items_ok"], quarantined)]
        if table.num_rows != counts["records"]:
            outcomes.append(reconcile(counts["records"], table.num_rows, 0))
        if table.num_rows:
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
