"""Group-aware splits: every record of a duplicate group lands in one split, deterministically.

Rule, per group (a singleton is a group of one):
1. If any member's split is official (the source publishes it: NIH's test list, an official test
   set), the group takes the most restrictive official split among its members: test > val >
   train. An official test image never moves to train because a copy of it sits in another
   source's train split; the copy follows it into test instead.
2. Otherwise, if all members already agree (a singleton, or one patient's images, which the
   adapters split by patient), that split is kept: grouping changes nothing it does not have to.
3. Otherwise (copies whose seeded splits disagree), ``seeded_split(seed, "group", key)``: the same
   public seed and train/val/test fractions the adapters use per patient, now per group. The key
   is the group's smallest ``raw_sha256`` (a public digest of raw bytes), never a pseudonym or a
   record id derived from one (RSNA's), so the split does not change with the pseudonym key.

Which splits are official comes from a boolean ``split_official`` column when the input has one;
without it every member's split counts as official (rule 1 for all), the safe reading: it can only
move records towards test, never an official test record out of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shardsmith.config import DEFAULT_SPLIT_SEED
from shardsmith.pseudonym import seeded_split

__all__ = ["SPLIT_ORDER", "GroupSplits", "assign_splits", "group_draw_keys",
           "group_splits", "groups_span_one_split"]

SPLIT_ORDER = ("train", "val", "test")  # least to most restrictive
_RANK = {s: k for k, s in enumerate(SPLIT_ORDER)}


class GroupSplits(NamedTuple):
    """Split per record, whether it is official (its group has an official member: rule 1), and how
    many records grouping moved out of their own split and why: ``moved_official`` followed an
    official split of another member (rule 1), ``moved_seeded`` took the group's seeded draw because
    the members' seeded splits disagreed (rule 3)."""

    splits: list[str]
    official: np.ndarray
    moved_official: int
    moved_seeded: int


def group_splits(
    label: np.ndarray,
    splits: Sequence[str | None],
    group_keys: Sequence[str],
    official: np.ndarray | None,
    seed: str = DEFAULT_SPLIT_SEED,
) -> GroupSplits:
    """Split per record from component labels (0..G-1), current splits and per-component draw keys
    (public: see the module docstring), with the counts of records that changed split."""
    label = np.asarray(label, dtype=np.int64)
    ngroups = len(group_keys)
    unknown = sorted({s for s in splits if s is not None and s not in _RANK})
    if unknown:
        raise ValueError(f"unknown split value(s) {unknown}; expected {SPLIT_ORDER}")
    rank = np.array([_RANK[s] if s is not None else -1 for s in splits], dtype=np.int64)
    known = rank >= 0
    is_official = known if official is None else (np.asarray(official, dtype=bool) & known)
    off_max = np.full(ngroups, -1, np.int64)
    np.maximum.at(off_max, label[is_official], rank[is_official])
    lo = np.full(ngroups, len(SPLIT_ORDER), np.int64)
    hi = np.full(ngroups, -1, np.int64)
    np.minimum.at(lo, label[known], rank[known])
    np.maximum.at(hi, label[known], rank[known])
    out_rank = np.where(off_max >= 0, off_max, np.where((lo == hi) & (hi >= 0), hi, -1))
    drawn = np.flatnonzero(out_rank < 0)
    for g in drawn.tolist():
        out_rank[g] = _RANK[seeded_split(seed, "group", group_keys[g])]
    per_record = out_rank[label]
    moved = known & (per_record != rank)
    by_official = (off_max >= 0)[label]
    return GroupSplits([SPLIT_ORDER[r] for r in per_record.tolist()], by_official,
                       int((moved & by_official).sum()), int((moved & ~by_official).sum()))


def group_draw_keys(label: np.ndarray, fallback: Sequence[str], raw_sha256: pa.Array | None) -> list[str]:
    """The public key each group's seeded draw hashes: its smallest non-null ``raw_sha256`` (the
    digest of a raw file, the same at every site whatever its pseudonym key); ``fallback[g]`` (the
    group id) only for a group none of whose records has one."""
    keys = list(fallback)
    if raw_sha256 is None:
        return keys
    sha = raw_sha256.to_numpy(zero_copy_only=False)
    valid = np.flatnonzero(pc.is_valid(raw_sha256).to_numpy(zero_copy_only=False))
    if not len(valid):
        return keys
    order = valid[np.lexsort((sha[valid].astype(str), label[valid]))]  # by group, then digest
    lab = label[order]
    _, first = np.unique(lab, return_index=True)
    for g, k in zip(lab[first].tolist(), order[first].tolist(), strict=True):
        keys[g] = str(sha[k])
    return keys


def assign_splits(table: pa.Table, seed: str = DEFAULT_SPLIT_SEED) -> dict[str, str]:
    """record_id -> split for a table with record_id, duplicate_group, split (and optionally
    split_official and raw_sha256), applying the rule in the module docstring to each duplicate_group."""
    groups = table.column("duplicate_group").combine_chunks()
    enc = pc.dictionary_encode(groups)
    label = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    official = None
    if "split_official" in table.column_names:
        official = table.column("split_official").fill_null(False).to_numpy()
    sha = table.column("raw_sha256").combine_chunks() if "raw_sha256" in table.column_names else None
    keys = group_draw_keys(label, enc.dictionary.to_pylist(), sha)
    splits = group_splits(label, table.column("split").to_pylist(), keys, official, seed).splits
    return dict(zip(table.column("record_id").to_pylist(), splits, strict=True))


def groups_span_one_split(table: pa.Table, max_examples: int = 5) -> tuple[bool, list[dict]]:
    """Blocking check: no duplicate_group has records in two splits. Returns (passed, examples) where
    each example names a group, its splits and a few of its record ids."""
    t = table.select(["duplicate_group", "split", "record_id"]).filter(pc.is_valid(table["duplicate_group"]))
    per = t.group_by("duplicate_group").aggregate([("split", "count_distinct"), ("split", "distinct"),
                                                   ("record_id", "list")])
    bad = per.filter(pc.greater(per["split_count_distinct"], 1)).sort_by("duplicate_group")
    examples = [
        {"duplicate_group": r["duplicate_group"], "splits": sorted(r["split_distinct"]),
         "record_ids": sorted(r["record_id_list"])[:5]}
        for r in bad.slice(0, max_examples).to_pylist()
    ]
    return bad.num_rows == 0, examples
