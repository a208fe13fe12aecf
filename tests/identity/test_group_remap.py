"""The release-time remap of records to their duplicate group and the group's split."""

from __future__ import annotations

import pyarrow as pa

from shardsmith.identity.stage import GroupRemap

GROUPS = pa.table({"record_id": [f"r{i}" for i in range(10)],
                   "duplicate_group": [f"g{i // 2}" for i in range(10)],
                   "split": ["test" if i // 2 == 1 else "train" for i in range(10)]})


def _records(ids: list[str]) -> pa.Table:
    return pa.table({"record_id": ids, "duplicate_group": pa.nulls(len(ids), pa.string()),
                     "split": ["val"] * len(ids), "other": list(range(len(ids)))})


def _expect(ids: list[str]) -> list[tuple]:
    by_id = {r["record_id"]: (r["duplicate_group"], r["split"]) for r in GROUPS.to_pylist()}
    return [(i, *by_id.get(i, (None, "val"))) for i in ids]


def _got(t: pa.Table) -> list[tuple]:
    return list(zip(t.column("record_id").to_pylist(), t.column("duplicate_group").to_pylist(),
                    t.column("split").to_pylist(), strict=True))


def test_batches_in_grouping_order_follow_the_cursor_twice():
    remap = GroupRemap(GROUPS)
    for _ in range(2):  # the views pass, then the release writer's pass from the start again
        for lo in range(0, 10, 3):
            ids = [f"r{i}" for i in range(lo, min(lo + 3, 10))]
            out = remap(_records(ids))
            assert _got(out) == _expect(ids)
            assert out.column("other").to_pylist() == list(range(len(ids)))
        assert remap.pos == 10


def test_batches_out_of_order_and_unknown_records_are_looked_up():
    remap = GroupRemap(GROUPS)
    ids = ["r7", "r2", "nobody", "r3"]
    assert _got(remap(_records(ids))) == _expect(ids)  # the unknown record keeps its own values
    assert _got(remap(_records([]))) == []
