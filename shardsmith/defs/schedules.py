"""Schedules and declarative automation for the medical graph."""

from __future__ import annotations

import dagster as dg

NIGHTLY_CRON = "0 3 * * *"


def nightly_schedule(catalog_job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    """03:00 every night: refresh every catalog; eager automation takes partitions and releases on.

    A catalog whose raw tree is unchanged reuses itself, and so do the record partitions and the
    release after it, so a quiet night costs a directory walk per source.
    """
    return dg.ScheduleDefinition(
        name="nightly_medical_release", cron_schedule=NIGHTLY_CRON, job=catalog_job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Nightly refresh of every catalog; with medical_automation on, the record "
                    "partitions and the release follow.",
    )


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates the assets' automation conditions (records and release are ``eager``)."""
    return dg.AutomationConditionSensorDefinition(
        "medical_automation", target=dg.AssetSelection.groups("medical", "releases"),
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Declarative automation: rebuild record partitions after their catalog, and the "
                    "release after its sources' records.",
    )
