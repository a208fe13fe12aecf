"""Driver for test_ops_celery: run in a fresh process so the definitions pick the executor from
SHARDSMITH_EXECUTOR=celery. The catalog first, then one run per bucket (what a backfill launches);
every step goes to the Celery workers.
Prints one JSON line per run."""

import json
import sys

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

REPO = ReconstructableRepository.for_module("shardsmith.definitions", "defs")


def run_partitions(source: str, keys: list[str]) -> list[dict]:
    out = []
    with dg.DagsterInstance.get() as instance:
        job = REPO.get_reconstructable_job("medical_partitions")
        for key in keys:
            res = dg.execute_job(job, instance, tags={"dagster/partition": key},
                                 asset_selection=[dg.AssetKey(f"{source}_records")])
            engines = [e.message or "" for e in res.all_events if e.event_type_value == "ENGINE_EVENT"]
            out.append({"run": key, "success": res.success, "celery": any("celery task" in m for m in engines)})
    return out


def main(source: str) -> int:
    from shardsmith import definitions

    assert definitions.defs.executor.name == "celery", definitions.defs.executor
    with dg.DagsterInstance.get() as instance:
        res = dg.execute_job(REPO.get_reconstructable_job("medical_build"), instance,
                             asset_selection=[dg.AssetKey(f"{source}_catalog")])
    print(json.dumps({"run": "catalog", "success": res.success}), flush=True)
    ok = res.success
    from shardsmith.config import settings_from_env
    from shardsmith.defs.medical.assets import buckets_def

    for out in run_partitions(source, buckets_def(settings_from_env()).get_partition_keys()):
        print(json.dumps(out), flush=True)
        ok &= out["success"] and out["celery"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
