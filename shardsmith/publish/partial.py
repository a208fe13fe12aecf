"""One source's broken label file fails that source alone; a release then needs its consent to go without it.

Staging records a failure per source (``record_staging_failure``) instead of stopping every other
source; a release over sources with a recorded failure is refused, naming them, unless the caller
allows a partial release, which then publishes without those sources and says so in the card
(``partial_card_note``). A later successful staging of the source clears its failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from shardsmith.config import Settings

FAILURE_FILE = "staging_failed.json"


class SourcesBrokenError(RuntimeError):
    """A release was asked for over sources whose staging failed; names them and their errors."""

    def __init__(self, failures: dict[str, str]):
        self.failures = dict(sorted(failures.items()))
        listed = "; ".join(f"{s}: {e}" for s, e in self.failures.items())
        super().__init__(f"staging failed for {', '.join(self.failures)}; release refused "
                         f"(publish without them with --allow-partial): {listed}"[:4000])


def _failure_path(settings: Settings, source: str) -> Path:
    return settings.staging_dir(source) / FAILURE_FILE


def record_staging_failure(settings: Settings, source: str, error: BaseException | str) -> Path:
    """Mark ``source`` as failed (atomic write); the message should name file and line."""
    path = _failure_path(settings, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = error if isinstance(error, str) else f"{error.__class__.__name__}: {error}"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # private atomic write (no shared helper yet)
    tmp.write_text(json.dumps({"source": source, "error": text}, indent=1))
    os.replace(tmp, path)
    return path


def clear_staging_failure(settings: Settings, source: str) -> None:
    _failure_path(settings, source).unlink(missing_ok=True)


def staging_failures(settings: Settings, sources: list[str]) -> dict[str, str]:
    """Source -> recorded error, for the sources whose last staging failed."""
    out = {}
    for s in sources:
        path = _failure_path(settings, s)
        if path.is_file():
            out[s] = json.loads(path.read_text())["error"]
    return out


def select_sources(settings: Settings, sources: list[str], allow_partial: bool) -> tuple[list[str], dict[str, str]]:
    """(sources to publish, excluded source -> error). Raises SourcesBrokenError unless ``allow_partial``."""
    failures = staging_failures(settings, sources)
    if failures and not allow_partial:
        raise SourcesBrokenError(failures)
    return [s for s in sources if s not in failures], failures


def partial_card_note(excluded: dict[str, str]) -> str:
    """The card section of a partial release: which sources are missing and why (empty when none)."""
    if not excluded:
        return ""
    lines = ["\n## Partial release\n",
             "This release was published with `--allow-partial`: the sources below failed staging and are "
             "**not** in it. Their rows from any earlier release are not carried over.\n",
             "| source | why it is missing |", "| --- | --- |"]
    for source, error in sorted(excluded.items()):
        lines.append(f"| {source} | {error.replace('|', '/').replace(chr(10), ' ')[:300]} |")
    return "\n".join(lines) + "\n"
