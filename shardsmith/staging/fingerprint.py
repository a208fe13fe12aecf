"""Content fingerprints of a raw folder, cheap to refresh (no Dagster import).

A state maps each file's path relative to the root to ``[size, mtime_ns, sha256]``. Refreshing a
state re-hashes only files whose size or mtime changed, so a sensor tick or a rebuild over an
unchanged tree costs one ``stat`` per file; a file touched without a content change keeps its
digest, so it does not count as a change.

The catalog step scans with ``hash_new=False``: a file it has never hashed keeps ``None`` as its
digest (``[size, mtime_ns, None]``) and the worker that decodes it hashes the bytes it reads anyway
(``staging.pool``), so a first build reads every image once, off the parent; the records step then
fills the digests in (``staging.steps.record_raw_digests``). Until then such a file is identified by
its size and mtime (``digest``, ``changes``). A file rewritten with the same size and mtime is not
noticed, as before: size and mtime decide what is hashed again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shardsmith.hashing import sha256_file

State = dict[str, list]  # relpath -> [size, mtime_ns, sha256 or None (not hashed yet)]


def _try_hash(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def walk_files(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(relative posix path, path, stat) of every regular file under ``root``; hidden entries and
    files that cannot be stat-ed (vanished, dangling or looping links: the catalog quarantines them)
    are skipped. Sorted folders, so the walk is deterministic."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:
                continue
            yield path.relative_to(root).as_posix(), path, st


HASH_WINDOW = 512  # files hashed per round: bounded futures and paths, however large the tree


def scan(root: Path, previous: State | None = None, hash_new: bool = True) -> State:
    """Fingerprint every regular file under ``root`` (hidden files skipped), reusing ``previous``.

    Files are hashed as the walk finds them, ``HASH_WINDOW`` at a time on a thread per core: only
    the state itself grows with the tree (a list of every file's ``Path`` and ``stat`` result plus
    one future each held 700 MB for CheXpert's 223,414 images). With ``hash_new=False`` a file with
    no digest in ``previous`` is not hashed (``None``): its reader will hash it; a file that has one
    and was touched is hashed again, so a touch without a content change is still no change."""
    previous = previous or {}
    state: State = {}
    if not root.is_dir():
        return state
    window: list[tuple[str, int, int]] = []

    def hash_window(pool: ThreadPoolExecutor) -> None:
        digests = pool.map(lambda t: _try_hash(root / t[0]), window)
        for (rel, size, mtime), digest_ in zip(window, digests, strict=True):
            if digest_ is not None:
                state[rel] = [size, mtime, digest_]
        window.clear()

    # hashlib and file reads release the GIL: threads hash on every core
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for rel, _path, st in walk_files(root):
            old = previous.get(rel)
            if old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
                state[rel] = old if isinstance(old, list) else list(old)
                continue
            if not hash_new and not (old and old[2]):
                state[rel] = [st.st_size, st.st_mtime_ns, None]
                continue
            window.append((rel, st.st_size, st.st_mtime_ns))
            if len(window) >= HASH_WINDOW:
                hash_window(pool)
        hash_window(pool)
    return dict(sorted(state.items()))


def hash_pending(root: Path, state: State, skip: set[str] | frozenset[str] = frozenset()) -> None:
    """Hash, in place, the files of ``state`` that have no digest yet, except ``skip`` (those a
    worker will hash when it reads them); a file that cannot be read is left without one."""
    todo = [rel for rel, v in state.items() if v[2] is None and rel not in skip]
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for start in range(0, len(todo), HASH_WINDOW):
            window = todo[start:start + HASH_WINDOW]
            for rel, digest_ in zip(window, pool.map(lambda r: _try_hash(root / r), window), strict=True):
                if digest_ is not None:
                    state[rel][2] = digest_


def _token(entry: list) -> str:
    """What identifies a file's content: its sha256, or until it is hashed its size and mtime."""
    return entry[2] if entry[2] else f"unhashed {entry[0]} {entry[1]}"


def changes(old: State, new: State) -> dict[str, list[str]]:
    """Which paths were added, removed or changed in content between two states."""
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(p for p in set(old) & set(new) if _token(old[p]) != _token(new[p])),
    }


def digest(state: State, *extra: str) -> str:
    """One digest of the tree's content (paths and file hashes, not mtimes) plus ``extra`` strings;
    a file not hashed yet counts by its size and mtime."""
    h = hashlib.sha256()
    for e in extra:
        h.update(e.encode())
        h.update(b"\0")
    for rel in sorted(state):
        h.update(rel.encode())
        h.update(b"\0")
        h.update(_token(state[rel]).encode())
    return h.hexdigest()
