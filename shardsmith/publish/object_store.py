"""Copy a SHARDSMITH_HOME's releases (or any sub-tree) to and from an object store via fsspec.

Kept apart from the library on purpose: the library reads and writes a local ``pathlib`` home
(pyarrow, PIL, SimpleITK and the GX runner all want local paths), so an object store is used
either as a mounted filesystem (s3fs/gcsfuse/NFS) or through this helper, which mirrors finished
trees (releases, staging) to ``s3://``, ``gs://``, ``az://``, ``memory://``... URLs and back.
Needs the fsspec implementation for the URL's protocol (s3fs, gcsfs, adlfs).
"""

from __future__ import annotations

import json
from pathlib import Path

import fsspec

from shardsmith.hashing import sha256_file


class PullVerificationError(RuntimeError):
    """A pulled file does not match the sha256 (or size) its release manifest lists."""


def _upload_rank(rel: str) -> tuple[int, str]:
    """Data first, then each version's ``manifest.json``, then ``LATEST`` pointers last."""
    name = rel.rsplit("/", 1)[-1]
    return ({"manifest.json": 1, "LATEST": 2}.get(name, 0), rel)


def push(local: Path, url: str, **storage_options) -> dict[str, int]:
    """Upload files under ``local`` to ``url`` (same relative layout); skips data files already
    there with the same size. Every version's files go first, then the manifests, then ``LATEST``,
    so a reader never sees a LATEST (or a manifest) that points at files still uploading."""
    fs, root = fsspec.core.url_to_fs(url, **storage_options)
    files = sorted((p.relative_to(local).as_posix() for p in local.rglob("*")
                    if p.is_file() and not p.name.startswith(".")), key=_upload_rank)
    sent = skipped = 0
    for rel in files:
        p = local / rel
        dest = f"{root.rstrip('/')}/{rel}"
        if _upload_rank(rel)[0] == 0 and fs.exists(dest) and fs.size(dest) == p.stat().st_size:
            skipped += 1
            continue
        fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(p), dest)
        sent += 1
    return {"uploaded": sent, "skipped": skipped}


def verify_pulled(local: Path, manifests: list[str] | None = None) -> list[str]:
    """Re-hash every file each ``manifest.json`` under ``local`` (or those given, relative to
    ``local``) lists; the problems found."""
    problems = []
    for mf in sorted(local.rglob("manifest.json")) if manifests is None else [local / m for m in manifests]:
        manifest = json.loads(mf.read_text())
        for entry in manifest.get("files", []):
            p = mf.parent / entry["path"]
            where = p.relative_to(local).as_posix()
            if not p.is_file():
                problems.append(f"missing: {where}")
            elif p.stat().st_size != entry["size"] or sha256_file(p) != entry["sha256"]:
                problems.append(f"checksum mismatch: {where}")
    return problems


def pull(url: str, local: Path, **storage_options) -> int:
    """Download everything under ``url`` into ``local`` and verify every file against its
    release's manifest (sha256 and size) before writing ``LATEST``; returns the number of files.

    Raises PullVerificationError on a tampered, truncated or missing file; ``LATEST`` is then
    not updated, so a local reader keeps the previous release.
    """
    fs, root = fsspec.core.url_to_fs(url, **storage_options)
    base = root.rstrip("/")
    rels = sorted((src[len(base) + 1:] if src.startswith(base + "/") else src.rsplit("/", 1)[-1]
                   for src in fs.find(root)), key=_upload_rank)
    latest = [r for r in rels if _upload_rank(r)[0] == 2]
    for rel in [r for r in rels if r not in latest]:
        dest = local / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(f"{base}/{rel}", str(dest))
    problems = verify_pulled(local, [r for r in rels if _upload_rank(r)[0] == 1])
    if problems:
        raise PullVerificationError(f"{url}: {len(problems)} file(s) fail verification: {problems[:5]}")
    for rel in latest:
        dest = local / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(f"{base}/{rel}", str(dest))
    return len(rels)
