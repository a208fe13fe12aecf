"""One release asset per collection: publish what its enabled sources staged, after their
blocking checks. Reuses LATEST when no source's staging changed."""


import dagster as dg

from shardsmith.config import Settings
from shardsmith.defs.resources import ShardsmithResource
from shardsmith.publish.build import (
    PartialReleaseRefusedError,
    build_release,
    check_partial,
    enabled_sources,
    source_fingerprint,
    unchanged_release,
)
from shardsmith.publish.release import read_latest


def release_asset(collection: str, deps: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{collection}_release", group_name="releases", kinds={"parquet", "webdataset"}, deps=deps,
        automation_condition=dg.AutomationCondition.eager(),
        description=f"Versioned {collection} release: Parquet + WebDataset, manifest, card, validation "
                    "results. Reuses LATEST when no source's staging changed.",
    )
    def _release(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
        settings = shardsmith.settings()
        try:
            left_out = check_partial(settings, collection)
        except PartialReleaseRefusedError as e:
            raise dg.Failure(str(e)) from e
        if left_out:
            context.log.warning(f"publishing {collection} without {sorted(left_out)} (allow_partial)")
        sources = enabled_sources(settings, collection)
        fingerprints = {s: source_fingerprint(settings, s) for s in sorted(sources)}
        same = unchanged_release(settings, collection, fingerprints)
        if same is not None:
            version = read_latest(settings.releases / collection)
            context.log.info(f"staging unchanged since {collection}/{version}; release reused")
            return dg.MaterializeResult(
                metadata={
                    "version": version, "new_version": False, "recomputed": False,
                    "content_digest": same["content_digest"], "sources": dg.MetadataValue.json(sources),
                    "row_counts": dg.MetadataValue.json(same["row_counts"]),
                    "path": dg.MetadataValue.path(str(settings.releases / collection / version)),
                },
                data_version=dg.DataVersion(same["content_digest"]),
            )
        context.log.info(f"publishing {collection} release from {sources}")
        result = build_release(settings, collection, sources)
        return dg.MaterializeResult(
            metadata={
                "version": result.version, "new_version": result.created, "recomputed": True,
                "content_digest": result.content_digest, "sources": dg.MetadataValue.json(sources),
                "row_counts": dg.MetadataValue.json(result.row_counts),
                "path": dg.MetadataValue.path(str(result.path)),
            },
            data_version=dg.DataVersion(result.content_digest),
        )

    return _release


def release_assets(settings: Settings, deps_by_collection: dict[str, list[dg.AssetKey]]) -> list:
    """The release of every collection that has at least one registered source."""
    return [release_asset(c, deps) for c, deps in sorted(deps_by_collection.items()) if deps]
