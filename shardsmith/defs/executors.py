"""Where steps run: an executor picked by ``Settings.executor`` (configuration, not code)."""

from __future__ import annotations

import dagster as dg

from shardsmith.config import Settings

EXECUTORS = ("multiprocess", "in_process", "celery", "k8s")


def select_executor(settings: Settings, kind: str | None = None) -> dg.ExecutorDefinition:
    """The executor named by ``kind`` or ``settings.executor``; integration libraries load only when chosen."""
    kind = (kind or settings.executor or "multiprocess").lower()
    if kind == "multiprocess":
        return dg.multiprocess_executor
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "celery":
        from dagster_celery import celery_executor

        broker = settings.celery_broker
        return celery_executor.configured(
            {"broker": broker, "backend": settings.celery_backend or broker}, name="celery",
        )
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor  # type: ignore[import-not-found]

        return k8s_job_executor
    raise ValueError(f"SHARDSMITH_EXECUTOR={kind!r}: expected one of {', '.join(EXECUTORS)}")
