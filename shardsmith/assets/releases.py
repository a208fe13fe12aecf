"""Release assets: publish what the enabled sources staged, after their blocking checks."""


import dagster as dg

from shardsmith.assets.resources import ShardsmithResource
from shardsmith.publish.build import build_release
from shardsmith.sources.registry import medical_source_names


def enabled_sources(settings, names: list[str], marker: str = "records.parquet") -> list[str]:
    """Sources with raw data present and something staged."""
    return [n for n in names if settings.raw_dir(n).is_dir() and any(settings.staging_dir(n).glob(f"**/*{marker}"))]


@dg.asset(
    name="medical_release", group_name="releases", kinds={"parquet", "webdataset"},
    deps=[dg.AssetKey(f"{n}_records") for n in medical_source_names()],
    description="Versioned medical release: Parquet + WebDataset, manifest, card, validation results.",
)
def medical_release(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
    settings = shardsmith.settings()
    sources = enabled_sources(settings, medical_source_names())
    context.log.info(f"publishing medical release from {sources}")
    result = build_release(settings, "medical", sources)
    return dg.MaterializeResult(
        metadata={
            "version": result.version,
            "new_version": result.created,
            "content_digest": result.content_digest,
            "sources": dg.MetadataValue.json(sources),
            "row_counts": dg.MetadataValue.json(result.row_counts),
            "path": dg.MetadataValue.path(str(result.path)),
        },
        data_version=dg.DataVersion(result.content_digest),
    )
