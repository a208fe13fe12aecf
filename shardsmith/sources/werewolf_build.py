"""Entry points of the Werewolf collection for the Dagster layer (which partitions by game).

- ``discover_games(source, raw_root)``: the games of a source, in a deterministic order; files that
  are deliberately not games (templates, strays) are listed by ``discover(...).skipped`` and logged.
- ``build_game(source, ref, settings, transcriber=None)``: rows for one game (``GameResult``).
- ``write_game_staging(settings, source, result)``: one Parquet file per game and table,
  ``staging/<source>/{games,utterances,votes}/<game_id>.parquet`` and
  ``quarantine/<source>/<game_id>.parquet``, replaced atomically (temp file + rename) with
  deterministic bytes, so re-running a partition overwrites exactly its own files.
- ``label_stats(source, raw_root)``: cheap statistics from label files alone (no audio).

Counting units (inputs = published + quarantined): werebench counts subtitle lines,
werewolf_among_us dialogue entries, werewolf_video games.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.config import Settings
from shardsmith.schemas.quarantine import QUARANTINE_SCHEMA
from shardsmith.schemas.werewolf import GAMES_SCHEMA, UTTERANCES_SCHEMA, VOTES_SCHEMA
from shardsmith.sources import werebench, werewolf_among_us, werewolf_video
from shardsmith.sources.werewolf_common import Discovery, GameRef, GameResult, Skipped
from shardsmith.speech.base import Transcriber

WEREWOLF_SOURCES = ("werewolf_video", "werebench", "werewolf_among_us")
log = logging.getLogger(__name__)

__all__ = [
    "WEREWOLF_SOURCES",
    "GameRef",
    "GameResult",
    "Skipped",
    "discover",
    "discover_games",
    "build_game",
    "write_game_staging",
    "label_stats",
    "game_tables",
]


def _adapter(source: str) -> Any:
    adapters = {
        "werebench": werebench,
        "werewolf_among_us": werewolf_among_us,
        "werewolf_video": werewolf_video,
    }
    try:
        return adapters[source]
    except KeyError:
        raise KeyError(f"unknown werewolf source {source!r}; known: {', '.join(WEREWOLF_SOURCES)}") from None


def discover(source: str, raw_root: Path) -> Discovery:
    """Games and deliberately skipped files of one source's raw tree."""
    found = _adapter(source).discover(Path(raw_root))
    for s in found.skipped:
        log.info("%s: skipped %s: %s", source, s.path, s.reason)
    return found


def discover_games(source: str, raw_root: Path) -> list[GameRef]:
    """The games of ``source`` under ``raw_root`` (= raw/<source>), sorted by game_id."""
    return sorted(discover(source, raw_root).games, key=lambda g: g.game_id)


def build_game(
    source: str, ref: GameRef, settings: Settings | None = None, transcriber: Transcriber | None = None
) -> GameResult:
    """Rows for one game. ``settings`` is accepted for symmetry with other sources (paths live in refs)."""
    if ref.source != source:
        raise ValueError(f"game {ref.game_id} belongs to {ref.source}, not {source}")
    if source == "werewolf_video":
        return werewolf_video.build_game(ref, transcriber)
    return _adapter(source).build_game(ref)


def game_tables(result: GameResult) -> dict[str, pa.Table]:
    """The per-game tables, typed by their schemas (fails loudly on a row that does not fit)."""
    return {
        "games": pa.Table.from_pylist(result.games, schema=GAMES_SCHEMA),
        "utterances": pa.Table.from_pylist(result.utterances, schema=UTTERANCES_SCHEMA),
        "votes": pa.Table.from_pylist(result.votes, schema=VOTES_SCHEMA),
        "quarantine": pa.Table.from_pylist(result.quarantine, schema=QUARANTINE_SCHEMA),
    }


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(
            table, tmp, compression="zstd", write_statistics=True, use_dictionary=True, store_schema=True
        )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_game_staging(settings: Settings, source: str, result: GameResult) -> dict[str, Path]:
    """Write (replace) the game's staging and quarantine Parquet files; returns the paths written.

    Every table file is written even when empty, so a re-run that now publishes nothing replaces the
    previous partition's rows instead of leaving them behind.
    """
    tables = game_tables(result)
    out: dict[str, Path] = {}
    for name in ("games", "utterances", "votes"):
        out[name] = settings.staging_dir(source) / name / f"{result.game_id}.parquet"
        _write_atomic(tables[name], out[name])
    out["quarantine"] = settings.quarantine_dir(source) / f"{result.game_id}.parquet"
    _write_atomic(tables["quarantine"], out["quarantine"])
    return out


def label_stats(source: str, raw_root: Path) -> dict[str, Any]:
    """Games, utterances, speech seconds and role counts from label files alone (video: sidecars only)."""
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
        if source == "werewolf_video":
            res = _video_labels(ref)
        else:
            res = build_game(source, ref)
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


def _video_labels(ref: GameRef) -> GameResult:
    """Sidecar-only view of a video game for label statistics: seats and roles, no audio decoding."""

    from shardsmith.schemas.quarantine import quarantine_row
    from shardsmith.schemas.roles import UnknownRoleError
    from shardsmith.sources.werewolf_common import seat_row

    res = GameResult(werewolf_video.SOURCE, ref.game_id, werewolf_video.UNIT, inputs=1)
    side_path = ref.path("sidecar")
    try:
        if side_path is None:
            raise werewolf_video.SidecarError("sidecar_missing", "no sidecar beside the video")
        side = werewolf_video.load_sidecar(side_path)
        seats = [seat_row(s["seat"], s["role"]) for s in side["seats"]]
    except werewolf_video.SidecarError as exc:
        res.quarantine.append(quarantine_row(ref.source, "labels", exc.reason, exc.detail, ref.game_id))
        res.quarantined = 1
        return res
    except UnknownRoleError as exc:
        res.quarantine.append(quarantine_row(ref.source, "labels", "unknown_role", str(exc), ref.game_id))
        res.quarantined = 1
        return res
    res.games.append({"seats": seats})
    res.published = 1
    return res
