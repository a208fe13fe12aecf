"""Group-aware splits: every record of a duplicate group lands in one split, deterministically.

Rule, per group (a singleton is a group of one):
1. If any member's split is official (the source publishes it: NIH's test list, an official test
   set), the group takes the most restrictive official split among its members: test > val >
   train. An official test image never moves to train because a copy of it sits in another
   source's train split; the copy follows it into test instead.
2. Otherwise, if all members already agree (a singleton, or one patient's images, which the
   adapters split by patient), that split is kept: grouping changes nothing it does not have to.
3. Otherwise (copies whose derived splits disagree), ``split_for(group_id)``: the same hash and
   train/val/test fractions the adapters use per patient, now per group.

Which splits are official comes from a boolean ``split_official`` column when the input has one;
without it every member's split counts as official (rule 1 for all), the safe reading: it can only
move records towards test, never an official test record out of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shardsmith.pseudonym import split_for

__all__ = ["SPLIT_ORDER", "assign_group_splits", "assign_splits", "groups_span_one_split"]

SPLIT_ORDER = ("train", "val", "test")  # least to most restrictive
_RANK = {s: k for k, s in enumerate(SPLIT_ORDER)}


def assign_group_splits(
    label: np.ndarray,
    splits: Sequence[str | None],
    group_ids: Sequence[str],
    official: np.ndarray | None,
) -> list[str]:
    """Split per record from component labels (0..G-1), current splits and per-component group ids."""
    label = np.asarray(label, dtype=np.int64)
    ngroups = len(group_ids)
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
    group_split = [
        SPLIT_ORDER[r] if r >= 0 else split_for(gid) for r, gid in zip(out_rank.tolist(), group_ids, strict=True)
    ]
    return [group_split[g] for g in label.tolist()]


def assign_splits(table: pa.Table) -> dict[str, str]:
    """record_id -> split for a table with record_id, duplicate_group, split (and optionally
    split_official), applying the rule in the module docstring to each duplicate_group."""
    groups = table.column("duplicate_group").combine_chunks()
    enc = pc.dictionary_encode(groups)
    label = enc.indices.to_numpy(zero_copy_only=False)
    official = None
    if "split_official" in table.column_names:
        official = table.column("split_official").fill_null(False).to_numpy()
    splits = assign_group_splits(label, table.column("split").to_pylist(), enc.dictionary.to_pylist(), official)
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
