"""The duplicates stage of a medical release: group every staged record across sources, then give
each group one split.

It runs at release time over the staged records of the sources being published and caches its
result under ``staging/_identity/`` keyed by the sources' staging fingerprints and the thresholds:
a change in one source re-fingerprints only that source's changed parts (in its records step) and
then re-groups, which is cheap; an unchanged build reuses the cached groups.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shardsmith.atomic import atomic_write_json, write_parquet_atomic
from shardsmith.config import DEFAULT_SPLIT_SEED
from shardsmith.identity.groups import (
    GroupResult,
    find_groups,
    iter_parquet_batches,
    load_thresholds,
    source_pair_counts,
)
from shardsmith.identity.splits import groups_span_one_split

log = logging.getLogger(__name__)
STAGE_VERSION = "3"  # 2: seeded group draws from the public split seed; moved-split counts; 3: image_group


class GroupRemap:
    """Gives each batch of staged records its ``duplicate_group``, the group's ``split`` and whether
    that split is official (``split_official``, and ``split_source`` derived from it: a seeded copy
    that follows an official member's split publishes ``official``).

    The groups table lists records in the order grouping read them, which is the order the release
    writer and the views read them again: a batch is matched against the groups at a cursor,
    checked id for id, with no per-record lookup and no dict of a release's records (100 MB per
    335,000). A batch in any other order is looked up through a hash of the ids; a record the
    groups do not list keeps its own values."""

    def __init__(self, groups: pa.Table) -> None:
        self.ids = groups.column("record_id").combine_chunks()
        self.group = groups.column("duplicate_group").combine_chunks()
        self.split = groups.column("split").combine_chunks()
        self.official = (groups.column("split_official").combine_chunks()
                         if "split_official" in groups.column_names else None)
        self.image_group = (groups.column("image_group").combine_chunks()
                            if "image_group" in groups.column_names else None)
        self.pos = 0

    def _aligned(self, rid: pa.Array) -> int | None:
        n = len(rid)
        for start in (self.pos, 0):
            if start + n <= len(self.ids) and self.ids.slice(start, n).equals(rid):
                return start
        return None

    def __call__(self, table: pa.Table) -> pa.Table:
        if not table.num_rows:
            return table
        rid = table.column("record_id").combine_chunks().cast(pa.string())
        start = self._aligned(rid)
        columns = {"duplicate_group": self.group, "split": self.split}
        if self.official is not None:
            columns["split_official"] = self.official
        if self.image_group is not None:
            columns["image_group"] = self.image_group
        if start is not None:
            self.pos = start + len(rid)
            new = {c: v.slice(start, len(rid)) for c, v in columns.items()}
            found = None
        else:
            idx = pc.index_in(rid, value_set=self.ids)
            new = {c: v.take(idx) for c, v in columns.items()}
            found = pc.is_valid(idx)
        if "split_official" in new:
            new["split_source"] = pc.if_else(new["split_official"], "official", "seeded")
        for col, values in new.items():
            if col not in table.column_names:
                continue
            i = table.schema.get_field_index(col)
            field = table.schema.field(i)
            if found is not None:
                values = pc.if_else(found, values, table.column(col).combine_chunks().cast(values.type))
            table = table.set_column(i, field, values.cast(field.type))
        return table


@dataclass
class Identity:
    groups: pa.Table  # record_id, duplicate_group, split, split_official
    duplicates: pa.Table  # DUPLICATES_SCHEMA
    stats: dict
    recomputed: bool

    def remap(self) -> GroupRemap:
        """The batch transform that gives staged records their group and the group's split."""
        return GroupRemap(self.groups)

    def pair_counts(self) -> list[dict]:
        return source_pair_counts(self.duplicates).to_pylist() if self.duplicates.num_rows else []


def _key(fingerprints: dict[str, str], split_seed: str) -> str:
    h = hashlib.sha256(STAGE_VERSION.encode())
    h.update(split_seed.encode() + b"\0")
    h.update(json.dumps(dict(sorted(fingerprints.items()))).encode())
    h.update(repr(load_thresholds()).encode())
    return h.hexdigest()


def stage_identity(cache_dir: Path, record_files: list[Path], fingerprints: dict[str, str],
                   split_seed: str = DEFAULT_SPLIT_SEED) -> Identity:
    """Groups and duplicates of ``record_files`` (reused from ``cache_dir`` when the inputs match);
    ``split_seed`` is ``Settings.split_seed``, the public seed of seeded group draws."""
    key = _key(fingerprints, split_seed)
    meta_path, groups_path, dup_path = (cache_dir / "identity.json", cache_dir / "groups.parquet",
                                        cache_dir / "duplicates.parquet")
    if meta_path.is_file() and groups_path.is_file() and dup_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            log.info("duplicates: inputs unchanged; cached groups reused")
            return Identity(pq.read_table(groups_path), pq.read_table(dup_path), meta["stats"], False)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="thumbs-", dir=cache_dir) as spill:  # deleted even on error
        result: GroupResult = find_groups(iter_parquet_batches(record_files, batch_size=16_384), spill_dir=spill,
                                          split_seed=split_seed)
    write_parquet_atomic(result.groups, groups_path)
    write_parquet_atomic(result.duplicates, dup_path)
    stats = {k: v for k, v in result.stats.items() if isinstance(v, int | float | str)}
    atomic_write_json(meta_path, {"key": key, "stats": stats}, indent=2)
    log.info("duplicates: %s", json.dumps(stats))
    return Identity(result.groups, result.duplicates, stats, True)


def check_groups(identity: Identity) -> tuple[bool, list]:
    """The blocking check: no duplicate group spans two splits."""
    return groups_span_one_split(identity.groups)


def card_section(identity: Identity) -> str:
    """The card's duplicates section: groups per source pair, and how the splits were assigned."""
    pairs = identity.pair_counts()
    lines = ["## Duplicates across sources", "",
             "The same radiograph re-released under another dataset's name is one `duplicate_group` "
             "(perceptual hash of the stored pixels, verified on a thumbnail; exact copies and the same "
             "pseudonymised patient join groups too). Every group sits in one split, so no radiograph "
             "is in train and test at once. Rows: table `duplicates`.", ""]
    lines += [moved_split_line(identity.stats), ""]
    if not pairs:
        return "\n".join(lines + ["No duplicates were found between or within the sources.", ""])
    lines += ["| source | source | groups |", "| --- | --- | ---: |"]
    lines += [f"| {p['source_a']} | {p['source_b']} | {p['groups']} |" for p in pairs]
    return "\n".join(lines + [""])


def moved_split_line(stats: dict) -> str:
    """How many records grouping moved out of their own split, and why (``splits.GroupSplits``)."""
    official, seeded = int(stats.get("moved_split_official", 0)), int(stats.get("moved_split_seeded", 0))
    return (f"Records moved to another split because of their duplicate group: {official + seeded} "
            f"({official} followed a copy's official split, e.g. into an official test set; {seeded} "
            "took the group's seeded split because the copies' seeded splits disagreed). Official splits "
            "come first; seeded splits hash the public split seed and the native patient id, never the "
            "pseudonym key.")
