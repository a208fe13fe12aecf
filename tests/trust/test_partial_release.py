"""A broken label file fails its source alone; the release is refused naming it, or goes without it
(``allow_partial``) and says so in the card. The partition GX check fails an empty partition that lost
items and renders Data Docs when it fails."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardsmith.config import Settings
from shardsmith.demo.cxr_core import write_nih, write_vindr
from shardsmith.publish.build import build_release
from shardsmith.publish.partial import SourcesBrokenError, staging_failures
from shardsmith.sources.pipeline import StageCounts, run_sources
from shardsmith.sources.registry import get_source

SOURCES = ["nih_cxr14", "vindr_cxr"]


@pytest.fixture
def staged(tmp_path: Path, monkeypatch) -> Settings:
    monkeypatch.setenv("SHARDSMITH_WORKERS", "1")
    settings = Settings(home=tmp_path)
    write_vindr(settings.raw_dir("vindr_cxr"))
    write_nih(settings.raw_dir("nih_cxr14"))
    entry = settings.raw_dir("nih_cxr14") / "Data_Entry_2017_v2020.csv"
    entry.write_bytes(entry.read_text().encode("utf-16-le"))  # UTF-16 saved without a BOM: unreadable
    return settings


def test_broken_label_file_fails_its_source_alone_and_gates_the_release(staged: Settings):
    from shardsmith.loaders import open_release

    out = run_sources(staged, [get_source(s) for s in SOURCES])
    assert isinstance(out["vindr_cxr"], StageCounts) and out["vindr_cxr"].records > 0
    assert isinstance(out["nih_cxr14"], str) and "Data_Entry_2017_v2020.csv: line 1" in out["nih_cxr14"]
    assert set(staging_failures(staged, SOURCES)) == {"nih_cxr14"}
    # refused, naming the broken source, and nothing published
    with pytest.raises(SourcesBrokenError) as err:
        build_release(staged, "medical", SOURCES)
    assert "nih_cxr14" in str(err.value) and "--allow-partial" in str(err.value)
    assert not (staged.releases / "medical").exists() or not any((staged.releases / "medical").iterdir())
    # allowed partial: published without it, and the card says so
    build_release(staged, "medical", SOURCES, allow_partial=True)
    rel = open_release(staged.releases, "medical")
    assert set(rel.pandas("records", columns=["source"])["source"]) == {"vindr_cxr"}
    card = (rel.path / "README.md").read_text()
    assert "## Partial release" in card and "nih_cxr14" in card and "line 1" in card


def test_fixed_source_clears_its_failure(staged: Settings):
    run_sources(staged, [get_source(s) for s in SOURCES])
    entry = staged.raw_dir("nih_cxr14") / "Data_Entry_2017_v2020.csv"
    entry.write_text(entry.read_bytes().decode("utf-16-le"))
    out = run_sources(staged, [get_source("nih_cxr14")])
    assert isinstance(out["nih_cxr14"], StageCounts) and not staging_failures(staged, SOURCES)


def test_partition_check_fails_a_partition_that_lost_everything(tmp_path: Path):
    from shardsmith.schemas.records import RECORDS_SCHEMA
    from shardsmith.validation.partition import check_records_partition

    path = tmp_path / "records-7.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=RECORDS_SCHEMA), path)
    assert check_records_partition("vindr_cxr", path, inputs=0, docs_out=tmp_path / "docs0").success
    report = check_records_partition("vindr_cxr", path, inputs=3, docs_out=tmp_path / "docs3")
    assert not report.success
    assert report.docs_index is not None and report.docs_index.is_file()
    assert report.docs_index.parent == tmp_path / "docs3"
