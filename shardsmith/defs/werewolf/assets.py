"""Werewolf assets: games discovered -> one partition per game -> the werewolf release.

``werewolf_games`` scans the three werewolf sources and registers each game as a dynamic
partition. ``werewolf_utterances`` runs one game per partition in the ``gpu`` pool: audio ->
transcript -> speakers -> utterances happen in one step because the library decodes a game's
audio once and hands the samples from stage to stage (splitting them into assets would mean
pickling audio between steps). Games that come with transcripts (WereBench SRTs, Werewolf Among
Us) skip the audio stages inside the same step.
"""

import json
from pathlib import Path

import dagster as dg

from shardsmith.defs.resources import ShardsmithResource
from shardsmith.publish.build import build_release
from shardsmith.staging.games import (
    WEREWOLF_SOURCES,
    build_game,
    discover,
    write_game_staging,
)
from shardsmith.sources.werewolf.base import sha256_files

WEREWOLF_GAMES = dg.DynamicPartitionsDefinition(name="werewolf_games")
CODE_VERSION = "1"
GROUP = "werewolf"


def source_of(game_id: str) -> str:
    """Game ids are ``<source>-<rest>``; sources use underscores, never dashes."""
    source = game_id.split("-", 1)[0]
    if source not in WEREWOLF_SOURCES:
        raise ValueError(f"game id {game_id!r} does not start with a werewolf source name")
    return source


def _game_fingerprint(ref) -> str:
    """Digest of the game's raw files, the code version and the ASR backend choice."""
    import hashlib
    import os

    h = hashlib.sha256(f"{werewolf_utterances_code_version()}|{os.environ.get('SHARDSMITH_ASR_BACKEND', '')}|"
                       f"{os.environ.get('SHARDSMITH_WHISPER_MODEL', '')}|{ref.member}".encode())
    for kind, path in sorted(ref.paths):
        h.update(kind.encode())
        h.update(sha256_files([Path(path)]).encode())
    return h.hexdigest()


def werewolf_utterances_code_version() -> str:
    return CODE_VERSION


def discover_all(raw: Path) -> tuple[dict[str, list[str]], list[dict]]:
    games: dict[str, list[str]] = {}
    skipped: list[dict] = []
    for source in WEREWOLF_SOURCES:
        root = raw / source
        if not root.is_dir():
            continue
        found = discover(source, root)
        games[source] = sorted(g.game_id for g in found.games)
        skipped += [{"source": source, "path": s.path, "reason": s.reason} for s in found.skipped]
    return games, skipped


@dg.asset(name="werewolf_games", group_name=GROUP, kinds={"python"},
          description="Every game under raw/{werewolf_video,werebench,werewolf_among_us}; each becomes "
                      "a partition of werewolf_utterances.")
def werewolf_games(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
    settings = shardsmith.settings()
    games, skipped = discover_all(settings.raw)
    keys = [g for ids in games.values() for g in ids]
    existing = set(context.instance.get_dynamic_partitions(WEREWOLF_GAMES.name))
    new = [k for k in keys if k not in existing]
    if new:
        context.instance.add_dynamic_partitions(WEREWOLF_GAMES.name, new)
    gone = sorted(existing - set(keys))
    for key in gone:
        context.instance.delete_dynamic_partition(WEREWOLF_GAMES.name, key)
    index = settings.staging / "werewolf_games.json"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(json.dumps({"games": games, "skipped": skipped}, indent=2, sort_keys=True))
    return dg.MaterializeResult(metadata={
        "games": dg.MetadataValue.json({s: len(v) for s, v in games.items()}),
        "new_partitions": len(new),
        "removed_partitions": len(gone),
        "skipped_files": dg.MetadataValue.json(skipped),
        "index": dg.MetadataValue.path(str(index)),
    })


@dg.asset(name="werewolf_utterances", group_name=GROUP, partitions_def=WEREWOLF_GAMES, deps=[werewolf_games],
          pool="gpu", kinds={"python", "parquet"}, code_version=CODE_VERSION,
          description="One game: audio -> transcript -> speakers -> utterances (+ games and votes rows).")
def werewolf_utterances(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
    settings = shardsmith.settings()
    game_id = context.partition_key
    source = source_of(game_id)
    refs = {g.game_id: g for g in discover(source, settings.raw_dir(source)).games}
    if game_id not in refs:
        raise dg.Failure(f"game {game_id} is no longer under {settings.raw_dir(source)}")
    ref = refs[game_id]
    fingerprint = _game_fingerprint(ref)
    counts_path = settings.staging_dir(source) / "counts" / f"{game_id}.json"
    if counts_path.is_file() and (settings.staging_dir(source) / "utterances" / f"{game_id}.parquet").is_file():
        previous = json.loads(counts_path.read_text())
        if previous.get("input_fingerprint") == fingerprint:
            context.log.info(f"{game_id}: inputs unchanged; staged rows reused")
            return dg.MaterializeResult(
                metadata={"recomputed": False, "utterances": previous["utterances"],
                          "quarantined": previous["quarantined"]},
                data_version=dg.DataVersion(fingerprint),
            )
    transcriber = None
    if source == "werewolf_video":
        from shardsmith.speech.select import get_transcriber

        transcriber = get_transcriber()
        context.log.info(f"{game_id}: transcribing with {type(transcriber).__name__}")
    result = build_game(source, ref, settings, transcriber)
    paths = write_game_staging(settings, source, result)
    counts = {**result.counts, "speech_s": result.speech_s, "input_fingerprint": fingerprint}
    counts_path.parent.mkdir(parents=True, exist_ok=True)
    counts_path.write_text(json.dumps(counts, indent=2, sort_keys=True))
    context.log.info(f"{game_id}: {json.dumps(counts)}")
    reasons: dict[str, int] = {}
    for q in result.quarantine:
        reasons[q["reason"]] = reasons.get(q["reason"], 0) + 1
    transcription = (result.games[0].get("transcription") if result.games else None) or {}
    return dg.MaterializeResult(data_version=dg.DataVersion(fingerprint), metadata={
        "recomputed": True,
        "utterances": len(result.utterances),
        "votes": len(result.votes),
        "inputs": result.inputs,
        "published": result.published,
        "quarantined": result.quarantined,
        "unit": result.unit,
        "reconciles": result.reconciles(),
        "quarantine_reasons": dg.MetadataValue.json(reasons),
        "transcription": dg.MetadataValue.json(transcription),
        "staging": dg.MetadataValue.json({k: str(v) for k, v in paths.items()}),
    })


@dg.asset_check(asset=werewolf_utterances, name="game_reconciles", blocking=True, partitions_def=WEREWOLF_GAMES,
                description="inputs = published + quarantined for the game; staged files agree with the counts; "
                            "utterance ids unique.")
def game_reconciles(context: dg.AssetCheckExecutionContext, shardsmith: ShardsmithResource) -> dg.AssetCheckResult:
    import pyarrow.parquet as pq

    settings = shardsmith.settings()
    game_id = context.partition_key
    source = source_of(game_id)
    counts = json.loads((settings.staging_dir(source) / "counts" / f"{game_id}.json").read_text())
    quarantine_rows = pq.read_metadata(settings.quarantine_dir(source) / f"{game_id}.parquet").num_rows
    ids = pq.read_table(settings.staging_dir(source) / "utterances" / f"{game_id}.parquet",
                        columns=["utterance_id"]).column("utterance_id").to_pylist()
    checks = {
        "inputs = published + quarantined": counts["inputs"] == counts["published"] + counts["quarantined"],
        "staged utterances match counts": len(ids) == counts["utterances"],
        "staged quarantine rows match counts": quarantine_rows == counts["quarantine_rows"],
        "utterance ids unique": len(ids) == len(set(ids)),
    }
    return dg.AssetCheckResult(passed=all(checks.values()), metadata={
        **{k: dg.MetadataValue.bool(v) for k, v in checks.items()},
        "counts": dg.MetadataValue.json(counts),
    })


def _enabled(settings) -> list[str]:
    return [s for s in WEREWOLF_SOURCES
            if settings.raw_dir(s).is_dir() and (settings.staging_dir(s) / "games").is_dir()]


@dg.asset(name="werewolf_release", group_name="releases", deps=[werewolf_utterances],
          kinds={"parquet", "webdataset"},
          description="Versioned werewolf release: games, utterances (with FLAC clips), votes.")
def werewolf_release(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
    settings = shardsmith.settings()
    sources = _enabled(settings)
    result = build_release(settings, "werewolf", sources)
    return dg.MaterializeResult(
        metadata={"version": result.version, "new_version": result.created,
                  "row_counts": dg.MetadataValue.json(result.row_counts),
                  "path": dg.MetadataValue.path(str(result.path))},
        data_version=dg.DataVersion(result.content_digest),
    )


def werewolf_assets() -> tuple[list, list]:
    return [werewolf_games, werewolf_utterances, werewolf_release], [game_reconciles]


def werewolf_selection(settings) -> list[dg.AssetKey]:
    """What ``shardsmith build`` materialises for the werewolf family (nothing if no source is present)."""
    if not any(settings.raw_dir(s).is_dir() for s in WEREWOLF_SOURCES):
        return []
    return [werewolf_games.key, werewolf_utterances.key, werewolf_release.key]


def discover_games(settings) -> dict[str, list[Path]]:
    """Game id -> the raw files it comes from, for the new-games sensor (uses the adapters' discovery)."""
    out: dict[str, list[Path]] = {}
    for source in WEREWOLF_SOURCES:
        root = settings.raw_dir(source)
        if root.is_dir():
            for ref in discover(source, root).games:
                out[ref.game_id] = sorted({Path(p) for _, p in ref.paths})
    return out
