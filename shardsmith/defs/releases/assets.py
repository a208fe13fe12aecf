"""Release assets: publish what the enabled sources staged, after their blocking checks."""


import json

import dagster as dg

from shardsmith.defs.resources import ShardsmithResource
from shardsmith.config import Settings
from shardsmith.publish.build import build_release, source_fingerprint
from shardsmith.publish.release import read_latest
from shardsmith.sources.registry import medical_source_names


def enabled_sources(settings: Settings, names: list[str], marker: str = "records.parquet") -> list[str]:
    """Sources with raw data present and ``marker`` staged, whole (``records.parquet``) or as
    partition files (``records-<part>.parquet``)."""
    stem = marker.removesuffix(".parquet")
    out = []
    for n in names:
        staging = settings.staging_dir(n)
        if settings.raw_dir(n).is_dir() and (any(staging.glob(f"**/*{marker}"))
                                            or any(staging.glob(f"**/*{stem}-*.parquet"))):
            out.append(n)
    return out


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


@dg.asset(
    name="medical_release", group_name="releases", kinds={"parquet", "webdataset"},
    deps=[dg.AssetKey(f"{n}_records") for n in medical_source_names()],
    automation_condition=dg.AutomationCondition.eager(),
    description="Versioned medical release: Parquet + WebDataset, manifest, card, validation results. "
                "Reuses LATEST when no source's staging changed.",
)
def medical_release(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
    settings = shardsmith.settings()
    sources = enabled_sources(settings, medical_source_names())
    fingerprints = {s: source_fingerprint(settings, s) for s in sorted(sources)}
    same = unchanged_release(settings, "medical", fingerprints)
    if same is not None:
        version = read_latest(settings.releases / "medical")
        context.log.info(f"staging unchanged since medical/{version}; release reused")
        return dg.MaterializeResult(
            metadata={
                "version": version, "new_version": False, "recomputed": False,
                "content_digest": same["content_digest"], "sources": dg.MetadataValue.json(sources),
                "row_counts": dg.MetadataValue.json(same["row_counts"]),
                "path": dg.MetadataValue.path(str(settings.releases / "medical" / version)),
            },
            data_version=dg.DataVersion(same["content_digest"]),
        )
    context.log.info(f"publishing medical release from {sources}")
    result = build_release(settings, "medical", sources)
    return dg.MaterializeResult(
        metadata={
            "version": result.version,
            "new_version": result.created,
            "recomputed": True,
            "content_digest": result.content_digest,
            "sources": dg.MetadataValue.json(sources),
            "row_counts": dg.MetadataValue.json(result.row_counts),
            "path": dg.MetadataValue.path(str(result.path)),
        },
        data_version=dg.DataVersion(result.content_digest),
    )
