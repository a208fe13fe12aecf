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
        elif not all(p.is_file() for p in layout.part_paths(name, part).values()):
            out.append(_step(label, "recompute", "its staged files are missing"))
        elif have[part] != version:
            out.append(_step(label, "recompute", f"{items} items; their rows, the adapter, the image or "
                                                 "volume options or the pseudonym key changed"))
        else:
            out.append(_step(label, "reuse", f"{items} items, inputs unchanged"))
    return out


def plan_games(settings: Settings) -> list[dict]:
    from shardsmith.staging.games import discover_all, game_fingerprint, staged_game_ids

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
        removed = staged_game_ids(settings, source) - {r.game_id for r in refs}
        why = ", ".join(part for part in (f"{len(todo)} of {len(refs)} games new or changed" if todo else "",
                                          f"{len(removed)} staged games gone from raw/" if removed else "") if part)
        out.append(_step(f"{keys.UTTERANCES}[{source}]", "recompute" if todo or removed else "reuse",
                         why or f"{len(refs)} games unchanged"))
    return out


def _release_step(settings: Settings, collection: str, sources: list[str], changed: bool, what: str) -> dict:
    from shardsmith.publish.release import read_latest

    root = settings.releases / collection
    latest = read_latest(root) if root.is_dir() else None
    manifest = root / latest / "manifest.json" if latest else None
    if manifest is None or not manifest.is_file():
        return _step(keys.release(collection), "recompute", "never published")
    published = set(json.loads(manifest.read_text()).get("input_fingerprints", {}))
    if published != set(sources):
        return _step(keys.release(collection), "recompute",
                     f"its sources change: {', '.join(sorted(published ^ set(sources)))}")
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
        steps.append(_release_step(settings, keys.MEDICAL, medical, changed, "source's staging would"))
    if games:
        game_steps = plan_games(settings)
        steps += game_steps
        changed = any(s["would"] != "reuse" for s in game_steps)
        steps.append(_release_step(settings, keys.WEREWOLF, games, changed, "games"))
    return {"home": str(settings.home), "steps": steps}


def read_last_build(settings: Settings) -> dict:
    """What the last ``shardsmith build`` of this home covered and whether it succeeded."""
    path = settings.layout.last_build()
    return json.loads(path.read_text()) if path.is_file() else {}


def write_last_build(settings: Settings, sources: list[str], allow_partial: bool, success: bool) -> None:
    from shardsmith.atomic import atomic_write_json

    atomic_write_json(settings.layout.last_build(), {"sources": sorted(sources), "allow_partial": allow_partial,
                                                     "success": success})


def trusts_plan(settings: Settings, sources: list[str], allow_partial: bool) -> bool:
    """A build may run only the plan's stale steps when the last build of the same sources and
    policy succeeded: then every step the plan calls ``reuse`` passed its checks on exactly the
    data it would reuse. After a failure (or a different selection) everything runs again, so a
    failing check is evaluated and reported again rather than skipped."""
    last = read_last_build(settings)
    return bool(last.get("success")) and last.get("sources") == sorted(sources) \
        and last.get("allow_partial") == allow_partial


def stale_keys(plan: dict) -> set[str]:
    """The asset keys a build must run for ``plan``: a source with any step that is not ``reuse``
    runs its catalog and records (unchanged parts reuse themselves), a game source runs the games
    and utterances assets, and a release runs when its own step is not ``reuse``."""
    out: set[str] = set()
    for step in plan["steps"]:
        if step["would"] == "reuse":
            continue
        info = keys.describe(step["step"].split("[", 1)[0])
        if info.source is not None:
            out.update(keys.source_keys(info.source))
        elif info.stage == keys.UTTERANCES:
            out.update({keys.GAMES, keys.UTTERANCES})
        else:
            out.add(info.key)
    return out


def reused_steps(plan: dict) -> list[str]:
    """The plan's steps that reuse what is staged (a skipped run reports these as reused)."""
    return [s["step"] for s in plan["steps"] if s["would"] == "reuse"]
