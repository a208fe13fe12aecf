"""Group-aware splits: one split per group, official splits respected, deterministic otherwise."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shardsmith.config import DEFAULT_SPLIT_SEED
from shardsmith.identity.groups import group_id
from shardsmith.identity.splits import assign_splits, group_splits, groups_span_one_split
from shardsmith.pseudonym import seeded_split


def test_official_test_split_wins_over_derived_splits():
    # Group 0: NIH official test + a SIIM copy derived as train -> test.
    # Group 1: official train + derived val copy -> train (official beats derived, even if less strict).
    label = np.array([0, 0, 1, 1])
    splits = ["test", "train", "train", "val"]
    official = np.array([True, False, True, False])
    out = group_splits(label, splits, ["gA", "gB"], official).splits
    assert out == ["test", "test", "train", "train"]


def test_without_official_members_agreeing_splits_stay_and_disagreeing_ones_hash_the_group():
    label = np.array([0, 0, 1, 1, 2])
    splits = ["val", "val", "train", "test", "train"]
    gids = [group_id("a"), group_id("c"), group_id("e")]
    out = group_splits(label, splits, gids, np.zeros(5, bool)).splits
    assert out[:2] == ["val", "val"]  # one patient's images: unchanged
    assert out[2] == out[3] == seeded_split(DEFAULT_SPLIT_SEED, "group", gids[1])  # one split from the group key
    assert out[4] == "train"  # singleton: unchanged


def test_without_official_flags_every_split_counts_and_the_most_restrictive_wins():
    out = group_splits(np.array([0, 0, 0, 1]), ["train", "val", "train", "train"], ["g0", "g1"], None).splits
    assert out == ["val", "val", "val", "train"]


def test_assign_splits_and_the_blocking_check():
    table = pa.table({
        "record_id": ["r1", "r2", "r3", "r4", "r5"],
        "duplicate_group": ["g1", "g1", "g2", "g2", "g3"],
        "split": ["train", "test", "val", "train", "train"],
        "split_official": [False, True, False, False, None],
    })
    passed, examples = groups_span_one_split(table)
    assert not passed
    assert [e["duplicate_group"] for e in examples] == ["g1", "g2"]
    assert examples[0]["splits"] == ["test", "train"] and examples[0]["record_ids"] == ["r1", "r2"]

    mapping = assign_splits(table)
    assert mapping["r1"] == mapping["r2"] == "test"
    assert mapping["r3"] == mapping["r4"] == seeded_split(DEFAULT_SPLIT_SEED, "group", "g2")  # no raw_sha256
    assert mapping["r5"] == "train"
    fixed = table.set_column(2, "split", pa.array([mapping[r] for r in table.column("record_id").to_pylist()]))
    assert groups_span_one_split(fixed) == (True, [])


def test_split_assignment_is_deterministic_and_ratio_like_the_seeded_split():
    n = 6000
    label = np.repeat(np.arange(n // 2), 2)
    splits = ["train", "test"] * (n // 2)  # every pair disagrees: all groups are hashed
    gids = [group_id(f"r{k}") for k in range(n // 2)]
    a = group_splits(label, splits, gids, np.zeros(n, bool)).splits
    assert a == group_splits(label, splits, gids, np.zeros(n, bool)).splits
    assert all(a[2 * k] == a[2 * k + 1] for k in range(n // 2))
    assert 0.77 < a.count("train") / n < 0.83 and 0.08 < a.count("test") / n < 0.12
