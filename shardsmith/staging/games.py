"""Werewolf games into staging, for the Dagster layer (which partitions by game).

- ``discover(source, raw_root)``: the games of a source and the files deliberately skipped.
- ``build_game(source, ref, settings, transcriber=None)``: rows for one game (``GameResult``).
- ``write_game_staging(settings, source, result)``: one Parquet file per game and table (paths from
  :class:`StagingLayout`), replaced atomically with deterministic bytes, so re-running a partition
  overwrites exactly its own files.
- ``label_stats(source, raw_root)``: cheap statistics from label files alone (no audio).

Sources come from the registry (``GameSource`` classes); counting units (inputs = published +
quarantined) are each source's ``unit``.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from shardsmith.atomic import write_parquet_atomic
from shardsmith.config import Settings, SpeechOptions
from shardsmith.schemas.quarantine import QUARANTINE_SCHEMA
from shardsmith.schemas.werewolf import (
    DECISIONS_SCHEMA,
    GAMES_SCHEMA,
    ROLE_INFERENCE_SCHEMA,
    SPEECH_ITEMS_SCHEMA,
    UTTERANCES_SCHEMA,
    VOTES_SCHEMA,
)
from shardsmith.sources.registry import game_source_names, get_source
from shardsmith.sources.werewolf.base import Discovery, GameRef, GameResult, GameSource, Skipped
from shardsmith.werewolf.decisions import build_decisions
from shardsmith.werewolf.role_inference import build_role_inference
from shardsmith.werewolf.speech_items import build_speech_items

log = logging.getLogger(__name__)

__all__ = [
    "GameRef",
    "GameResult",
    "Skipped",
    "discover",
    "discover_games",
    "build_game",
    "write_game_staging",
    "label_stats",
    "game_tables",
    "add_views",
    "GAME_TABLES",
]

GAME_TABLES = ("games", "utterances", "votes", "decisions", "role_inference", "speech_items")  # staged per game


def game_source(source: str) -> GameSource:
    if source not in game_source_names():
        raise KeyError(f"unknown werewolf source {source!r}; known: {', '.join(game_source_names())}")
    return get_source(source)  # type: ignore[return-value]


def discover(source: str, raw_root: Path) -> Discovery:
    """Games and deliberately skipped files of one source's raw tree."""
    found = game_source(source).discover(Path(raw_root))
    for s in found.skipped:
        log.info("%s: skipped %s: %s", source, s.path, s.reason)
    return found


def discover_games(source: str, raw_root: Path) -> list[GameRef]:
    """The games of ``source`` under ``raw_root`` (= raw/<source>), sorted by game_id."""
    return sorted(discover(source, raw_root).games, key=lambda g: g.game_id)


def build_game(
    source: str, ref: GameRef, settings: Settings | None = None, transcriber: Any = None, progress: Any = None
) -> GameResult:
    """Rows for one game. A ``needs_asr`` source gets a transcriber (``transcriber``, else the one
    ``settings.speech`` names), the speech settings and the progress callback.

    The transcriber is chosen here, per game: a speech extra that is missing or half installed (a
    module that does not import, the packaged model absent) quarantines this game with the reason
    (``needs_extra_speech``, naming the module) instead of failing the step, and games whose
    transcripts ship with the source never touch speech code.
    """
    if ref.source != source:
        raise ValueError(f"game {ref.game_id} belongs to {ref.source}, not {source}")
    adapter = game_source(source)
    if not adapter.needs_asr:
        return add_views(adapter.build_game(ref))
    speech = settings.speech if settings is not None else SpeechOptions()
    if transcriber is None:
        from shardsmith.speech.base import TranscriberUnavailable
        from shardsmith.speech.select import choose_transcriber

        try:
            transcriber = choose_transcriber(speech)
        except TranscriberUnavailable as exc:  # MissingExtra too (reason needs_extra_<extra>)
            log.warning("%s: game %s cannot be transcribed here: %s", source, ref.game_id, exc)
            return add_views(adapter.set_aside(ref, "transcribe", exc.reason, str(exc)))
    return add_views(adapter.build_game(ref, transcriber, progress, speech))


def add_views(result: GameResult) -> GameResult:
    """Stamp the game's split on its utterances and votes, and derive its evaluation items.

    Each adapter decides the split of its ``games`` row (an official split or ``split_for``); the
    other tables take it from there, so no row can disagree with its game.
    """
    game = result.games[0] if result.games else None
    split = game.get("split") if game else None
    for row in (*result.utterances, *result.votes):
        row["split"] = split
    if result.bank_items:  # before the early return: a set-aside game's items are quarantined with the reason
        why = next((q["reason"] for q in result.quarantine if q["stage"] != "speech_items"), "game_missing")
        result.speech_items, rejected = build_speech_items(
            game, result.utterances, result.bank_items, source=result.source, game_id=result.game_id,
            bank_path=result.bank_path, why_no_game=why)
        result.quarantine += rejected
    if game is None:
        result.decisions, result.role_inference = [], []
        return result
    result.decisions = build_decisions(game, result.utterances, result.votes)
    result.role_inference = build_role_inference(game, result.utterances)
    return result


def game_tables(result: GameResult) -> dict[str, pa.Table]:
    """The per-game tables, typed by their schemas (fails loudly on a row that does not fit)."""
    return {
        "games": pa.Table.from_pylist(result.games, schema=GAMES_SCHEMA),
        "utterances": pa.Table.from_pylist(result.utterances, schema=UTTERANCES_SCHEMA),
        "votes": pa.Table.from_pylist(result.votes, schema=VOTES_SCHEMA),
        "decisions": pa.Table.from_pylist(result.decisions, schema=DECISIONS_SCHEMA),
        "role_inference": pa.Table.from_pylist(result.role_inference, schema=ROLE_INFERENCE_SCHEMA),
        "speech_items": pa.Table.from_pylist(result.speech_items, schema=SPEECH_ITEMS_SCHEMA),
        "quarantine": pa.Table.from_pylist(result.quarantine, schema=QUARANTINE_SCHEMA),
    }


def _write(table: pa.Table, path: Path) -> None:
    write_parquet_atomic(table, path, write_statistics=True, use_dictionary=True, store_schema=True)


def relative_raw_paths(result: GameResult, raw_root: Path) -> None:
    """Point ``raw_path`` (games and quarantine rows) into the source's raw tree, as medical records
    do: adapters name the absolute file they read, and a home's absolute path in a published row
    would make two homes with the same inputs publish different bytes (and tell where a user keeps
    the data)."""
    prefixes = {f"{raw_root}/", f"{raw_root.resolve()}/"}
    for row in (*result.games, *result.quarantine):
        value = row.get("raw_path")
        if not value:
            continue
        for prefix in prefixes:
            if value.startswith(prefix):
                row["raw_path"] = value[len(prefix):]
                break


def write_game_staging(settings: Settings, source: str, result: GameResult) -> dict[str, Path]:
    """Write (replace) the game's staging and quarantine Parquet files; returns the paths written.

    Every table file is written even when empty, so a re-run that now publishes nothing replaces the
    previous partition's rows instead of leaving them behind.
    """
    layout = settings.layout
    relative_raw_paths(result, settings.raw_dir(source))
    tables = game_tables(result)
    out: dict[str, Path] = {}
    for name in GAME_TABLES:
        out[name] = layout.game_table(source, name, result.game_id)
        _write(tables[name], out[name])
    out["quarantine"] = layout.game_quarantine(source, result.game_id)
    _write(tables["quarantine"], out["quarantine"])
    return out


def label_stats(source: str, raw_root: Path) -> dict[str, Any]:
    """Games, utterances, speech seconds and role counts from label files alone (video: sidecars only)."""
    adapter = game_source(source)
    found = discover(source, Path(raw_root))
    roles: Counter[str] = Counter()
    factions: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    stats: dict[str, Any] = {
        "source": source,
        "games": len(found.games),
        "skipped": [{"path": s.path, "reason": s.reason} for s in found.skipped],
    }
    utterances = 0
    speech = 0.0
    quarantined_games = 0
    for ref in found.games:
        res = adapter.label_game(ref)
        utterances += len(res.utterances)
        speech += sum(
            (u["end_s"] - u["start_s"])
            for u in res.utterances
            if u["start_s"] is not None and u["end_s"] is not None
        )
        for q in res.quarantine:
            reasons[q["reason"]] += 1
        quarantined_games += 0 if res.games else 1
        for g in res.games:
            for s in g["seats"]:
                roles[str(s["role"])] += 1
                factions[str(s["faction"])] += 1
    stats.update(
        {
            "utterances": utterances,
            "speech_seconds": round(speech, 3),
            "quarantined_games": quarantined_games,
            "quarantine_reasons": dict(sorted(reasons.items())),
            "roles": dict(roles.most_common()),
            "factions": dict(factions.most_common()),
        }
    )
    return stats


# --- the per-game step, as the Dagster layer runs it -------------------------------------------------

STEP_VERSION = "4"  # 4: raw_path relative to the raw tree. Bump when the per-game step's output changes for the same inputs


def discover_all(settings: Settings) -> tuple[dict[str, list[GameRef]], list[dict]]:
    """Every game of every present werewolf source, and the files deliberately skipped."""
    from shardsmith.atomic import atomic_write_json

    layout = settings.layout
    games: dict[str, list[GameRef]] = {}
    skipped: list[dict] = []
    for source in game_source_names():
        root = settings.raw_dir(source)
        if not root.is_dir():
            continue
        try:
            found = discover(source, root)
        except Exception as exc:  # a broken label file fails its source alone; the release refuses it
            log.error("%s: cannot list its games: %s", source, exc)
            atomic_write_json(layout.source_failure(source), {
                "source": source, "reason": getattr(exc, "reason", type(exc).__name__), "detail": str(exc)[:2000]})
            skipped.append({"source": source, "path": str(root), "reason": f"source failed: {exc}"[:500]})
            continue
        layout.source_failure(source).unlink(missing_ok=True)
        games[source] = sorted(found.games, key=lambda g: g.game_id)
        skipped += [{"source": source, "path": s.path, "reason": s.reason} for s in found.skipped]
    return games, skipped


def staged_game_ids(settings: Settings, source: str) -> set[str]:
    """Games of ``source`` that have staging (their counts file is written last)."""
    folder = settings.layout.game_counts(source, "_").parent
    return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()


def prune_removed_games(settings: Settings, games: dict[str, list[GameRef]]) -> list[str]:
    """Remove the staging of games that are no longer under ``raw/``: the release publishes what is
    staged, so a game deleted from raw must leave staging too. A source that failed to list its
    games keeps its staging (its release is refused until it is fixed)."""
    layout = settings.layout
    removed = []
    for source, refs in games.items():
        for game_id in sorted(staged_game_ids(settings, source) - {g.game_id for g in refs}):
            for table in GAME_TABLES:
                layout.game_table(source, table, game_id).unlink(missing_ok=True)
            layout.game_quarantine(source, game_id).unlink(missing_ok=True)
            layout.game_counts(source, game_id).unlink(missing_ok=True)
            removed.append(game_id)
            log.info("%s: game %s is no longer under raw/; its staging was removed", source, game_id)
    return removed


def game_files(settings: Settings) -> dict[str, list[Path]]:
    """Game id -> the raw files it comes from (the new-games sensor fingerprints these)."""
    games, _ = discover_all(settings)
    return {ref.game_id: sorted({Path(p) for _, p in ref.paths}) for refs in games.values() for ref in refs}


def write_games_index(settings: Settings, games: dict[str, list[GameRef]], skipped: list[dict]) -> Path:
    from shardsmith.atomic import atomic_write_json

    index = {"games": {s: [g.game_id for g in refs] for s, refs in games.items()}, "skipped": skipped}
    return atomic_write_json(settings.layout.games_index(), index, indent=2)


def source_of(game_id: str) -> str:
    """Game ids are ``<source>-<rest>``; source names use underscores, never dashes."""
    source = game_id.split("-", 1)[0]
    if source not in game_source_names():
        raise ValueError(f"game id {game_id!r} does not start with a werewolf source name")
    return source


def game_fingerprint(settings: Settings, ref: GameRef) -> str:
    """Digest of the game's raw files (streamed), the step version and the speech settings."""
    import hashlib

    from shardsmith.hashing import sha256_file

    speech = settings.speech
    h = hashlib.sha256(f"{STEP_VERSION}|{speech.backend}|{speech.whisper_model}|{ref.member}".encode())
    for kind, path in sorted(ref.paths):
        h.update(kind.encode())
        h.update(bytes.fromhex(sha256_file(path)))
    return h.hexdigest()


def stage_game(settings: Settings, game_id: str, progress: Any = None) -> dict[str, Any]:
    """Build and stage one game, or reuse its staging when its inputs are unchanged.

    A game that needs transcription gets its transcriber from ``settings.speech`` inside
    ``build_game``, so a game that cannot be transcribed here is quarantined, not a failed step.
    Returns the counts (with ``recomputed``, ``fingerprint``, ``paths`` and ``result`` when built).
    """
    import json

    from shardsmith.atomic import atomic_write_json

    layout = settings.layout
    source = source_of(game_id)
    refs = {g.game_id: g for g in discover(source, settings.raw_dir(source)).games}
    if game_id not in refs:
        raise FileNotFoundError(f"game {game_id} is no longer under {settings.raw_dir(source)}")
    ref = refs[game_id]
    fingerprint = game_fingerprint(settings, ref)
    counts_path = layout.game_counts(source, game_id)
    if counts_path.is_file() and layout.game_table(source, "utterances", game_id).is_file():
        previous = json.loads(counts_path.read_text())
        if previous.get("input_fingerprint") == fingerprint:
            return {**previous, "recomputed": False, "fingerprint": fingerprint}
    result = build_game(source, ref, settings, progress=progress)
    paths = write_game_staging(settings, source, result)
    counts = {**result.counts, "speech_s": result.speech_s, "input_fingerprint": fingerprint}
    atomic_write_json(counts_path, counts, indent=2)
    reasons = Counter(q["reason"] for q in result.quarantine)
    transcription = (result.games[0].get("transcription") if result.games else None) or {}
    return {**counts, "recomputed": True, "fingerprint": fingerprint, "paths": paths,
            "reasons": dict(sorted(reasons.items())), "transcription": transcription,
            "reconciles": result.reconciles()}


def check_game(settings: Settings, game_id: str) -> tuple[bool, dict[str, bool], dict]:
    """inputs = published + quarantined; staged files agree with the counts; utterance ids unique."""
    import json

    import pyarrow.parquet as pq

    layout = settings.layout
    source = source_of(game_id)
    counts = json.loads(layout.game_counts(source, game_id).read_text())
    quarantine_rows = pq.read_metadata(layout.game_quarantine(source, game_id)).num_rows
    ids = pq.read_table(layout.game_table(source, "utterances", game_id),
                        columns=["utterance_id"]).column("utterance_id").to_pylist()
    checks = {
        "inputs = published + quarantined": counts["inputs"] == counts["published"] + counts["quarantined"],
        "staged utterances match counts": len(ids) == counts["utterances"],
        "staged quarantine rows match counts": quarantine_rows == counts["quarantine_rows"],
        "utterance ids unique": len(ids) == len(set(ids)),
        # bank items = speech items + their quarantine rows (absent in counts staged before speech_items)
        "speech items reconcile": counts.get("bank_items", 0) == counts.get("speech_items", 0) + sum(
            1 for r in pq.read_table(layout.game_quarantine(source, game_id), columns=["stage"])
            .column("stage").to_pylist() if r == "speech_items"),
    }
    return all(checks.values()), checks, counts
