"""The one way files are written in place: a temp file in the same folder, fsynced, renamed over
the target, then the folder fsynced. A reader sees the old file or the new one, never half of
one, and a crash right after the call cannot lose the rename (one durability policy everywhere).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """A hidden sibling of ``path``: same filesystem (rename is atomic), skipped by readers."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def commit(tmp: Path, path: Path) -> None:
    """fsync ``tmp``, rename it over ``path`` and fsync the folder."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` and move the result to ``path`` atomically; cleans up on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(tmp)
        commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any, **kw: Any) -> Path:
    kw.setdefault("sort_keys", True)
    return atomic_write_text(path, json.dumps(obj, **kw))


def write_parquet_atomic(table: pa.Table, path: str | Path, **kw: Any) -> Path:
    """Parquet via the same temp-and-rename path (zstd unless told otherwise)."""
    kw.setdefault("compression", "zstd")
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, **kw))
