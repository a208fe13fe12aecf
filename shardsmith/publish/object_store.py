"""Copy a SHARDSMITH_HOME's releases (or any sub-tree) to and from an object store via fsspec.

Kept apart from the library on purpose: the library reads and writes a local ``pathlib`` home
(pyarrow, PIL, SimpleITK and the GX runner all want local paths), so an object store is used
either as a mounted filesystem (s3fs/gcsfuse/NFS) or through this helper, which mirrors finished
trees (releases, staging) to ``s3://``, ``gs://``, ``az://``, ``memory://``... URLs and back.
Needs the fsspec implementation for the URL's protocol (s3fs, gcsfs, adlfs).
"""

from __future__ import annotations

from pathlib import Path

import fsspec


def push(local: Path, url: str, **storage_options) -> dict[str, int]:
    """Upload files under ``local`` to ``url`` (same relative layout); skips files already there
    with the same size. Manifests (``manifest.json``) and ``LATEST`` go last, so a reader never
    sees a LATEST that points at a release whose files are still uploading."""
    fs, root = fsspec.core.url_to_fs(url, **storage_options)
    files = sorted(p for p in local.rglob("*") if p.is_file() and not p.name.startswith("."))
    last = {"manifest.json", "LATEST"}
    files = [p for p in files if p.name not in last] + [p for p in files if p.name in last]
    sent = skipped = 0
    for p in files:
        dest = f"{root.rstrip('/')}/{p.relative_to(local).as_posix()}"
        if p.name not in last and fs.exists(dest) and fs.size(dest) == p.stat().st_size:
            skipped += 1
            continue
        fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(p), dest)
        sent += 1
    return {"uploaded": sent, "skipped": skipped}

def pull(url: str, local: Path, **storage_options) -> int:
    """Download everything under ``url`` into ``local``; returns the number of files."""
    fs, root = fsspec.core.url_to_fs(url, **storage_options)
    n = 0
    for src in fs.find(root):
        rel = src[len(root.rstrip("/")) + 1:] if src.startswith(root.rstrip("/")) else src.rsplit("/", 1)[-1]
        dest = local / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(src, str(dest))
        n += 1
    return n
