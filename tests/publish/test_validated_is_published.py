"""Issue 21 (2): a release validates the rows exactly as it publishes them (after the duplicate
groups' split is applied), and a unique key holds over the whole table, not chunk by chunk."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from shardsmith.config import ImageOptions, Settings
from shardsmith.demo import cxr_core
from shardsmith.identity import stage as identity_stage
from shardsmith.loaders import open_release
from shardsmith.pipeline import releases
from shardsmith.publish import build
from shardsmith.schemas.records import SPLITS
from shardsmith.sources.medical.nih_cxr14 import NihCxr14
from shardsmith.sources.medical.vindr_cxr import VinDrCxr
from shardsmith.staging.runner import run_source


def _settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key")
    return Settings(home=tmp_path / "home", image=ImageOptions(max_side=64, bit_depth=8), workers=1)


def _published_records(settings: Settings) -> pa.Table:
    rel = open_release(settings.releases, "medical")
    return pa.concat_tables(pq.read_table(p, columns=["record_id", "patient_id", "split", "duplicate_group"])
                            for p in sorted((rel.path / "data" / "records").rglob("*.parquet")))


def test_a_record_id_repeated_in_another_chunk_refuses_the_release(tmp_path, monkeypatch):
    settings = _settings(tmp_path, monkeypatch)
    cxr_core.write_vindr(settings.raw_dir("vindr_cxr"))
    run_source(settings, VinDrCxr())
    path = settings.staging_dir("vindr_cxr") / "records.parquet"
    table = pq.read_table(path)
    assert table.num_rows >= 3
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), path)  # the first record again, at the end
    monkeypatch.setattr(build, "RECORD_CHUNK_ROWS", 2)  # ... so the two copies sit in different chunks
    with pytest.raises(build.ValidationFailedError) as err:
        releases.build_release(settings, "medical", ["vindr_cxr"])
    assert "unique_over_table:record_id" in str(err.value)
    assert table["record_id"][0].as_py() in str(err.value)
    assert not (settings.releases / "medical").is_dir() or not any((settings.releases / "medical").glob("v*"))


def test_unique_keys_of_every_table_are_checked_over_the_whole_table(tmp_path, monkeypatch):
    settings = _settings(tmp_path, monkeypatch)
    cxr_core.write_vindr(settings.raw_dir("vindr_cxr"))
    run_source(settings, VinDrCxr())
    path = settings.staging_dir("vindr_cxr") / "records.parquet"
    monkeypatch.setattr(build, "RECORD_CHUNK_ROWS", 1)
    summary = build.validate_tables({"records": [path, path]}, tmp_path / "out")["records"]  # every id twice
    check = next(c for c in summary["integrity"] if c["name"] == "unique_over_table:record_id")
    assert not summary["success"] and not check["passed"]
    assert check["detail"].startswith(f"{pq.read_metadata(path).num_rows} value(s)")
    # each chunk alone passes its GX suites: only the whole-table check sees the repeat
    assert all(s["success"] for s in summary["suites"]), summary["suites"]


def test_the_split_validated_is_the_split_published(tmp_path, monkeypatch):
    """A remap that moves one of a patient's records to another split (each duplicate group still
    in one split) puts that patient in two published splits: validation must see it and refuse."""
    settings = _settings(tmp_path, monkeypatch)
    cxr_core.write_nih(settings.raw_dir("nih_cxr14"))
    run_source(settings, NihCxr14())
    staged = pq.read_table(settings.staging_dir("nih_cxr14") / "records.parquet",
                           columns=["record_id", "patient_id", "split"])
    by_patient = staged.group_by("patient_id").aggregate([("record_id", "list"), ("split", "list")])
    twice = next(r for r in by_patient.to_pylist() if len(r["record_id_list"]) >= 2)
    moved, old_split = twice["record_id_list"][1], twice["split_list"][1]
    new_split = next(s for s in SPLITS if s != old_split)
    real_stage = identity_stage.stage_identity

    def stage_with_a_moved_record(*args, **kwargs):
        identity = real_stage(*args, **kwargs)
        g = identity.groups
        is_moved = pc.equal(g["record_id"], moved)
        g = g.set_column(g.schema.get_field_index("split"), "split",
                         pc.if_else(is_moved, new_split, g["split"]))
        g = g.set_column(g.schema.get_field_index("duplicate_group"), "duplicate_group",
                         pc.if_else(is_moved, "g" + "f" * 15, g["duplicate_group"]))  # a group of its own
        identity.groups = g
        return identity

    monkeypatch.setattr(identity_stage, "stage_identity", stage_with_a_moved_record)
    with pytest.raises(build.ValidationFailedError) as err:
        releases.build_release(settings, "medical", ["nih_cxr14"])
    assert "patients_in_one_split" in str(err.value)

    monkeypatch.setattr(identity_stage, "stage_identity", real_stage)  # the real groups publish
    result = releases.build_release(settings, "medical", ["nih_cxr14"])
    published = _published_records(settings)
    assert published.num_rows == staged.num_rows and published["duplicate_group"].null_count == 0
    summary = json.loads((result.path / "validation" / "records.json").read_text())
    assert summary["success"]
    assert {c["name"] for c in summary["integrity"]} >= {"patients_in_one_split", "unique_over_table:record_id"}
