"""The catalog's label spill: items leave ``read_labels`` order for native-id order through sorted
runs on disk, and a catalog built through many tiny runs equals one built in memory."""

from __future__ import annotations

import random

from shardsmith.demo import cxr_core
from shardsmith.sources.medical import base
from shardsmith.sources.medical.base import LabelledItem, SortedItems
from shardsmith.sources.medical.nih_cxr14 import NihCxr14


def test_runs_merge_in_stable_native_id_order():
    rng = random.Random(7)
    ids = [f"img{rng.randrange(40):03d}" for _ in range(500)]  # many repeats: stability matters
    runs = SortedItems(run_items=17)
    for k, nid in enumerate(ids):
        runs.add(LabelledItem(native_id=nid, text=str(k)))
    assert len(runs.runs) == 500 // 17  # spilled
    assert runs.ids == set(ids)
    got = [(it.native_id, int(it.text)) for it in runs.merged()]
    assert got == sorted(((nid, k) for k, nid in enumerate(ids)), key=lambda t: t[0])  # sorted() is stable


def test_small_sources_stay_in_memory():
    runs = SortedItems(run_items=100)
    for nid in ("b", "a", "c"):
        runs.add(LabelledItem(native_id=nid))
    assert not runs.runs
    assert [it.native_id for it in runs.merged()] == ["a", "b", "c"]


def _catalog(root):
    cat = NihCxr14().catalog(root)
    return [(e.raw_path, e.raw_sha256, e.item.to_json()) for e in cat.entries], cat.quarantine


def test_catalog_through_tiny_runs_equals_the_in_memory_catalog(tmp_path, monkeypatch):
    cxr_core.write_nih(tmp_path)
    whole = _catalog(tmp_path)
    real_init = SortedItems.__init__
    monkeypatch.setattr(base.SortedItems, "__init__", lambda self, run_items=2: real_init(self, 2))
    spilled = _catalog(tmp_path)
    assert spilled == whole
    assert len(whole[0]) > 2  # more than one run was merged
