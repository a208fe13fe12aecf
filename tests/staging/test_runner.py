"""The process-pool path of build_records: same bytes as the serial path, and crash-proof."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shardsmith.config import ImageOptions, Settings
from shardsmith.demo import cxr_core
from shardsmith.sources.medical.vindr_cxr import VinDrCxr
from shardsmith.staging.runner import WorkerError, read_catalog, run_source

CRASH_ID = "1b2c3d4e5f60718293a4b5c6d7e8f90a"  # the MONOCHROME1 image of the demo set
RAISE_ID = "3d4e5f60718293a4b5c6d7e8f90a1b2c"


class RaisingVinDr(VinDrCxr):
    """Raises an unexpected (non-RecordError) exception on one image."""

    def build_records(self, entry, root, settings):
        if entry.item.native_id == RAISE_ID:
            raise RuntimeError("decoder bug")
        yield from super().build_records(entry, root, settings)


class CrashingVinDr(VinDrCxr):
    """Kills its worker process on one image (as a decoder segfault or an OOM kill would)."""

    def build_records(self, entry, root, settings):
        if entry.item.native_id == CRASH_ID and multiprocessing.parent_process() is not None:
            os._exit(3)
        yield from super().build_records(entry, root, settings)


class HangingVinDr(VinDrCxr):
    """Never finishes one image (as a decoder stuck in a loop or on a dead network mount would)."""

    def build_records(self, entry, root, settings):
        if entry.item.native_id == RAISE_ID and multiprocessing.parent_process() is not None:
            while True:
                time.sleep(60)
        yield from super().build_records(entry, root, settings)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(tmp: Path, name: str, workers: str, monkeypatch, source=None, timeout: float = 300.0) -> Settings:
    home = tmp / name
    cxr_core.write_vindr(home / "raw" / "vindr_cxr")
    settings = Settings(home=home, image=ImageOptions(max_side=128, bit_depth=8), workers=int(workers),
                        item_timeout_s=timeout)
    run_source(settings, source or VinDrCxr())
    return settings


def _outputs(settings: Settings) -> dict[str, str]:
    return {
        "records": _digest(settings.staging_dir("vindr_cxr") / "records.parquet"),
        "quarantine": _digest(settings.quarantine_dir("vindr_cxr") / "quarantine.parquet"),
        "counts": _digest(settings.staging_dir("vindr_cxr") / "counts.json"),
    }


def test_parallel_staging_is_byte_identical_to_serial(tmp_path, monkeypatch):
    serial = _outputs(_build(tmp_path, "serial", "1", monkeypatch))
    parallel = _outputs(_build(tmp_path, "parallel", "3", monkeypatch))
    assert parallel == serial


def test_worker_crash_becomes_a_quarantine_row(tmp_path, monkeypatch):
    settings = _build(tmp_path, "crash", "2", monkeypatch, CrashingVinDr())
    rows = pq.read_table(settings.quarantine_dir("vindr_cxr") / "quarantine.parquet").to_pylist()
    reasons = {r["native_id"]: r["reason"] for r in rows}
    assert reasons == {CRASH_ID: "worker_crashed", cxr_core.VINDR_MISSING: "image_missing"}
    records = pq.read_table(settings.staging_dir("vindr_cxr") / "records.parquet", columns=["native_id"])
    entries, _ = read_catalog(settings, "vindr_cxr")
    # every other image still made it, in catalog order, and the counts reconcile
    expected = [e.item.native_id for e in entries if e.item.native_id != CRASH_ID]
    assert records.column("native_id").to_pylist() == expected
    counts = json.loads((settings.staging_dir("vindr_cxr") / "counts.json").read_text())
    assert counts["items_ok"] + counts["quarantined"] == counts["inputs"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_unexpected_errors_still_stop_the_build(tmp_path, monkeypatch, workers):
    # A bug or a configuration error (no pseudonym key) must fail loudly, not quarantine everything.
    with pytest.raises((RuntimeError, WorkerError), match="decoder bug"):
        _build(tmp_path, f"w{workers}", workers, monkeypatch, RaisingVinDr())
    assert not (tmp_path / f"w{workers}" / "staging" / "vindr_cxr" / "records.parquet").exists()


def test_unpicklable_source_falls_back_to_serial(tmp_path, monkeypatch):
    source = VinDrCxr()
    source.hook = lambda: None  # a lambda cannot be sent to a worker process
    settings = _build(tmp_path, "unpicklable", "2", monkeypatch, source)
    assert _outputs(settings) == _outputs(_build(tmp_path, "serial", "1", monkeypatch))


def test_hung_item_times_out_and_the_rest_goes_on(tmp_path, monkeypatch):
    start = time.monotonic()
    settings = _build(tmp_path, "hang", "2", monkeypatch, HangingVinDr(), timeout=2)
    assert time.monotonic() - start < 60
    rows = pq.read_table(settings.quarantine_dir("vindr_cxr") / "quarantine.parquet").to_pylist()
    reasons = {r["native_id"]: r["reason"] for r in rows}
    assert reasons == {RAISE_ID: "timeout", cxr_core.VINDR_MISSING: "image_missing"}
    assert "2 s" in next(r["detail"] for r in rows if r["reason"] == "timeout")
    entries, _ = read_catalog(settings, "vindr_cxr")
    records = pq.read_table(settings.staging_dir("vindr_cxr") / "records.parquet", columns=["native_id"])
    assert records.column("native_id").to_pylist() == [e.item.native_id for e in entries
                                                       if e.item.native_id != RAISE_ID]
    counts = json.loads((settings.staging_dir("vindr_cxr") / "counts.json").read_text())
    assert counts["reasons"]["timeout"] == 1 and counts["items_ok"] + counts["quarantined"] == counts["inputs"]
