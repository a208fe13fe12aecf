"""Mirror a SHARDSMITH_HOME's releases to an object store and back via fsspec, proving every byte.

Kept apart from the library on purpose: the library reads and writes a local ``pathlib`` home
(pyarrow, PIL, SimpleITK and the GX runner all want local paths), so an object store is used
either as a mounted filesystem (s3fs/gcsfuse/NFS) or through this helper, which mirrors finished
releases to ``s3://``, ``gs://``, ``az://``, ``memory://``... URLs and back. Needs the fsspec
implementation for the URL's protocol (s3fs, gcsfs, adlfs). A release is its ``manifest.json``:
only the files a manifest lists travel, and each is checked against the sha256 and size it lists.

Pull downloads every version the home lacks into a hidden ``.pull-*`` folder inside the releases
root (one filesystem, so the rename is atomic) and verifies it there; only when every version
verifies are the version folders renamed into place, and ``LATEST`` moves last. A refused pull
leaves every local file as it was and removes what it downloaded. A version the home already holds
is kept when it verifies and its manifest is byte-identical to the remote's; a local copy that
fails verification is replaced by the verified remote one; a remote manifest that differs from the
local one is a conflict (two homes published other content under one number) and refuses the pull.

Push verifies the home first (a damaged release is never mirrored), then uploads each listed file
whose remote copy is missing or has another sha256, removes remote files a version's manifest does
not list from its ``data/`` and ``wds/``, then uploads manifests, then ``LATEST``. A remote version
whose manifest names other content refuses the push. Neither direction moves ``LATEST`` backwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
from filelock import FileLock, Timeout

from shardsmith.atomic import atomic_write_text, fsync_dir
from shardsmith.errors import ShardsmithError
from shardsmith.hashing import sha256_fileobj
from shardsmith.publish.release import LOCK_TIMEOUT_S, verify_tree

# <collection>/v<N>/manifest.json; hidden folders (.tmp-*, .pull-*) are never releases
_MANIFEST_PATH = re.compile(r"([^./][^/]*)/(v\d+)/manifest\.json")
_PULL_PREFIX = ".pull-"
_LOCAL = fsspec.filesystem("file")


class ObjectStoreError(ShardsmithError):
    """A push or pull refused; nothing on the receiving side changed (``reason`` says why)."""

    default_reason = "object_store_refused"

    def __init__(self, detail: str, reason: str | None = None) -> None:
        super().__init__(reason, detail)


class RemoteURLError(ObjectStoreError):
    """The URL names no usable remote: it does not exist, holds no release, or its protocol is
    unavailable (the CLI reports it as a bad URL argument, exit code 2)."""

    default_reason = "remote_not_found"


class PullVerificationError(ObjectStoreError):
    """A remote file does not match the sha256 (or size) its release manifest lists, or the
    remote's manifests or pointers are unusable."""

    default_reason = "checksum_mismatch"


class LocalReleaseError(ObjectStoreError):
    """A local release fails verification, so it is not pushed."""

    default_reason = "local_release_invalid"


class ReleaseConflictError(ObjectStoreError):
    """Both sides hold a version under the same number with different manifests."""

    default_reason = "release_conflict"


@dataclass(frozen=True)
class _Tree:
    """The releases under one root: manifest bytes per (collection, version), LATEST per collection."""

    manifests: dict[tuple[str, str], bytes]
    latest: dict[str, str]


def _rel(path: str, base: str) -> str:
    return path[len(base) + 1:] if path.startswith(base + "/") else path


def _read_tree(fs: Any, base: str) -> _Tree:
    manifests = {}
    for path in fs.glob(f"{base}/*/v*/manifest.json"):
        m = _MANIFEST_PATH.fullmatch(_rel(path, base))
        if m:
            manifests[(m[1], m[2])] = fs.cat_file(path)
    latest = {}
    for coll in sorted({c for c, _ in manifests}):
        pointer = f"{base}/{coll}/LATEST"
        if fs.isfile(pointer):
            latest[coll] = fs.cat_file(pointer).decode().strip()
    return _Tree(manifests, latest)


def _open_remote(url: str, storage_options: dict) -> tuple[Any, str]:
    try:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
    except (ValueError, ImportError) as e:
        raise RemoteURLError(f"cannot open {url}: {e}") from e
    return fs, root.rstrip("/")


def _version_number(version: str | None) -> int:
    """v<N> as N; -1 for no pointer or one that names no version (never newer than anything)."""
    return int(version[1:]) if version and re.fullmatch(r"v\d+", version) else -1


def _digest(manifest: bytes) -> str | None:
    """The content digest a manifest's bytes name, or None when they are not a manifest."""
    try:
        digest = json.loads(manifest).get("content_digest")
    except (ValueError, AttributeError):
        return None
    return str(digest) if digest is not None else None


def _is_safe(path: Any) -> bool:
    """A manifest path stays inside its version folder (a tampered manifest must not write elsewhere)."""
    if not isinstance(path, str) or not path or path.startswith("/"):
        return False
    parts = PurePosixPath(path).parts
    return ".." not in parts and parts[0] != "manifest.json"


def _parse_manifest(data: bytes, where: str, error: type[ObjectStoreError]) -> dict:
    """The manifest of ``where`` (collection/version), or ``error`` when it cannot prove its files."""
    try:
        manifest = json.loads(data)
    except ValueError as e:
        raise error(f"{where}/manifest.json is not JSON: {e}") from e
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not files:
        raise error(f"{where}/manifest.json lists no files, so nothing in it can be verified")
    bad = [e for e in files if not (isinstance(e, dict) and _is_safe(e.get("path"))
                                    and isinstance(e.get("sha256"), str) and isinstance(e.get("size"), int))]
    if bad:
        raise error(f"{where}/manifest.json has unusable file entries: {bad[:3]}")
    version = where.rsplit("/", 1)[1]
    if manifest.get("version", version) != version:
        raise error(f"{where}/manifest.json describes version {manifest['version']!r}")
    return manifest


@contextmanager
def _locks(paths: list[Path]) -> Iterator[None]:
    """Hold the given lock files (the pull lock and each collection's publish lock) or refuse."""
    with ExitStack() as stack:
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(p))
            try:
                lock.acquire(timeout=LOCK_TIMEOUT_S)
            except Timeout:
                raise ObjectStoreError(f"{p} is held by another publish or pull; try later", "locked") from None
            stack.callback(lock.release)
        yield


# pull ------------------------------------------------------------------------------------------

@dataclass
class _PullPlan:
    fetch: list[tuple[str, str]]  # versions to download (absent locally, or a damaged local copy)
    kept: list[tuple[str, str]]  # held locally, verified, same manifest
    latest: dict[str, str]  # LATEST pointers to move
    manifests: dict[tuple[str, str], dict]


def _plan_pull(remote: _Tree, here: _Tree, local: Path, url: str) -> _PullPlan:
    plan = _PullPlan([], [], {}, {})
    for (coll, version), data in sorted(remote.manifests.items()):
        where = f"{coll}/{version}"
        manifest = plan.manifests[(coll, version)] = _parse_manifest(data, where, PullVerificationError)
        mine = here.manifests.get((coll, version))
        if mine is not None and mine != data:
            raise ReleaseConflictError(
                f"{url}/{where} differs from the local {where} (content digest {str(_digest(data))[:12]} there, "
                f"{str(_digest(mine))[:12]} here); a published version is never overwritten: move the local "
                f"one away to take the remote's")
        if mine is not None and not verify_tree(local / coll / version, manifest):
            plan.kept.append((coll, version))
        else:
            plan.fetch.append((coll, version))
    for coll, version in sorted(remote.latest.items()):
        if (coll, version) not in remote.manifests:
            raise PullVerificationError(f"{url}/{coll}/LATEST names {version!r}, which the remote does not hold")
        if _version_number(version) > _version_number(here.latest.get(coll)):
            plan.latest[coll] = version
    return plan


def _download(fs: Any, base: str, tmp: Path, coll: str, version: str, manifest: dict, data: bytes) -> list[str]:
    """Fetch the files ``manifest`` lists into ``tmp/coll/version``; the problems found verifying them
    (a file the remote lacks is reported ``missing``)."""
    dest = tmp / coll / version
    for entry in manifest["files"]:
        target = dest / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fs.get_file(f"{base}/{coll}/{version}/{entry['path']}", str(target))
        except FileNotFoundError:
            pass
    (dest / "manifest.json").write_bytes(data)  # the bytes planned from, not a second read
    return [f"{kind}: {coll}/{version}/{path}"
            for kind, path in (p.split(": ", 1) for p in verify_tree(dest, manifest))]


def _commit(plan: _PullPlan, tmp: Path, local: Path) -> None:
    """Rename each verified version into place (a damaged local copy moved aside first), then LATEST."""
    for coll, version in plan.fetch:
        final = local / coll / version
        final.parent.mkdir(parents=True, exist_ok=True)
        aside = tmp / ".replaced" / coll / version
        if final.exists():
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.rename(final, aside)
        try:
            os.rename(tmp / coll / version, final)
        except OSError:
            if aside.exists():
                os.rename(aside, final)  # the local copy comes back rather than vanishing with tmp
            raise
        fsync_dir(final.parent)
    for coll, version in plan.latest.items():
        atomic_write_text(local / coll / "LATEST", version + "\n")


def pull(url: str, local: Path, **storage_options: Any) -> dict[str, Any]:
    """Download the releases under ``url`` into the releases root ``local``, all or nothing.

    Returns ``downloaded`` (files), ``versions`` (fetched), ``kept`` (already here and verified) and
    ``latest`` (pointers moved). Raises RemoteURLError when ``url`` is missing or holds no release,
    PullVerificationError when a remote file fails its manifest, ReleaseConflictError when a version
    differs from the local one; every local file is then as it was.
    """
    fs, base = _open_remote(url, storage_options)
    if not fs.exists(base):
        raise RemoteURLError(f"{url} does not exist")
    remote = _read_tree(fs, base)
    if not remote.manifests:
        raise RemoteURLError(f"{url} holds no release (no <collection>/v<N>/manifest.json under it)")
    local.mkdir(parents=True, exist_ok=True)
    colls = sorted({c for c, _ in remote.manifests})
    with _locks([local / ".pull.lock"] + [local / c / ".publish.lock" for c in colls]):
        for stale in local.glob(f"{_PULL_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)  # an interrupted pull's downloads
        plan = _plan_pull(remote, _read_tree(_LOCAL, str(local)), local, url)
        tmp = local / f"{_PULL_PREFIX}{uuid.uuid4().hex}"
        try:
            problems = []
            for key in plan.fetch:
                problems += _download(fs, base, tmp, *key, plan.manifests[key], remote.manifests[key])
            if problems:
                raise PullVerificationError(f"{url}: {len(problems)} file(s) fail verification, nothing "
                                            f"changed locally: {problems[:5]}")
            _commit(plan, tmp, local)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"downloaded": sum(len(plan.manifests[k]["files"]) + 1 for k in plan.fetch),
            "versions": [f"{c}/{v}" for c, v in plan.fetch], "kept": [f"{c}/{v}" for c, v in plan.kept],
            "latest": plan.latest}


# push ------------------------------------------------------------------------------------------

def _remote_matches(fs: Any, path: str, entry: dict) -> bool:
    """The remote file exists with the size and sha256 the manifest lists (size first: cheap)."""
    try:
        if fs.info(path)["size"] != entry["size"]:
            return False
    except FileNotFoundError:
        return False
    with fs.open(path, "rb") as fh:
        return sha256_fileobj(fh) == entry["sha256"]


def _check_push(local: Path, here: _Tree, there: _Tree, url: str) -> dict[tuple[str, str], dict]:
    """Every local release verified and no remote version under the same number with other content."""
    manifests = {}
    for (coll, version), data in sorted(here.manifests.items()):
        where = f"{coll}/{version}"
        manifest = manifests[(coll, version)] = _parse_manifest(data, where, LocalReleaseError)
        problems = verify_tree(local / coll / version, manifest)
        if problems:
            raise LocalReleaseError(f"local {where} fails verification, nothing pushed: {problems[:5]}")
        theirs = there.manifests.get((coll, version))
        digest = _digest(theirs) if theirs is not None and theirs != data else None  # unreadable: repaired
        if digest is not None and digest != _digest(data):
            raise ReleaseConflictError(f"{url}/{where} is another release (content digest {digest[:12]}, "
                                       f"local {str(_digest(data))[:12]}); nothing pushed")
    return manifests


def push(local: Path, url: str, **storage_options: Any) -> dict[str, int]:
    """Upload the releases under ``local`` to ``url``: data files whose remote sha256 differs, then
    manifests, then ``LATEST``, so a reader never sees a pointer to files still uploading. Returns
    counts of files ``uploaded``, ``skipped`` (remote copy already right) and ``removed`` (unlisted)."""
    here = _read_tree(_LOCAL, str(local))
    if not here.manifests:
        raise ObjectStoreError(f"no release under {local} to push", "nothing_to_push")
    fs, base = _open_remote(url, storage_options)
    there = _read_tree(fs, base) if fs.exists(base) else _Tree({}, {})
    manifests = _check_push(local, here, there, url)
    counts = {"uploaded": 0, "skipped": 0, "removed": 0}

    def put(src: Path, dest: str) -> None:
        fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(src), dest)
        counts["uploaded"] += 1

    for (coll, version), manifest in manifests.items():
        vbase = f"{base}/{coll}/{version}"
        for entry in manifest["files"]:
            if _remote_matches(fs, f"{vbase}/{entry['path']}", entry):
                counts["skipped"] += 1
            else:
                put(local / coll / version / entry["path"], f"{vbase}/{entry['path']}")
        listed = {e["path"] for e in manifest["files"]}
        for found in fs.find(f"{vbase}/data") + fs.find(f"{vbase}/wds"):
            if _rel(found, vbase) not in listed:
                fs.rm_file(found)
                counts["removed"] += 1
    for key, data in sorted(here.manifests.items()):
        if there.manifests.get(key) == data:
            counts["skipped"] += 1
        else:
            put(local / key[0] / key[1] / "manifest.json", f"{base}/{key[0]}/{key[1]}/manifest.json")
    for coll, version in sorted(here.latest.items()):
        if (coll, version) in here.manifests and _version_number(version) > _version_number(there.latest.get(coll)):
            put(local / coll / "LATEST", f"{base}/{coll}/LATEST")
    return counts
