"""The Definitions object ``dagster dev`` loads (``[tool.dagster] module_name``)."""

from __future__ import annotations

import dagster as dg

from shardsmith.assets.medical import medical_assets
from shardsmith.assets.releases import medical_release
from shardsmith.assets.resources import ShardsmithResource


def graph_parts() -> tuple[list, list]:
    """Every asset and asset check, unbound (the CLI materialises a selection of them)."""
    m_assets, m_checks = medical_assets()
    assets = [*m_assets, medical_release]
    checks = [*m_checks]
    try:
        from shardsmith.assets.werewolf import werewolf_assets
    except ImportError:
        pass
    else:
        w_assets, w_checks = werewolf_assets()
        assets += w_assets
        checks += w_checks
    return assets, checks


def build_definitions() -> dg.Definitions:
    assets, checks = graph_parts()
    medical_job = dg.define_asset_job(
        "medical_build", selection=dg.AssetSelection.groups("medical", "releases"),
        description="Catalog, records, checks and the medical release for every enabled source.",
    )
    nightly = dg.ScheduleDefinition(
        name="nightly_medical_release", cron_schedule="0 3 * * *", job=medical_job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[medical_job],
        schedules=[nightly],
        resources={"shardsmith": ShardsmithResource()},
        executor=dg.multiprocess_executor,
    )


defs = build_definitions()
