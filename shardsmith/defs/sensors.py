"""Sensors: bring in what changed under ``SHARDSMITH_HOME/raw`` without anyone asking.

One sensor per medical source watches its raw folder by content fingerprint (size and mtime
decide what to re-hash; the sha256 decides whether it changed). The fingerprint map lives in a
small state file under ``SHARDSMITH_HOME/.sensors/`` and the cursor holds its digest, so the
cursor stays tiny for a tree of 100k files. A change requests a backfill of the source's catalog,
all its record partitions (unchanged ones skip their decoding by data version) and the release.

The Werewolf sensor turns new games into dynamic partitions of ``werewolf_games`` and requests
runs for new and changed games.
"""


import json
from pathlib import Path

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

from shardsmith.atomic import atomic_write_json
from shardsmith.defs.resources import ShardsmithResource
from shardsmith.hashing import sha256_file
from shardsmith.pipeline import keys as names
from shardsmith.staging import fingerprint


def _load_state(path: Path, cursor: str | None) -> fingerprint.State:
    """The previous fingerprint map, if it matches the cursor (otherwise start over)."""
    if not cursor or not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data["files"] if data.get("digest") == cursor else {}


def _save_state(path: Path, state: fingerprint.State, digest: str) -> None:
    atomic_write_json(path, {"digest": digest, "files": state})


def raw_change_sensor(source: str, asset_keys: list[dg.AssetKey]) -> dg.SensorDefinition:
    """Sensor that requests ``asset_keys`` (catalog, records, release) when ``raw/<source>`` changes."""

    @dg.sensor(
        name=f"{source}_raw_changes", minimum_interval_seconds=60, asset_selection=asset_keys,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"New, changed or removed files under raw/{source} (by sha256) -> rebuild {source}.",
    )
    def _sensor(context: dg.SensorEvaluationContext, shardsmith: ShardsmithResource) -> dg.SensorResult | dg.SkipReason:
        settings = shardsmith.settings()
        root = settings.raw_dir(source)
        if not root.is_dir():
            return dg.SkipReason(f"{root} does not exist")
        path = settings.layout.sensor_state(source)
        old = _load_state(path, context.cursor)
        new = fingerprint.scan(root, old)
        digest = fingerprint.digest(new)
        if digest == context.cursor:
            return dg.SkipReason(f"raw/{source}: {len(new)} files, no content change")
        diff = fingerprint.changes(old, new)
        _save_state(path, new, digest)
        summary = ", ".join(f"{len(v)} {k}" for k, v in diff.items())
        context.log.info(f"raw/{source}: {summary}; requesting a rebuild")
        subset = AssetGraphSubset.from_asset_keys(asset_keys, context.repository_def.asset_graph)
        request = dg.RunRequest.for_asset_graph_subset(
            subset, tags={"shardsmith/source": source, "shardsmith/raw_digest": digest[:16]})
        return dg.SensorResult(run_requests=[request], cursor=digest)

    return _sensor


def werewolf_games_sensor(games_def: dg.DynamicPartitionsDefinition,
                          asset_keys: list[dg.AssetKey]) -> dg.SensorDefinition:
    """Adds new games as dynamic partitions and requests runs for new or changed games."""

    @dg.sensor(
        name="werewolf_new_games", minimum_interval_seconds=60, asset_selection=asset_keys or None,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="New or changed Werewolf games under raw/werewolf* -> dynamic partitions + runs.",
    )
    def _sensor(context: dg.SensorEvaluationContext, shardsmith: ShardsmithResource) -> dg.SensorResult | dg.SkipReason:
        from shardsmith.staging.games import game_files

        games = game_files(shardsmith.settings())
        previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        current: dict[str, str] = {}
        for game, files in games.items():
            state = {p.name: [0, 0, sha256_file(p)] for p in files if p.is_file()}
            current[game] = fingerprint.digest(state)
        known = set(context.instance.get_dynamic_partitions(games_def.name))
        new = sorted(set(current) - known)
        changed = sorted(g for g in set(current) & set(previous) if current[g] != previous[g])
        removed = sorted(known - set(current))
        if not (new or changed or removed) and current == previous:
            return dg.SkipReason(f"{len(current)} games, nothing new")
        requests = []
        if new:
            requests.append(games_def.build_add_request(new))
        if removed:
            requests.append(games_def.build_delete_request(removed))
        runs = [dg.RunRequest(partition_key=g, asset_selection=asset_keys, run_key=f"{g}:{current[g][:16]}",
                              tags={"shardsmith/game": g}) for g in new + changed] if asset_keys else []
        context.log.info(f"werewolf: {len(new)} new, {len(changed)} changed, {len(removed)} removed games")
        return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=requests,
                               cursor=json.dumps(current, sort_keys=True))

    return _sensor


def build_sensors(assets: list, games_def: dg.DynamicPartitionsDefinition | None) -> list[dg.SensorDefinition]:
    """One raw-change sensor per medical source (from the registry), and the new-games sensor."""
    from shardsmith.sources.registry import game_source_names, medical_source_names

    sensors = []
    for name in medical_source_names():
        keys = [dg.AssetKey(k) for k in [*names.source_keys(name), names.release(names.MEDICAL)]]
        sensors.append(raw_change_sensor(name, keys))
    if games_def is None or not game_source_names():
        return sensors
    keys = [k for a in assets if isinstance(a, dg.AssetsDefinition)
            and getattr(a.partitions_def, "name", None) == games_def.name for k in a.keys]
    sensors.append(werewolf_games_sensor(games_def, keys))
    return sensors
