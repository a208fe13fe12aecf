"""The plan: which stages and parts of a build are stale, and why, without changing anything.

``shardsmith build --dry-run`` prints it; the sensors and the build ask it the same questions.

The same data versions the steps use decide it: the raw tree is compared by size and mtime with
the fingerprint the last catalog recorded (a touched file is reported as possibly changed; the
build itself re-hashes it), each part's records version is recomputed from the current catalog,
options and key tag, and each game's fingerprint from its files.
"""

from __future__ import annotations

import json
from pathlib import Path

from shardsmith.config import Settings
from shardsmith.pipeline import keys
from shardsmith.sources.registry import get_source
from shardsmith.staging import fingerprint
from shardsmith.staging.layout import WHOLE
from shardsmith.staging.versions import bucket_keys, read_versions


def raw_changes_by_stat(root: Path, previous: fingerprint.State) -> dict[str, list[str]]:
    """Files added, removed, or touched (size or mtime differ) since ``previous``; no hashing."""
    seen = {rel: (st.st_size, st.st_mtime_ns) for rel, _, st in fingerprint.walk_files(root)}
    return {
        "added": sorted(set(seen) - set(previous)),
        "removed": sorted(set(previous) - set(seen)),
        "touched": sorted(p for p in set(seen) & set(previous)
                          if tuple(previous[p][:2]) != seen[p]),
    }


def _step(step: str, would: str, why: str) -> dict:
    return {"step": step, "would": would, "why": why}


def plan_medical(settings: Settings, name: str) -> list[dict]:
    layout = settings.layout
    source = get_source(name, settings)
    versions = read_versions(layout, name)
    out = []
    if not versions.get("catalog") or not layout.catalog(name).is_file():
        out.append(_step(keys.catalog(name), "recompute", "never built"))
        out.append(_step(keys.records(name), "recompute", "every part: never built"))
        return out
    diff = raw_changes_by_stat(settings.raw_dir(name), versions.get("raw", {}))
    expected = fingerprint.digest(versions.get("raw", {}), source.adapter_version, "catalog")
    if expected != versions["catalog"]:
        out.append(_step(keys.catalog(name), "recompute", f"adapter version is now {source.adapter_version}"))
    elif any(diff.values()):
        counts = ", ".join(f"{len(v)} {k}" for k, v in diff.items() if v)
        out.append(_step(keys.catalog(name), "recompute", f"raw tree changed: {counts} (by size/mtime)"))
    else:
        out.append(_step(keys.catalog(name), "reuse", f"raw tree unchanged ({len(versions.get('raw', {}))} files)"))
    if out[-1]["would"] == "recompute":
        out.append(_step(keys.records(name), "depends", "after the new catalog: the parts whose items, "
                                                      "adapter or options changed"))
        return out
    from shardsmith.staging.steps import part_versions

    parts = bucket_keys(settings.buckets) if source.partitioned else [WHOLE]
    have = versions.get("records", {})
    # the same digests the records step compares, from one streamed pass over the catalog
    for part, (version, items) in part_versions(settings, source, parts).items():
        label = keys.records(name) + (f"[{part}]" if part != WHOLE else "")
        if part not in have:
            out.append(_step(label, "recompute", "never built"))
        elif have[part] != version:
            out.append(_step(label, "recompute", f"{items} items; their rows, the adapter, the image or "
                                                 "volume options or the pseudonym key changed"))
        else:
            out.append(_step(label, "reuse", f"{items} items, inputs unchanged"))
    return out


def plan_games(settings: Settings) -> list[dict]:
    from shardsmith.staging.games import discover_all, game_fingerprint

    layout = settings.layout
    out = []
    games, _ = discover_all(settings)
    for source, refs in games.items():
        todo = []
        for ref in refs:
            counts = layout.game_counts(source, ref.game_id)
            old = json.loads(counts.read_text()).get("input_fingerprint") if counts.is_file() else None
            if old != game_fingerprint(settings, ref):
                todo.append(ref.game_id)
        why = (f"{len(todo)} of {len(refs)} games new or changed" if todo
               else f"{len(refs)} games unchanged")
        out.append(_step(f"{keys.UTTERANCES}[{source}]", "recompute" if todo else "reuse", why))
    return out


def _release_step(settings: Settings, collection: str, changed: bool, what: str) -> dict:
    from shardsmith.publish.release import read_latest

    root = settings.releases / collection
    if not (root.is_dir() and read_latest(root)):
        return _step(keys.release(collection), "recompute", "never published")
    if changed:
        return _step(keys.release(collection), "recompute", f"some {what} change")
    return _step(keys.release(collection), "reuse", f"no {what} change: LATEST reused")


def plan_build(settings: Settings, medical: list[str], games: list[str]) -> dict:
    """Every step of a build of ``medical`` and ``games`` with what it would do and why."""
    steps: list[dict] = []
    for name in medical:
        steps += plan_medical(settings, name)
    if medical:
        changed = any(s["would"] != "reuse" for s in steps)
        steps.append(_release_step(settings, keys.MEDICAL, changed, "source's staging would"))
    if games:
        game_steps = plan_games(settings)
        steps += game_steps
        changed = any(s["would"] != "reuse" for s in game_steps)
        steps.append(_release_step(settings, keys.WEREWOLF, changed, "games"))
    return {"home": str(settings.home), "steps": steps}
