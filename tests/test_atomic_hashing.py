"""The one atomic write and the one streamed hash."""

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardsmith.atomic import atomic_write, atomic_write_json, atomic_write_text, write_parquet_atomic
from shardsmith.hashing import sha256_file, sha256_files


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"b": 1, "a": 2})
    assert target.read_text() == '{"a": 2, "b": 1}'
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_parquet_atomic(tmp_path):
    path = write_parquet_atomic(pa.table({"x": [1, 2, 3]}), tmp_path / "t.parquet")
    assert pq.read_table(path).column("x").to_pylist() == [1, 2, 3]


def test_sha256_streams_and_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 40_000  # 10 MB: several read chunks
    p = tmp_path / "big.bin"
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()
    q = tmp_path / "small.bin"
    q.write_bytes(b"x")
    assert sha256_files([p, q]) != sha256_files([q, p])


def test_sha256_file_equals_hashing_the_bytes_around_the_one_read_bound(tmp_path):
    import hashlib
    import os

    from shardsmith.hashing import SMALL_FILE, sha256_file

    for size in (0, 7, SMALL_FILE - 1, SMALL_FILE, SMALL_FILE + 1, 3 * SMALL_FILE + 5):
        p = tmp_path / f"f{size}"
        p.write_bytes(os.urandom(size))
        assert sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest(), size
