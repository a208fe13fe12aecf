"""Group splits that do not depend on the pseudonym key: official splits first, a seeded draw keyed
by public raw digests otherwise, and the card saying how many records grouping moved and why."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.config import ImageOptions, Settings
from shardsmith.demo import cxr_core, cxr_more
from shardsmith.identity.splits import assign_splits, group_splits
from shardsmith.identity.stage import GroupRemap, Identity, card_section
from shardsmith.pipeline.releases import build_release
from shardsmith.sources.registry import get_source
from shardsmith.staging.runner import run_source


def test_an_official_test_member_pulls_its_seeded_copy_into_test_and_the_move_is_counted():
    # group 0: NIH official test + a seeded train copy; group 1: two seeded copies that agree;
    # group 2: seeded copies that disagree (one of them moves to the group's draw).
    label = np.array([0, 0, 1, 1, 2, 2])
    splits = ["test", "train", "val", "val", "train", "test"]
    official = np.array([True, False, False, False, False, False])
    out = group_splits(label, splits, ["k0", "k1", "k2"], official, seed="s")
    assert out.splits[:2] == ["test", "test"] and out.splits[2:4] == ["val", "val"]
    assert out.splits[4] == out.splits[5]
    assert out.official.tolist() == [True, True, False, False, False, False]
    assert out.moved_official == 1  # the seeded copy followed the official test image
    assert out.moved_seeded == 1  # exactly one of the disagreeing pair changed


def test_the_seeded_group_draw_ignores_record_ids_and_group_ids():
    """Two sites, two pseudonym keys: RSNA's record ids (hence group ids) differ, the raw files do
    not. Disagreeing copies must land in the same split at both sites."""
    n = 400
    sha = [f"{k:064x}" for k in range(n // 2) for _ in (0, 1)]
    base = {"split": ["train", "test"] * (n // 2), "split_official": [False] * n, "raw_sha256": sha}

    def site(tag: str) -> dict[str, str]:
        table = pa.table({"record_id": [f"{tag}-r{k}" for k in range(n)],
                          "duplicate_group": [f"{tag}-g{k // 2}" for k in range(n)], **base})
        return assign_splits(table, seed="public-seed")

    a, b = site("key1"), site("key2")
    assert [a[f"key1-r{k}"] for k in range(n)] == [b[f"key2-r{k}"] for k in range(n)]
    assert len(set(a.values())) == 3  # the draw still spreads groups over train/val/test


def test_remap_publishes_a_seeded_copy_that_follows_an_official_split_as_official():
    groups = pa.table({"record_id": ["a", "b"], "duplicate_group": ["g", "g"], "split": ["test", "test"],
                       "split_official": [True, True]})
    staged = pa.table({"record_id": ["b", "a"], "split": ["train", "test"], "split_source": ["seeded", "official"],
                       "split_official": [False, True], "duplicate_group": pa.nulls(2, pa.string())})
    out = GroupRemap(groups)(staged).to_pydict()  # out of order: the looked-up path
    assert out["split"] == ["test", "test"] and out["split_source"] == ["official", "official"]
    assert out["split_official"] == [True, True] and out["duplicate_group"] == ["g", "g"]


def test_card_says_how_many_records_moved_split_and_why():
    identity = Identity(pa.table({"record_id": []}), pa.table({"x": []}),
                        {"moved_split_official": 3, "moved_split_seeded": 2}, False)
    card = card_section(identity)
    assert "Records moved to another split because of their duplicate group: 5 (3 followed a copy's " \
           "official split" in card
    assert "2 took the group's seeded split because the copies' seeded splits disagreed" in card


def test_release_puts_a_copy_of_an_official_test_image_in_test_and_says_so(tmp_path, monkeypatch):
    """ChestX-Det's demo image 0 is NIH's film 00000001_000 (renamed, cropped). With that film on
    NIH's official test list, the ChestX-Det copy (official train) follows it into test, and so does
    the patient's other film (on the train/val list): strictest official split per patient."""
    monkeypatch.setenv("SHARDSMITH_DEMO", "1")
    settings = Settings(home=tmp_path, image=ImageOptions(max_side=256), workers=1)
    nih = settings.raw_dir("nih_cxr14")
    cxr_core.write_nih(nih)
    names = [r[0] for r in cxr_core.NIH_ROWS]
    (nih / "test_list.txt").write_text("00000001_000.png\n")
    (nih / "train_val_list.txt").write_text("\n".join(n for n in names if n != "00000001_000.png") + "\n")
    cxr_more.write_chestx_det(settings.raw_dir("chestx_det"))
    for name in ("nih_cxr14", "chestx_det"):
        run_source(settings, get_source(name, settings))
    result = build_release(settings, "medical", ["chestx_det", "nih_cxr14"])

    rows = pq.read_table(result.path / "data" / "records",
                         columns=["source", "native_id", "split", "split_source", "split_official"]).to_pylist()
    by_id = {(r["source"], r["native_id"]): r for r in rows}
    assert by_id[("nih_cxr14", "00000001_000.png")]["split"] == "test"
    assert by_id[("nih_cxr14", "00000001_001.png")] | {} == {
        "source": "nih_cxr14", "native_id": "00000001_001.png", "split": "test", "split_source": "official",
        "split_official": True}
    copy = next(r for (src, nid), r in by_id.items() if src == "chestx_det" and nid.endswith("36200.png"))
    assert copy["split"] == "test" and copy["split_source"] == "official"
    assert all(r["split_official"] == (r["split_source"] == "official") for r in rows)
    card = (result.path / "README.md").read_text()
    assert "Records moved to another split because of their duplicate group: 1 (1 followed a copy's" in card
