"""What changed between two release versions, table by table and row by row.

Rows are matched on the table's key column (``TableSpec.key_column``); a row is ``changed`` when
the SHA-256 of its full content (every column, media bytes included) differs. Rows are hashed one
record batch at a time, so memory holds one digest per key, never the tables themselves.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from shardsmith.schemas.tables import TABLES


def _canonical(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__bytes_sha256__": hashlib.sha256(value).hexdigest()}
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def row_digest(row: dict) -> str:
    """Content hash of a row: every column, keys sorted, bytes by their own SHA-256."""
    return hashlib.sha256(json.dumps(_canonical(row), sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def table_digests(release_dir: Path, table: str) -> dict[str, str]:
    """``{key: row digest}`` over every split of ``table`` in a release folder."""
    manifest = json.loads((release_dir / "manifest.json").read_text())
    key = TABLES[table].key_column if table in TABLES else None
    out: dict[str, str] = {}
    files = sorted(e["path"] for e in manifest["files"]
                   if e["path"].startswith(f"data/{table}/") and e["path"].endswith(".parquet"))
    for f in files:
        for batch in pq.ParquetFile(release_dir / f).iter_batches(batch_size=256):
            for row in batch.to_pylist():
                k = row.get(key) if key else None
                out[str(k) if k is not None else row_digest(row)] = row_digest(row)
    return out


def diff_releases(path1: str | Path, path2: str | Path) -> dict[str, dict[str, list[str]]]:
    """``{table: {"added": [...], "removed": [...], "changed": [...]}}`` (sorted keys) from the
    release folder ``path1`` (older) to ``path2`` (newer), over every table either one has."""
    p1, p2 = Path(path1), Path(path2)
    m1 = json.loads((p1 / "manifest.json").read_text())
    m2 = json.loads((p2 / "manifest.json").read_text())
    tables = sorted({t for m in (m1, m2) for t, splits in m["row_counts"].items() if splits})
    out: dict[str, dict[str, list[str]]] = {}
    for table in tables:
        a = table_digests(p1, table) if m1["row_counts"].get(table) else {}
        b = table_digests(p2, table) if m2["row_counts"].get(table) else {}
        out[table] = {
            "added": sorted(b.keys() - a.keys()),
            "removed": sorted(a.keys() - b.keys()),
            "changed": sorted(k for k in a.keys() & b.keys() if a[k] != b[k]),
        }
    return out
