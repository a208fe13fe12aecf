"""The Definitions object ``dagster dev`` loads (``[tool.dagster] module_name``).

The graph is the merge of one :class:`dagster.Definitions` per domain (``defs/medical``,
``defs/werewolf``, ``defs/releases``) plus automation, all built from one :class:`Settings`
(read from the environment once, here). Where steps run is configuration, not code:
``SHARDSMITH_EXECUTOR`` picks the executor (``multiprocess`` by default, ``in_process``,
``celery`` or ``k8s``); instance storage (SQLite or PostgreSQL) is the instance's ``dagster.yaml``
(see ``deploy/``).
"""

from __future__ import annotations

import dagster as dg

from shardsmith.config import Settings, settings_from_env
from shardsmith.defs.executors import select_executor
from shardsmith.defs.medical.assets import buckets_def, medical_assets
from shardsmith.defs.releases.assets import release_assets
from shardsmith.defs.resources import ShardsmithResource
from shardsmith.defs.schedules import automation_sensor, nightly_schedule
from shardsmith.defs.sensors import build_sensors
from shardsmith.pipeline import keys
from shardsmith.sources.registry import game_source_names, medical_source_names


def graph_parts(settings: Settings | None = None) -> tuple[list, list]:
    """Every asset and asset check, unbound (the CLI materialises a selection of them)."""
    settings = settings or settings_from_env()
    m_assets, m_checks = medical_assets(settings)
    deps = {"medical": [dg.AssetKey(keys.records(n)) for n in medical_source_names()], "werewolf": []}
    assets, checks = [*m_assets], [*m_checks]
    if game_source_names():
        from shardsmith.defs.werewolf.assets import werewolf_assets

        w_assets, w_checks = werewolf_assets()
        assets += w_assets
        checks += w_checks
        deps["werewolf"] = [dg.AssetKey(keys.UTTERANCES)]
    assets += release_assets(settings, deps)
    return assets, checks


def medical_jobs(settings: Settings) -> dict[str, dg.UnresolvedAssetJobDefinition]:
    """Catalogs (+ whole sources), the partitioned record buckets, and the release, as three jobs."""
    from shardsmith.sources.registry import source_class

    names = medical_source_names()
    partitioned = [dg.AssetKey(keys.records(n)) for n in names if source_class(n).partitioned]
    whole = [dg.AssetKey(keys.records(n)) for n in names if not source_class(n).partitioned]
    catalogs = [dg.AssetKey(keys.catalog(n)) for n in names]
    return {
        "medical_build": dg.define_asset_job(
            "medical_build", selection=dg.AssetSelection.assets(*catalogs, *whole),
            description="Every catalog, and the records of the unpartitioned (volumetric) sources.",
        ),
        "medical_partitions": dg.define_asset_job(
            "medical_partitions", selection=dg.AssetSelection.assets(*partitioned),
            partitions_def=buckets_def(settings),
            description="Record buckets of the large 2D sources; backfill it to spread over workers.",
        ),
        "medical_publish": dg.define_asset_job(
            "medical_publish", selection=dg.AssetSelection.assets(keys.release(keys.MEDICAL)),
            description="Publish the medical release from what is staged.",
        ),
    }


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or settings_from_env()
    assets, checks = graph_parts(settings)
    jobs = medical_jobs(settings)
    games_def = None
    if game_source_names():
        from shardsmith.defs.werewolf.assets import WEREWOLF_GAMES

        games_def = WEREWOLF_GAMES
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=list(jobs.values()),
        schedules=[nightly_schedule(jobs["medical_build"])],
        sensors=[*build_sensors(assets, games_def), automation_sensor()],
        resources={"shardsmith": ShardsmithResource()},
        executor=select_executor(settings),
    )


defs = build_definitions()
