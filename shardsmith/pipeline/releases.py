"""The release step of a collection, the one path every caller takes (Dagster asset, CLI, script).

Policy, in order: sources that failed to stage refuse the release unless ``allow_partial`` (then
it is built without them and the card says why); when no enabled source's staging changed since
LATEST, LATEST is reused; otherwise ``publish.build.assemble_release`` runs identity -> views ->
validation of the rows as published -> publish.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shardsmith.config import Settings
from shardsmith.hashing import sha256_file
from shardsmith.publish.build import ValidationFailedError, assemble_release
from shardsmith.publish.release import PublishResult, TableInput, read_latest
from shardsmith.schemas.tables import COLLECTION_TABLES, TABLES

log = logging.getLogger(__name__)

__all__ = ["PartialReleaseRefusedError", "ReleaseOutcome", "ValidationFailedError", "build_release",
           "release_step"]


def staging_files(settings: Settings, sources: list[str], table: str) -> list[Path]:
    """Staging Parquet of ``table`` for ``sources`` in a fixed order (sources sorted, parts sorted)."""
    layout = settings.layout
    return [f for source in sorted(sources) for f in layout.table_files(source, table)]


def source_fingerprint(settings: Settings, source: str) -> str:
    """Digest of what a source's staging holds: every staged Parquet file's path and content."""
    h = hashlib.sha256()
    d = settings.layout.source_dir(source)
    for p in sorted(d.rglob("*.parquet")):
        if p.name.startswith("."):
            continue
        h.update(p.relative_to(d).as_posix().encode())
        h.update(bytes.fromhex(sha256_file(p)))
    return h.hexdigest()


def enabled_sources(settings: Settings, collection: str) -> list[str]:
    """Sources of ``collection`` with raw data present and something staged for the release."""
    from shardsmith.sources.registry import source_names

    layout = settings.layout
    first = COLLECTION_TABLES[collection][0]
    failed = failed_sources(settings, collection)
    return [n for n in source_names(collection)
            if settings.raw_dir(n).is_dir() and n not in failed and layout.has_table(n, first)]


def failed_sources(settings: Settings, collection: str) -> dict[str, dict]:
    """Sources of ``collection`` whose last staging attempt failed as a whole, with the reason, and
    source modules or plugins that could not be imported (their collection is unknown, so they
    count against every release: a release must not quietly lack a source because its code broke)."""
    from shardsmith.sources.registry import load_failures, source_names

    layout = settings.layout
    out = {}
    for n in source_names(collection):
        marker = layout.source_failure(n)
        if settings.raw_dir(n).is_dir() and marker.is_file():
            out[n] = json.loads(marker.read_text())
    for failure in load_failures():
        out[failure.origin] = {"source": failure.origin, "reason": "not_loaded", "detail": failure.error}
    return out


class PartialReleaseRefusedError(RuntimeError):
    """Some sources failed to stage; a release without them needs ``allow_partial``."""


def check_partial(settings: Settings, collection: str) -> dict[str, dict]:
    """The failed sources a release would leave out; raises unless ``settings.allow_partial``."""
    failed = failed_sources(settings, collection)
    if failed and not settings.allow_partial:
        detail = "; ".join(f"{s}: {f.get('detail', '')[:300]}" for s, f in sorted(failed.items()))
        raise PartialReleaseRefusedError(
            f"{collection}: source(s) {sorted(failed)} failed to stage, so the release is refused "
            f"(allow_partial / --allow-partial publishes without them): {detail}")
    return failed


def partial_card_note(failed: dict[str, dict]) -> str:
    """The card section that says a release was built without some sources, and why."""
    if not failed:
        return ""
    lines = ["## Built without some sources", "",
             "This release was published with `allow_partial`: these sources failed to stage and are "
             "not in it.", "", "| source | reason | detail |", "| --- | --- | --- |"]
    lines += [f"| {s} | {f.get('reason', '')} | {str(f.get('detail', '')).replace('|', '/')[:200]} |"
              for s, f in sorted(failed.items())]
    return "\n".join(lines) + "\n"


def unchanged_release(settings: Settings, collection: str, fingerprints: dict[str, str]) -> dict | None:
    """The LATEST manifest when it was built from exactly these staging fingerprints, else None.

    Validation and packing are the expensive part of a release; when no source's staging changed
    the result would be the same content, so the release step reuses LATEST instead.
    """
    coll = settings.releases / collection
    latest = read_latest(coll) if coll.is_dir() else None
    if not latest:
        return None
    manifest_path = coll / latest / "manifest.json"
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    return manifest if manifest.get("input_fingerprints") == dict(sorted(fingerprints.items())) else None


def build_release(settings: Settings, collection: str, sources: list[str],
                  crash_hook: Callable[[str], None] | None = None) -> PublishResult:
    """Publish ``collection`` from the staging of ``sources`` (always validates and writes; the
    reuse of an unchanged LATEST is :func:`release_step`'s).

    Sources that failed to stage refuse the release unless ``settings.allow_partial``; then they
    are left out and the card says why.
    """
    failed = check_partial(settings, collection)
    sources = [s for s in sources if s not in failed]
    tables = [TableInput(TABLES[name], files) for name in COLLECTION_TABLES[collection]
              if (files := staging_files(settings, sources, name))]
    if not tables:
        raise ValueError(f"nothing staged for collection {collection!r} (sources: {sources})")
    fingerprints = {s: source_fingerprint(settings, s) for s in sorted(sources)}
    note = partial_card_note(failed)
    if collection == "werewolf":
        from shardsmith.werewolf.speech_card import speech_card_section

        note = "\n".join(n for n in (note, speech_card_section(settings, sources)) if n)
    return assemble_release(settings, collection, tables, fingerprints, note, crash_hook)




@dataclass
class ReleaseOutcome:
    """What the release step did: a new (or identical, hence existing) version, or LATEST reused."""

    collection: str
    version: str
    recomputed: bool  # False: no staging changed, LATEST reused without validating again
    created: bool  # a new version folder was written
    content_digest: str
    sources: list[str]
    row_counts: dict
    path: Path
    left_out: dict[str, dict] = field(default_factory=dict)  # sources left out under allow_partial


def release_step(settings: Settings, collection: str,
                 say: Callable[[str], None] = log.info) -> ReleaseOutcome:
    """Publish ``collection`` from what its sources staged, or reuse LATEST when nothing changed.

    Raises :class:`PartialReleaseRefusedError` when a source failed to stage (and not
    ``settings.allow_partial``), ``ValidationFailedError`` when a check fails: nothing is published.
    """
    left_out = check_partial(settings, collection)
    if left_out:
        log.warning("publishing %s without %s (allow_partial)", collection, sorted(left_out))
    sources = enabled_sources(settings, collection)
    fingerprints = {s: source_fingerprint(settings, s) for s in sorted(sources)}
    same = unchanged_release(settings, collection, fingerprints)
    if same is not None:
        version = read_latest(settings.releases / collection)
        say(f"staging unchanged since {collection}/{version}; release reused")
        return ReleaseOutcome(collection, version, False, False, same["content_digest"], sources,
                              same["row_counts"], settings.releases / collection / version, left_out)
    say(f"publishing {collection} release from {sources}")
    result = build_release(settings, collection, sources)
    return ReleaseOutcome(collection, result.version, True, result.created, result.content_digest, sources,
                          result.row_counts, result.path, left_out)
