"""Release validation in bounded chunks (issue 12) reports what one whole-table pass reports."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shardsmith.config import ImageOptions, Settings
from shardsmith.demo import cxr_core
from shardsmith.publish import build
from shardsmith.sources.medical.vindr_cxr import VinDrCxr
from shardsmith.staging.runner import run_source


def _staged(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key")
    settings = Settings(home=tmp_path / "home", image=ImageOptions(max_side=64, bit_depth=8), workers=1)
    cxr_core.write_vindr(settings.raw_dir("vindr_cxr"))
    run_source(settings, VinDrCxr())
    return settings.staging_dir("vindr_cxr") / "records.parquet"


def _summary(files, out, monkeypatch, rows: int) -> dict:
    monkeypatch.setattr(build, "RECORD_CHUNK_ROWS", rows)
    return build.validate_tables({"records": files}, out)["records"]


def test_chunks_give_the_whole_table_verdict(tmp_path, monkeypatch):
    path = _staged(tmp_path, monkeypatch)
    assert pq.read_metadata(path).num_rows >= 3
    whole = _summary([path], tmp_path / "whole", monkeypatch, 10**6)
    chunked = _summary([path], tmp_path / "chunked", monkeypatch, 1)
    assert whole["success"] and chunked["success"]
    assert chunked["chunks"] == pq.read_metadata(path).num_rows and "chunks" not in whole
    assert [c["name"] for c in chunked["integrity"]] == [c["name"] for c in whole["integrity"]]
    assert [s["suite"] for s in chunked["suites"]] == [s["suite"] for s in whole["suites"]]


def test_a_failure_in_one_chunk_fails_the_table(tmp_path, monkeypatch):
    path = _staged(tmp_path, monkeypatch)
    table = pq.read_table(path)
    # the last record claims to be normal although it carries a present finding
    present = [any(f["status"] == "present" for f in fs or ()) for fs in table["findings"].to_pylist()]
    last = max(i for i, p in enumerate(present) if p)
    abnormal = table["abnormal"].to_pylist()
    abnormal[last] = False
    table = table.set_column(table.schema.get_field_index("abnormal"), "abnormal", pa.array(abnormal, pa.bool_()))
    bad = tmp_path / "bad.parquet"
    pq.write_table(table, bad)
    chunked = _summary([bad], tmp_path / "chunked", monkeypatch, 1)
    assert not chunked["success"]
    check = next(c for c in chunked["integrity"] if c["name"] == "normal_has_no_abnormality")
    assert not check["passed"] and check["examples"] == [table["record_id"][last].as_py()]
    assert pc.sum(pc.invert(table["abnormal"].fill_null(True))).as_py() >= 1
