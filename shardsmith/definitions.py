"""The Definitions object ``dagster dev`` loads (``[tool.dagster] module_name``).

Where steps run is configuration, not code: ``SHARDSMITH_EXECUTOR`` picks the executor
(``multiprocess`` by default, ``in_process``, ``celery`` or ``k8s``); the broker for Celery comes
from ``SHARDSMITH_CELERY_BROKER`` / ``SHARDSMITH_CELERY_BACKEND``. Instance storage (SQLite or
PostgreSQL) is the instance's ``dagster.yaml`` (see ``deploy/``).
"""

from __future__ import annotations

import os

import dagster as dg

from shardsmith.defs.medical.assets import BUCKETS_DEF, PARTITIONED, medical_assets
from shardsmith.defs.releases.assets import medical_release
from shardsmith.defs.resources import ShardsmithResource
from shardsmith.defs.schedules import automation_sensor, nightly_schedule
from shardsmith.defs.sensors import build_sensors
from shardsmith.sources.registry import medical_source_names

EXECUTOR_ENV = "SHARDSMITH_EXECUTOR"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def graph_parts() -> tuple[list, list]:
    """Every asset and asset check, unbound (the CLI materialises a selection of them)."""
    m_assets, m_checks = medical_assets()
    assets = [*m_assets, medical_release]
    checks = [*m_checks]
    try:
        from shardsmith.defs.werewolf.assets import werewolf_assets
    except ImportError:
        pass
    else:
        w_assets, w_checks = werewolf_assets()
        assets += w_assets
        checks += w_checks
    return assets, checks


def select_executor(kind: str | None = None) -> dg.ExecutorDefinition:
    """The executor named by ``SHARDSMITH_EXECUTOR``; integration libraries load only when chosen."""
    kind = (kind or os.environ.get(EXECUTOR_ENV) or "multiprocess").lower()
    if kind == "multiprocess":
        return dg.multiprocess_executor
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "celery":
        from dagster_celery import celery_executor

        broker = os.environ.get("SHARDSMITH_CELERY_BROKER", DEFAULT_BROKER)
        return celery_executor.configured(
            {"broker": broker, "backend": os.environ.get("SHARDSMITH_CELERY_BACKEND", broker)},
            name="celery",
        )
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor  # type: ignore[import-not-found]

        return k8s_job_executor
    raise ValueError(f"{EXECUTOR_ENV}={kind!r}: expected multiprocess, in_process, celery or k8s")


def medical_jobs() -> dict[str, dg.UnresolvedAssetJobDefinition]:
    """Catalogs (+ whole sources), the partitioned record buckets, and the release, as three jobs."""
    partitioned = [dg.AssetKey(f"{n}_records") for n in medical_source_names() if n in PARTITIONED]
    whole = [dg.AssetKey(f"{n}_records") for n in medical_source_names() if n not in PARTITIONED]
    catalogs = [dg.AssetKey(f"{n}_catalog") for n in medical_source_names()]
    return {
        "medical_build": dg.define_asset_job(
            "medical_build", selection=dg.AssetSelection.assets(*catalogs, *whole),
            description="Every catalog, and the records of the unpartitioned (volumetric) sources.",
        ),
        "medical_partitions": dg.define_asset_job(
            "medical_partitions", selection=dg.AssetSelection.assets(*partitioned), partitions_def=BUCKETS_DEF,
            description="Record buckets of the large 2D sources; backfill it to spread over workers.",
        ),
        "medical_publish": dg.define_asset_job(
            "medical_publish", selection=dg.AssetSelection.assets("medical_release"),
            description="Publish the medical release from what is staged.",
        ),
    }


def build_definitions() -> dg.Definitions:
    assets, checks = graph_parts()
    jobs = medical_jobs()
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=list(jobs.values()),
        schedules=[nightly_schedule(jobs["medical_build"])],
        sensors=[*build_sensors(assets), automation_sensor()],
        resources={"shardsmith": ShardsmithResource()},
        executor=select_executor(),
    )


defs = build_definitions()
