"""Staging every bucket of a source in one call (one catalog pass, one pool) writes the same bytes
as staging each bucket on its own, and reuses parts whose inputs did not change."""

from __future__ import annotations

import hashlib
from pathlib import Path

from shardsmith.config import ImageOptions, Settings
from shardsmith.demo import cxr_core
from shardsmith.media.raster import pass_through_png
from shardsmith.sources.medical.nih_cxr14 import NihCxr14
from shardsmith.sources.medical.vindr_cxr import VinDrCxr
from shardsmith.staging import steps
from shardsmith.staging.layout import StagingLayout
from shardsmith.staging.versions import bucket_keys, records_version


def _settings(home: Path, workers: int) -> Settings:
    return Settings(home=home, image=ImageOptions(max_side=128, bit_depth=8), workers=workers, buckets=4)


def _digests(settings: Settings, name: str, parts: list[str]) -> dict[str, str]:
    layout = StagingLayout(settings.home)
    return {f"{p}:{k}": hashlib.sha256(path.read_bytes()).hexdigest()
            for p in parts for k, path in layout.part_paths(name, p).items()}


def test_all_parts_in_one_call_match_parts_one_by_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key")
    parts = bucket_keys(4)
    together, alone = _settings(tmp_path / "together", 2), _settings(tmp_path / "alone", 1)
    for s in (together, alone):
        cxr_core.write_vindr(s.raw_dir("vindr_cxr"))
        steps.stage_catalog(s, VinDrCxr())
    out = steps.stage_records_parts(together, VinDrCxr(), parts)
    for p in parts:
        steps.stage_records(alone, VinDrCxr(), p)
    assert _digests(together, "vindr_cxr", parts) == _digests(alone, "vindr_cxr", parts)
    assert set(out) == set(parts) and all(o.recomputed for o in out.values())
    assert sum(o.counts["items_ok"] + o.counts["quarantined"] for o in out.values()) == sum(
        o.counts["inputs"] for o in out.values())
    # the streamed digest is the one `records_version` computes from a part's entries in memory
    # (what `shardsmith build --dry-run` compares with)
    for p in parts:
        entries, cat_q = steps.part_inputs(together, VinDrCxr(), p)
        assert records_version(together, VinDrCxr.adapter_version, entries, cat_q) == out[p].version
    # nothing changed: every part is reused, nothing is decoded again
    again = steps.stage_records_parts(together, VinDrCxr(), parts)
    assert not any(o.recomputed for o in again.values())
    assert {p: o.version for p, o in again.items()} == {p: o.version for p, o in out.items()}


def test_pass_through_pngs_are_staged_byte_for_byte(tmp_path, monkeypatch):
    """NIH PNGs that already fit (grey, 8 bit, within max_side) are stored as they are on disk
    minus ancillary chunks; the demo's PNGs are larger than 128 px, so a 0 (native) max_side is used."""
    import pyarrow.parquet as pq

    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key")
    s = Settings(home=tmp_path, image=ImageOptions(max_side=0, bit_depth=8), workers=1, buckets=1)
    cxr_core.write_nih(s.raw_dir("nih_cxr14"))
    steps.stage_catalog(s, NihCxr14())
    steps.stage_records_parts(s, NihCxr14(), ["b00"])
    rows = pq.read_table(StagingLayout(s.home).table("nih_cxr14", "records", "b00"),
                         columns=["raw_path", "image"]).to_pylist()
    assert rows
    for r in rows:
        stored = pass_through_png(s.raw_dir("nih_cxr14") / r["raw_path"], 0, 8)
        assert stored is not None, r["raw_path"]  # the demo PNGs conform: nothing is re-encoded
        assert r["image"]["bytes"] == stored.encoded.png


def test_check_parts_in_chunks_names_the_docs_of_a_failing_chunk(tmp_path, monkeypatch):
    """Several parts validated in small chunks; a suite that fails renders Data Docs once."""
    import shardsmith.validation.suites as suites_mod
    from shardsmith.validation.suites import FrameSuite

    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key")
    monkeypatch.setattr(steps, "CHECK_CHUNK_ROWS", 2)
    s = _settings(tmp_path, 1)
    cxr_core.write_vindr(s.raw_dir("vindr_cxr"))
    steps.stage_catalog(s, VinDrCxr())
    parts = bucket_keys(4)
    steps.stage_records_parts(s, VinDrCxr(), parts)
    ok = steps.check_parts(s, VinDrCxr(), parts)
    assert ok.passed and "data_docs" not in ok.metadata, ok.metadata
    strict = suites_mod.record_suites()
    strict["records"] = FrameSuite([*strict["records"].expectations,
                                    ("ExpectColumnValuesToBeInSet", {"column": "split", "value_set": ["nowhere"]})])
    monkeypatch.setattr(suites_mod, "record_suites", lambda allow_empty=False: strict)
    monkeypatch.setattr(steps, "suite_tag", lambda: "strict")  # the suites changed: nothing is reused
    bad = steps.check_parts(s, VinDrCxr(), parts)
    assert not bad.passed
    assert bad.metadata["data_docs"].endswith("index.html")
    assert Path(bad.metadata["data_docs"]).is_file()
