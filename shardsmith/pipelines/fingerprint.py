"""Content fingerprints of a raw folder, cheap to refresh (no Dagster import).

A state maps each file's path relative to the root to ``[size, mtime_ns, sha256]``. Refreshing a
state re-hashes only files whose size or mtime changed, so a sensor tick or a rebuild over an
unchanged tree costs one ``stat`` per file; a file touched without a content change keeps its
digest, so it does not count as a change.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

State = dict[str, list]  # relpath -> [size, mtime_ns, sha256]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def scan(root: Path, previous: State | None = None) -> State:
    """Fingerprint every regular file under ``root`` (hidden files skipped), reusing ``previous``."""
    previous = previous or {}
    state: State = {}
    if not root.is_dir():
        return state
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            rel = path.relative_to(root).as_posix()
            old = previous.get(rel)
            if old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
                state[rel] = list(old)
            else:
                state[rel] = [st.st_size, st.st_mtime_ns, sha256_file(path)]
    return state


def changes(old: State, new: State) -> dict[str, list[str]]:
    """Which paths were added, removed or changed in content between two states."""
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(p for p in set(old) & set(new) if old[p][2] != new[p][2]),
    }


def digest(state: State, *extra: str) -> str:
    """One digest of the tree's content (paths and file hashes, not mtimes) plus ``extra`` strings."""
    h = hashlib.sha256()
    for e in extra:
        h.update(e.encode())
        h.update(b"\0")
    for rel in sorted(state):
        h.update(rel.encode())
        h.update(b"\0")
        h.update(state[rel][2].encode())
    return h.hexdigest()
