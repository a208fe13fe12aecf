"""The release step of a collection, the one path every caller takes (Dagster asset, CLI, script).

Policy, in order: sources that failed to stage refuse the release unless ``allow_partial`` (then
it is built without them and the card says why); when no enabled source's staging changed since
LATEST, LATEST is reused; otherwise ``publish.build.build_release`` runs identity -> views ->
validation of the rows as published -> publish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shardsmith.config import Settings
from shardsmith.publish.build import (
    PartialReleaseRefusedError,
    build_release,
    check_partial,
    enabled_sources,
    source_fingerprint,
    unchanged_release,
)
from shardsmith.publish.release import read_latest

log = logging.getLogger(__name__)

__all__ = ["PartialReleaseRefusedError", "ReleaseOutcome", "release_step"]


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
