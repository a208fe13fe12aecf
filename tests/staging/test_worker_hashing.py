"""Raw files are hashed by the worker that decodes them, not by the catalog step: the parent never
reads an image, and once the records step has filled the digests in, staging is byte for byte what
it was when the catalog step hashed every file itself (so a rebuild reuses it, and a touched file
is still no change)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shardsmith.config import ImageOptions, Settings
from shardsmith.demo import cxr_core
from shardsmith.hashing import sha256_file
from shardsmith.sources.medical.vindr_cxr import VinDrCxr
from shardsmith.staging import fingerprint, steps
from shardsmith.staging.versions import bucket_keys

PARTS = bucket_keys(4)


def _settings(home: Path, workers: int = 2) -> Settings:
    return Settings(home=home, image=ImageOptions(max_side=128, bit_depth=8), workers=workers, buckets=4)


def _staged(settings: Settings) -> dict[str, bytes]:
    """Every staged and quarantined file of the source, by path under the home."""
    out = {}
    for folder in (settings.staging_dir("vindr_cxr"), settings.quarantine_dir("vindr_cxr")):
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.name != "versions.json" and ".lock" not in p.name:
                out[str(p.relative_to(settings.home))] = p.read_bytes()
    return out


def _versions(settings: Settings) -> dict:
    """The versions a rebuild compares, and each raw file's size and digest (mtimes differ by home)."""
    v = json.loads((settings.staging_dir("vindr_cxr") / "versions.json").read_text())
    return {"raw": {rel: (size, sha) for rel, (size, _, sha) in v["raw"].items()}, "catalog": v["catalog"],
            "records": v.get("records")}


_SCAN = fingerprint.scan


def _parent_hashing_scan(root, previous=None, hash_new=True):
    """The catalog step as it was: every file hashed in the parent."""
    return _SCAN(root, previous, hash_new=True)


def test_the_parent_leaves_image_digests_to_the_workers_and_staging_is_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key")
    new, old = _settings(tmp_path / "new"), _settings(tmp_path / "old")
    for s in (new, old):
        cxr_core.write_vindr(s.raw_dir("vindr_cxr"))
    root = new.raw_dir("vindr_cxr")

    steps.stage_catalog(new, VinDrCxr())
    catalog = pq.read_table(new.layout.catalog("vindr_cxr")).to_pylist()
    assert catalog and all(r["raw_sha256"] == "" for r in catalog)  # no image read by the parent
    raw = _versions(new)["raw"]
    assert all(raw[r["raw_path"]][1] is None for r in catalog)
    assert raw["train.csv"][1] == sha256_file(root / "train.csv")  # what no worker reads is hashed here

    steps.stage_records_parts(new, VinDrCxr(), PARTS)
    records = [r for p in PARTS for r in pq.read_table(new.layout.table("vindr_cxr", "records", p),
                                                       columns=["raw_path", "raw_sha256"]).to_pylist()]
    assert records and all(r["raw_sha256"] == sha256_file(root / r["raw_path"]) for r in records)

    with monkeypatch.context() as m:
        m.setattr(steps.fingerprint, "scan", _parent_hashing_scan)
        steps.stage_catalog(old, VinDrCxr())
        assert all(r["raw_sha256"] for r in pq.read_table(old.layout.catalog("vindr_cxr")).to_pylist())
        steps.stage_records_parts(old, VinDrCxr(), PARTS)
    # the same catalog, records, quarantine and counts bytes, and the same versions
    assert _staged(new) == _staged(old)
    assert _versions(new) == _versions(old)


def test_a_rebuild_reuses_everything_and_a_touched_image_is_no_change(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key")
    s = _settings(tmp_path)
    cxr_core.write_vindr(s.raw_dir("vindr_cxr"))
    steps.stage_catalog(s, VinDrCxr())
    first = steps.stage_records_parts(s, VinDrCxr(), PARTS)
    assert all(o.recomputed for o in first.values())

    assert not steps.stage_catalog(s, VinDrCxr()).recomputed
    again = steps.stage_records_parts(s, VinDrCxr(), PARTS)
    assert not any(o.recomputed for o in again.values())

    img = next(s.raw_dir("vindr_cxr").glob("train/*.dicom"))
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same content
    assert not steps.stage_catalog(s, VinDrCxr()).recomputed
    assert not any(o.recomputed for o in steps.stage_records_parts(s, VinDrCxr(), PARTS).values())

    img.write_bytes(img.read_bytes() + b"\0")  # content changed: its catalog and its bucket only
    assert steps.stage_catalog(s, VinDrCxr()).recomputed
    changed = steps.stage_records_parts(s, VinDrCxr(), PARTS)
    assert sum(o.recomputed for o in changed.values()) == 1


class ParentHashlessVinDr(VinDrCxr):
    """A source that does not hash while reading: the pool hashes the raw file before decoding."""

    hashes_while_reading = False


@pytest.mark.parametrize("source", [VinDrCxr(), ParentHashlessVinDr()], ids=["while_reading", "before_decoding"])
def test_an_image_gone_after_the_catalog_is_a_quarantine_row_and_the_rest_is_hashed(tmp_path, monkeypatch, source):
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key")
    s = _settings(tmp_path, workers=1)
    root = s.raw_dir("vindr_cxr")
    cxr_core.write_vindr(root)
    steps.stage_catalog(s, source)
    gone = sorted(root.glob("train/*.dicom"))[0]
    gone.unlink()
    out = steps.stage_records_parts(s, source, PARTS)
    assert sum(o.counts["reasons"].get("unreadable", 0) for o in out.values()) == 1
    catalog = pq.read_table(s.layout.catalog("vindr_cxr")).to_pylist()
    for r in catalog:  # the digest of every file a worker read is in the catalog
        expected = "" if root / r["raw_path"] == gone else sha256_file(root / r["raw_path"])
        assert r["raw_sha256"] == expected


def test_unhashed_files_count_by_size_and_mtime():
    a = {"x": [3, 100, None]}
    assert fingerprint.digest(a) != fingerprint.digest({"x": [3, 200, None]})
    assert fingerprint.changes(a, {"x": [3, 200, None]})["changed"] == ["x"]
    assert fingerprint.changes(a, {"x": [3, 100, None]})["changed"] == []
    hashed = {"x": [3, 100, "ab"]}
    assert fingerprint.digest(hashed) == fingerprint.digest({"x": [3, 999, "ab"]})  # mtime is not content


def test_scan_defers_only_files_it_never_hashed(tmp_path):
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    first = fingerprint.scan(tmp_path, None, hash_new=False)
    assert first["a"][2] is None and first["b"][2] is None
    first["a"][2] = sha256_file(tmp_path / "a")  # a worker hashed it
    st = (tmp_path / "a").stat()
    os.utime(tmp_path / "a", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = fingerprint.scan(tmp_path, first, hash_new=False)
    assert again["a"][2] == sha256_file(tmp_path / "a")  # touched: hashed again, so it is no change
    assert again["b"][2] is None
    fingerprint.hash_pending(tmp_path, again, {"b"})
    assert again["b"][2] is None
    fingerprint.hash_pending(tmp_path, again)
    assert again["b"][2] == sha256_file(tmp_path / "b")


def test_two_processes_filling_digests_at_once_lose_none(tmp_path, monkeypatch):
    """Two partition runs of one source (the UI can start them together) each fill the digests
    their workers computed into the one staged catalog: the second must not write over the first's.
    Each rewrite waits, before it replaces the catalog, for the other to get that far: unlocked, both
    would have read the old catalog by then and the later rename drops the earlier's digests; under
    the versions lock the other cannot start, the wait times out and the rewrites run one by one."""
    import threading

    from shardsmith.staging import catalog_io

    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key")
    settings = _settings(tmp_path / "home")
    cxr_core.write_vindr(settings.raw_dir("vindr_cxr"))
    source = VinDrCxr(settings=settings)
    steps.stage_catalog(settings, source)
    rows = list(catalog_io.iter_catalog(settings, "vindr_cxr"))
    assert len(rows) >= 2 and not any(r.raw_sha256 for r in rows)
    root = settings.raw_dir("vindr_cxr")
    halves = [{r.raw_path: sha256_file(root / r.raw_path) for r in rows[i::2]} for i in (0, 1)]

    at_commit = threading.Barrier(2)
    original = catalog_io.commit

    def commit_after_the_other(tmp, path):
        try:
            at_commit.wait(timeout=1.0)
        except threading.BrokenBarrierError:
            pass
        original(tmp, path)

    monkeypatch.setattr(catalog_io, "commit", commit_after_the_other)
    threads = [threading.Thread(target=steps.record_raw_digests, args=(settings, source, h)) for h in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    filled = {r.raw_path: r.raw_sha256 for r in catalog_io.iter_catalog(settings, "vindr_cxr")}
    assert filled == {**halves[0], **halves[1]}
