"""View validation reads the records of successive chunks forward, not once per chunk."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.publish.build import _RecordCursor


def _files(tmp_path, n: int, per_file: int) -> list:
    files = []
    for lo in range(0, n, per_file):
        ids = [f"r{i:04d}" for i in range(lo, min(lo + per_file, n))]
        f = tmp_path / f"part-{lo}.parquet"
        pq.write_table(pa.table({"record_id": ids, "source": ["s"] * len(ids)}), f, row_group_size=7)
        files.append(f)
    return files


def _ids(batches) -> list[str]:
    return sorted(i for b in batches for i in b.column("record_id").to_pylist())


def _want(*ids: int) -> pa.Array:
    return pa.array(sorted(f"r{i:04d}" for i in ids), pa.string())


def test_chunks_in_record_order_straddle_and_restart(tmp_path):
    cursor = _RecordCursor(_files(tmp_path, 100, 30))
    assert _ids(cursor.select(_want(0, 1, 2))) == ["r0000", "r0001", "r0002"]
    assert _ids(cursor.select(_want(2, 3, 40))) == ["r0002", "r0003", "r0040"]  # r0002 straddles two chunks
    assert _ids(cursor.select(_want(95, 99))) == ["r0095", "r0099"]
    assert _ids(cursor.select(_want(5, 6))) == ["r0005", "r0006"]  # behind the cursor: read again from the top
    assert _ids(cursor.select(_want(7, 7000))) == ["r0007"]  # an id that is no record: the checks report it
    assert _ids(cursor.select(_want(8))) == ["r0008"]
