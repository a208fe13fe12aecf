"""Partitions, data versions and sensors without any service: the CLI build over hash buckets,
a rebuild that reuses everything, a one-file change that re-runs only its bucket, the raw-change
sensor's fingerprints, executor selection and the object-store helper."""

import json
import os

import dagster as dg
import pyarrow.parquet as pq
import pytest
from ops_services import demo_home, need_module

from shardsmith.defs.resources import ShardsmithResource
from shardsmith.defs.run import run_build
from shardsmith.demo import cxr_core
from shardsmith.staging.versions import bucket_keys
from shardsmith.staging.versions import bucket_of as _bucket_of

BUCKET_KEYS = bucket_keys(8)


def bucket_of(native_id: str) -> str:
    return _bucket_of(native_id, 8)


CHANGED = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"  # a VinDr image of the core demo


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = demo_home(tmp_path_factory.mktemp("incr"))
    first = run_build(home, echo=False)
    assert first["success"], first
    return home, first


def test_partitions_stage_per_bucket_and_nothing_whole_source(built):
    home, first = built
    staging = home / "staging" / "vindr_cxr"
    assert not (staging / "records.parquet").exists() and not (staging / "counts.json").exists()
    assert sorted(p.name for p in staging.glob("records-*.parquet")) == [f"records-{k}.parquet" for k in BUCKET_KEYS]
    rows = sum(pq.read_metadata(p).num_rows for p in staging.glob("records-*.parquet"))
    assert rows == 4
    for k in BUCKET_KEYS:  # each bucket holds exactly the ids that hash to it
        ids = pq.read_table(staging / f"records-{k}.parquet", columns=["native_id"]).column("native_id").to_pylist()
        assert all(bucket_of(i) == k for i in ids)
    q = pq.read_table(home / "quarantine" / "vindr_cxr" / "quarantine.parquet").to_pylist()
    assert [(r["native_id"], r["reason"]) for r in q] == [(cxr_core.VINDR_MISSING, "image_missing")]
    assert f"vindr_cxr_records[{bucket_of(CHANGED)}]" in first["recomputed"]
    assert (staging / f"preview-{bucket_of(CHANGED)}.png").is_file()
    manifest = json.loads((home / "releases" / "medical" / "v1" / "manifest.json").read_text())
    assert sum(manifest["row_counts"]["records"].values()) == 4  # not double counted


def test_rebuild_with_nothing_changed_reuses_everything(built):
    home, _ = built
    again = run_build(home, echo=False)
    assert again["success"] and again["recomputed"] == [], again
    assert len(again["reused"]) == 1 + len(BUCKET_KEYS) + 1
    assert (home / "releases" / "medical" / "LATEST").read_text().strip() == "v1"


def test_one_changed_file_reruns_only_its_bucket_and_the_release(built):
    home, _ = built
    path = home / "raw" / "vindr_cxr" / "train" / f"{CHANGED}.dicom"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one pixel of uncompressed pixel data
    path.write_bytes(bytes(data))
    result = run_build(home, echo=False)
    assert result["success"], result
    assert sorted(result["recomputed"]) == sorted(
        ["vindr_cxr_catalog", f"vindr_cxr_records[{bucket_of(CHANGED)}]", "medical_release"])
    assert (home / "releases" / "medical" / "LATEST").read_text().strip() == "v2"


def test_bucket_is_stable_and_spread():
    # pinned values (sha256-based): an id must land in the same bucket in every process and on every
    # machine, which a salted hash() or a random choice would not
    assert [bucket_of(i) for i in ("00000001_000.png", "id-0", "id-1")] == ["b05", "b03", "b02"]
    spread = {bucket_of(f"id-{i}") for i in range(400)}
    assert spread == set(BUCKET_KEYS)


def test_raw_change_sensor_uses_content_fingerprints(tmp_path, monkeypatch):
    from shardsmith.definitions import defs

    home = demo_home(tmp_path)
    monkeypatch.setenv("SHARDSMITH_HOME", str(home))
    sensor = defs.get_sensor_def("vindr_cxr_raw_changes")
    repo = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        def tick(cursor):
            ctx = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=repo,
                                          resources={"shardsmith": ShardsmithResource(home=str(home))})
            return sensor.evaluate_tick(ctx)

        first = tick(None)
        assert len(first.run_requests) == 1
        subset = first.run_requests[0].asset_graph_subset
        assert subset is not None  # a backfill: catalog, every bucket, the release
        assert dg.AssetKey("vindr_cxr_catalog") in subset.non_partitioned_asset_keys
        assert dg.AssetKey("medical_release") in subset.non_partitioned_asset_keys
        parts = subset.partitions_subsets_by_asset_key[dg.AssetKey("vindr_cxr_records")]
        assert set(parts.get_partition_keys()) == set(BUCKET_KEYS)
        cursor = first.cursor
        assert not tick(cursor).run_requests  # nothing changed
        img = home / "raw" / "vindr_cxr" / "train" / f"{CHANGED}.dicom"
        st = img.stat()
        os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same content
        assert not tick(cursor).run_requests
        img.write_bytes(img.read_bytes() + b"\0")  # content changed
        changed = tick(cursor)
        assert len(changed.run_requests) == 1 and changed.cursor != cursor
        img.unlink()  # removed
        assert len(tick(changed.cursor).run_requests) == 1


def test_executor_is_chosen_by_environment(monkeypatch):
    from shardsmith.config import settings_from_env
    from shardsmith.defs.executors import select_executor

    for kind, executor in (("multiprocess", dg.multiprocess_executor), ("in_process", dg.in_process_executor)):
        monkeypatch.setenv("SHARDSMITH_EXECUTOR", kind)
        assert select_executor(settings_from_env()) is executor
    need_module("dagster_celery")
    monkeypatch.setenv("SHARDSMITH_EXECUTOR", "celery")
    monkeypatch.setenv("SHARDSMITH_CELERY_BROKER", "redis://127.0.0.1:1/0")
    assert select_executor(settings_from_env()).name == "celery"
    monkeypatch.setenv("SHARDSMITH_EXECUTOR", "nope")
    with pytest.raises(ValueError):
        select_executor(settings_from_env())


def test_definitions_have_schedule_sensors_and_jobs():
    from shardsmith.definitions import defs

    assert defs.get_schedule_def("nightly_medical_release").cron_schedule == "0 3 * * *"
    names = {s.name for s in defs.sensors}
    assert {"vindr_cxr_raw_changes", "nih_cxr14_raw_changes", "medical_automation"} <= names
    assert defs.resolve_job_def("medical_partitions").partitions_def is not None


def test_object_store_helper_round_trip(tmp_path):
    from shardsmith.hashing import sha256_bytes
    from shardsmith.publish.object_store import pull, push

    src = tmp_path / "rel"
    (src / "medical" / "v1").mkdir(parents=True)
    (src / "medical" / "v1" / "data.parquet").write_bytes(b"x" * 10)
    listed = {"path": "data.parquet", "sha256": sha256_bytes(b"x" * 10), "size": 10}
    (src / "medical" / "v1" / "manifest.json").write_text(json.dumps({"files": [listed]}))
    (src / "medical" / "LATEST").write_text("v1\n")
    assert push(src, "memory://shardsmith-test/releases") == {"uploaded": 3, "skipped": 0, "removed": 0}
    again = push(src, "memory://shardsmith-test/releases")
    assert again == {"uploaded": 0, "skipped": 2, "removed": 0}  # data and manifest unchanged
    out = tmp_path / "back"
    assert pull("memory://shardsmith-test/releases", out)["downloaded"] == 2
    assert (out / "medical" / "LATEST").read_text() == "v1\n"
