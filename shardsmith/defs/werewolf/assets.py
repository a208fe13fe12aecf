"""Werewolf assets: games discovered -> one partition per game -> (the release, in defs/releases).

``werewolf_games`` scans every registered game source and registers each game as a dynamic
partition. ``werewolf_utterances`` stages one game per partition in the ``gpu`` pool: audio ->
transcript -> speakers -> utterances happen in one step because the library decodes a game's
audio once and hands the samples from stage to stage (splitting them into assets would mean
pickling audio between steps). Sources that ship transcripts skip the audio stages.
"""


import json

import dagster as dg

from shardsmith.defs.resources import ShardsmithResource
from shardsmith.pipeline import keys
from shardsmith.staging import games as staged_games

WEREWOLF_GAMES = dg.DynamicPartitionsDefinition(name=keys.GAMES)
GROUP = "werewolf"


@dg.asset(name=keys.GAMES, group_name=GROUP, kinds={"python"},
          description="Every game of every werewolf source under raw/; each becomes a partition of "
                      "werewolf_utterances.")
def werewolf_games(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
    settings = shardsmith.settings()
    games, skipped = staged_games.discover_all(settings)
    game_ids = [g.game_id for refs in games.values() for g in refs]
    existing = set(context.instance.get_dynamic_partitions(WEREWOLF_GAMES.name))
    new = [k for k in game_ids if k not in existing]
    if new:
        context.instance.add_dynamic_partitions(WEREWOLF_GAMES.name, new)
    gone = sorted(existing - set(game_ids))
    for key in gone:
        context.instance.delete_dynamic_partition(WEREWOLF_GAMES.name, key)
    pruned = staged_games.prune_removed_games(settings, games)
    index = staged_games.write_games_index(settings, games, skipped)
    return dg.MaterializeResult(metadata={
        "games": dg.MetadataValue.json({s: len(v) for s, v in games.items()}),
        "new_partitions": len(new),
        "removed_partitions": len(gone),
        "removed_games_staging": dg.MetadataValue.json(pruned),
        "recomputed": bool(new or gone or pruned),
        "skipped_files": dg.MetadataValue.json(skipped),
        "index": dg.MetadataValue.path(str(index)),
    })


@dg.asset(name=keys.UTTERANCES, group_name=GROUP, partitions_def=WEREWOLF_GAMES, deps=[werewolf_games],
          pool="gpu", kinds={"python", "parquet"}, code_version=staged_games.STEP_VERSION,
          backfill_policy=dg.BackfillPolicy.single_run(),
          description="One game per partition: audio -> transcript -> speakers -> utterances, plus the games, "
                      "votes, decisions and role_inference rows. A backfill stages a range of games in one run.")
def werewolf_utterances(context: dg.AssetExecutionContext, shardsmith: ShardsmithResource) -> dg.MaterializeResult:
    from shardsmith.speech.progress import transcription_progress

    settings = shardsmith.settings()
    games = list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]
    outs = {}
    for game_id in games:
        try:
            outs[game_id] = staged_games.stage_game(settings, game_id,
                                                    transcription_progress(game_id, sink=context.log.info))
        except FileNotFoundError as e:
            raise dg.Failure(str(e)) from e
        out = outs[game_id]
        context.log.info(f"{game_id}: " + ("inputs unchanged; staged rows reused" if not out["recomputed"] else
                         json.dumps({k: out[k] for k in ("inputs", "published", "quarantined")})))
    if len(games) > 1:
        return dg.MaterializeResult(metadata={
            "games": len(games),
            "recomputed_parts": dg.MetadataValue.json([g for g, o in outs.items() if o["recomputed"]]),
            "utterances": sum(o["utterances"] for o in outs.values()),
            "quarantined": sum(o["quarantined"] for o in outs.values()),
        })
    out = outs[games[0]]
    if not out["recomputed"]:
        return dg.MaterializeResult(
            metadata={"recomputed": False, "utterances": out["utterances"], "quarantined": out["quarantined"]},
            data_version=dg.DataVersion(out["fingerprint"]),
        )
    return dg.MaterializeResult(data_version=dg.DataVersion(out["fingerprint"]), metadata={
        "recomputed": True,
        "utterances": out["utterances"],
        "votes": out["votes"],
        "decisions": out.get("decisions", 0),
        "role_inference": out.get("role_inference", 0),
        "speech_items": out.get("speech_items", 0),
        "inputs": out["inputs"],
        "published": out["published"],
        "quarantined": out["quarantined"],
        "unit": out["unit"],
        "reconciles": out["reconciles"],
        "quarantine_reasons": dg.MetadataValue.json(out["reasons"]),
        "transcription": dg.MetadataValue.json(out["transcription"]),
        "staging": dg.MetadataValue.json({k: str(v) for k, v in out["paths"].items()}),
    })


@dg.asset_check(asset=werewolf_utterances, name="game_reconciles", blocking=True, partitions_def=WEREWOLF_GAMES,
                description="inputs = published + quarantined for the game; staged files agree with the counts; "
                            "utterance ids unique.")
def game_reconciles(context: dg.AssetCheckExecutionContext, shardsmith: ShardsmithResource) -> dg.AssetCheckResult:
    games = list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]
    results = {g: staged_games.check_game(shardsmith.settings(), g) for g in games}
    if len(games) == 1:
        passed, checks, counts = results[games[0]]
        return dg.AssetCheckResult(passed=passed, metadata={
            **{k: dg.MetadataValue.bool(v) for k, v in checks.items()},
            "counts": dg.MetadataValue.json(counts),
        })
    failed = {g: [k for k, ok in r[1].items() if not ok] for g, r in results.items() if not r[0]}
    return dg.AssetCheckResult(passed=not failed, metadata={"games": len(games),
                                                            "failed_games": dg.MetadataValue.json(failed)})


def werewolf_assets() -> tuple[list, list]:
    return [werewolf_games, werewolf_utterances], [game_reconciles]
