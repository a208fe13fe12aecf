"""Buckets and data versions: what each staged step was built from, so an unchanged input skips
its work, and a stable hash bucket for each native id, so partitions never move between runs.

``versions.json`` (per source, under a file lock because partitions may run in parallel) holds
the raw-tree fingerprint, the catalog version, each part's records version and the stamp of the
last passing check of each part.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock

from shardsmith.atomic import atomic_write_json
from shardsmith.config import Settings
from shardsmith.pseudonym import key_tag
from shardsmith.schemas.records import RECORDS_SCHEMA_VERSION
from shardsmith.staging.layout import StagingLayout


def bucket_keys(buckets: int) -> list[str]:
    return [f"b{i:02d}" for i in range(buckets)]


def bucket_of(native_id: str, buckets: int) -> str:
    """Stable bucket of a native id (sha256, so it never moves between runs or machines)."""
    n = int.from_bytes(hashlib.sha256(native_id.encode()).digest()[:8], "big") % buckets
    return f"b{n:02d}"


def read_versions(layout: StagingLayout, source: str) -> dict:
    path = layout.versions(source)
    return json.loads(path.read_text()) if path.is_file() else {}


@contextmanager
def locked_versions(layout: StagingLayout, source: str) -> Iterator[dict]:
    """Read-modify-write of versions.json under a file lock."""
    path = layout.versions(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        data = read_versions(layout, source)
        yield data
        atomic_write_json(path, data)


def suite_tag() -> str:
    """Digest of the record suites: a changed suite re-runs checks that passed before."""
    from shardsmith.validation.suites import record_suites

    return hashlib.sha256(repr(record_suites()).encode()).hexdigest()[:16]


def records_version(settings: Settings, adapter_version: str, entries: list, catalog_quarantine: list[dict]) -> str:
    """Digest of what a records part is built from: its catalog rows, the adapter, the record
    contract's version, the options that change pixels or labels, a keyed tag of the pseudonym
    key (never the key itself) and the public split seed."""
    h = records_hasher(settings, adapter_version)
    for e in sorted(entries, key=lambda e: (e.item.native_id, e.raw_path)):
        add_catalog_row(h, e.item.native_id, e.raw_path, e.raw_sha256, e.item.to_json())
    return finish_records_version(h, catalog_quarantine)


def records_hasher(settings: Settings, adapter_version: str) -> hashlib._Hash:
    """The start of :func:`records_version`, for callers that stream catalog rows in catalog order
    (sorted by native id, as the catalog is written): same digest, no list of entries."""
    h = hashlib.sha256()
    image, volume = settings.image, settings.volume
    for part in (adapter_version, RECORDS_SCHEMA_VERSION, str(image.max_side), str(image.bit_depth),
                 repr(volume), str(settings.allow_burned_in), key_tag(), settings.split_seed):
        h.update(part.encode() + b"\0")
    return h


def add_catalog_row(h: hashlib._Hash, native_id: str, raw_path: str, raw_sha256: str | None, item_json: str) -> None:
    for part in (native_id, raw_path, raw_sha256 or "", item_json):
        h.update(part.encode() + b"\0")


def finish_records_version(h: hashlib._Hash, catalog_quarantine: list[dict]) -> str:
    h.update(json.dumps(catalog_quarantine, sort_keys=True, default=str).encode())
    return h.hexdigest()
