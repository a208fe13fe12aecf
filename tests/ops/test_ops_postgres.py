"""A build against real PostgreSQL instance storage (deploy/dagster-postgres.yaml), started here."""

import os
import shutil

import pytest
from ops_services import REPO, demo_home, need_module, postgres

pytestmark = pytest.mark.services


def test_build_records_runs_and_events_in_postgres(tmp_path, monkeypatch):
    need_module("dagster_postgres")
    import dagster as dg
    import psycopg2

    from shardsmith.defs.run import run_build

    home = demo_home(tmp_path)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster-postgres.yaml", dagster_home / "dagster.yaml")
    with postgres() as pg:
        for k, v in {"HOST": pg["host"], "PORT": str(pg["port"]), "USER": pg["user"], "PASSWORD": "unused",
                     "DB": pg["db"]}.items():
            monkeypatch.setenv(f"SHARDSMITH_PG_{k}", v)
        monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
        summary = run_build(home, echo=False)
        assert summary["success"], summary
        with dg.DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            runs = instance.get_runs()
            assert len(runs) == summary["runs"] and all(r.is_success for r in runs)
            key = dg.AssetKey("vindr_cxr_records")
            assert instance.get_materialized_partitions(key) == {f"b{i:02d}" for i in range(8)}
        with psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], dbname=pg["db"]) as conn:
            cur = conn.cursor()
            cur.execute("select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'")
            assert cur.fetchone()[0] == 1 + 8 + 1  # catalog, 8 record partitions, release
        # nothing changed: the second build reuses every step, recorded in the same database
        again = run_build(home, echo=False)
        assert again["success"] and again["recomputed"] == [], again
    assert not os.path.exists(dagster_home / "history" / "runs.db")  # nothing went to SQLite
