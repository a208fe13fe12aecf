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


def _staged_with_a_corrupt_bucket(home: Path) -> tuple[Settings, str, list[str]]:
    """VinDr staged in 4 buckets after every DICOM of one bucket was overwritten with garbage: that
    bucket's inputs all go to quarantine (with a reason), the others stage records."""
    import pydicom  # noqa: F401  (the decoder the garbage must fail in)

    from shardsmith.staging.versions import bucket_of

    s = _settings(home, 1)
    cxr_core.write_vindr(s.raw_dir("vindr_cxr"))
    by_bucket: dict[str, list[Path]] = {}
    for f in sorted((s.raw_dir("vindr_cxr") / "train").glob("*.dicom")):
        by_bucket.setdefault(bucket_of(f.stem, s.buckets), []).append(f)
    parts = bucket_keys(4)
    assert sum(1 for p in parts if by_bucket.get(p)) >= 2, "the demo must fill two buckets"
    corrupt = next(p for p in parts if by_bucket.get(p))
    for f in by_bucket[corrupt]:
        f.write_bytes(b"not a dicom at all" * 10)
    steps.stage_catalog(s, VinDrCxr())
    out = steps.stage_records_parts(s, VinDrCxr(), parts)
    assert out[corrupt].counts["records"] == 0
    assert out[corrupt].counts["quarantined"] == out[corrupt].counts["inputs"] == len(by_bucket[corrupt])
    return s, corrupt, parts


def test_a_bucket_whose_inputs_are_all_quarantined_passes_and_is_released(tmp_path, monkeypatch):
    """Issue 21 (3): zero rows is not a failure when every input is in quarantine with a reason."""
    from shardsmith.pipeline.releases import build_release

    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key")
    s, corrupt, parts = _staged_with_a_corrupt_bucket(tmp_path)
    alone = steps.check_parts(s, VinDrCxr(), [corrupt])  # the one-part path (a partition's own check)
    assert alone.passed, alone.metadata
    assert alone.metadata["rows"] == 0 and alone.metadata["quarantined"] == alone.metadata["inputs"]
    monkeypatch.setattr(steps, "suite_tag", lambda: "again")  # not reused from the passing check above
    suites = steps.check_parts(s, VinDrCxr(), parts)
    assert suites.passed, suites.metadata
    assert suites.name == steps.SUITES_CHECK and suites.metadata["parts_validated"] == len(parts)
    integrity = steps.check_integrity_parts(s, VinDrCxr(), parts)
    assert integrity.passed, integrity.metadata
    result = build_release(s, "medical", ["vindr_cxr"])
    assert result.created and sum(result.row_counts["records"].values()) >= 1


def test_a_part_whose_counts_do_not_reconcile_fails_whatever_its_rows(tmp_path, monkeypatch):
    """A part with records whose counts claim one input more than it published or quarantined:
    an item vanished, so the part fails although it has rows (and its rows pass the suites)."""
    import json

    import pyarrow.parquet as pq

    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key")
    s, corrupt, parts = _staged_with_a_corrupt_bucket(tmp_path)
    layout = StagingLayout(s.home)
    full = next(p for p in parts if pq.read_metadata(layout.table("vindr_cxr", "records", p)).num_rows)
    counts_path = layout.counts("vindr_cxr", full)
    counts = json.loads(counts_path.read_text())
    counts["inputs"] += 1
    counts_path.write_text(json.dumps(counts))
    alone = steps.check_parts(s, VinDrCxr(), [full])
    assert not alone.passed and "does NOT hold" in alone.metadata["not_reconciled"]
    bad = steps.check_parts(s, VinDrCxr(), parts)  # the all-quarantined bucket beside it is fine
    assert not bad.passed
    assert list(bad.metadata["not_reconciled"]) == [full] and bad.examples == [full]
    assert "does NOT hold" in bad.detail
