"""One release asset per collection: publish what its enabled sources staged, after their
blocking checks. The step itself (partial-release policy, reuse of LATEST, identity, views,
validation, publish) is ``pipeline.releases.release_step``."""


import dagster as dg

from shardsmith.config import Settings
from shardsmith.defs.resources import ShardsmithResource
from shardsmith.pipeline import keys
from shardsmith.pipeline.releases import PartialReleaseRefusedError, release_step


def release_asset(collection: str, deps: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        name=keys.release(collection), group_name="releases", kinds={"parquet", "webdataset"}, deps=deps,
        automation_condition=dg.AutomationCondition.eager(),
        description=f"Versioned {collection} release: Parquet + WebDataset, manifest, card, validation "
                    "results. Reuses LATEST when no source's staging changed.",
    )
    def _release(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
        try:
            out = release_step(shardsmith.settings(), collection, say=context.log.info)
        except PartialReleaseRefusedError as e:
            raise dg.Failure(str(e)) from e
        if out.left_out:
            context.log.warning(f"published {collection} without {sorted(out.left_out)} (allow_partial)")
        return dg.MaterializeResult(
            metadata={
                "version": out.version, "new_version": out.created, "recomputed": out.recomputed,
                "content_digest": out.content_digest, "sources": dg.MetadataValue.json(out.sources),
                "row_counts": dg.MetadataValue.json(out.row_counts),
                "path": dg.MetadataValue.path(str(out.path)),
            },
            data_version=dg.DataVersion(out.content_digest),
        )

    return _release


def release_assets(settings: Settings, deps_by_collection: dict[str, list[dg.AssetKey]]) -> list:
    """The release of every collection that has at least one registered source."""
    return [release_asset(c, deps) for c, deps in sorted(deps_by_collection.items()) if deps]
