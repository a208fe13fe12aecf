"""Werewolf Among Us (Lai et al., 2023): human transcripts of One Night Ultimate Werewolf games.

Layout: ``<root>/data/{Youtube|Ego4D}/{train,dev,test}.json`` (``data/`` optional), each a list of
games with ``Dialogue`` [{Rec_Id, speaker, timestamp "mm:ss", utterance, annotation [strategies]}],
``playerNames``, ``startRoles``, ``endRoles``, ``votingOutcome``. The split is the file name.

Decisions:
- Seats are positions in ``playerNames`` (left to right in the video), 1-based. Player names are
  pseudonymised (keyed hash, namespace = this source); the utterance's ``speaker_label`` holds that
  pseudonym for players, never the name.
- Speakers that are not players are looked up in the role table: Moderator-like names become the
  host, "Game Audio", "Timer", "Siri", ... become ``system`` voices (``is_host`` true, faction
  host). "Speaker N" is an unidentified voice and is treated the same way. Any other speaker is
  quarantined (``speaker_unmapped``), as are entries with neither text nor a usable speaker.
- Timestamps are start times only; ``end_s`` stays null (we do not invent an end from the next
  line). An unparsable timestamp keeps the entry with ``start_s`` null and a note in ``extra``.
- ``votingOutcome`` (one target index per player, or "NA") becomes votes on day 1 (ONUW has a
  single vote); ``endRoles`` become each seat's ``final_role``. Strategy labels are kept per
  utterance in ``strategies``. Games without roles (the Ego4D Avalon sessions) get
  ``rule_variant`` ``unknown`` and no seats' roles.
Unit for counts: one dialogue entry.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from shardsmith.hashing import sha256_files
from shardsmith.pseudonym import pseudonymise
from shardsmith.schemas.roles import UnknownRoleError, load_roles
from shardsmith.sources.labelfiles import LabelFileError, read_json
from shardsmith.sources.werewolf.base import (
    Discovery,
    GameRef,
    GameResult,
    GameSource,
    Skipped,
    dumps,
    rule_variant_id,
    safe_id,
    seat_row,
    source_transcription,
)
from shardsmith.sources.werewolf.rows import GameRows

SOURCE = "werewolf_among_us"
UNIT = "dialogue_entry"
SPLITS = ("train", "dev", "test")
_UNNAMED_VOICE = re.compile(r"^speaker\s*\d+$", re.I)


def _files(root: Path) -> list[Path]:
    base = root / "data" if (root / "data").is_dir() else root
    out = []
    for sub in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
        out += [sub / f"{s}.json" for s in SPLITS if (sub / f"{s}.json").is_file()]
    return out


def _native(game: dict, index: int) -> str:
    for keys in (("EG_ID", "Game_ID"), ("video_name",), ("Game_ID",)):
        if all(game.get(k) not in (None, "") for k in keys):
            return "_".join(str(game[k]) for k in keys)
    return f"game{index:04d}"


def discover(root: Path) -> Discovery:
    games: list[GameRef] = []
    skipped: list[Skipped] = []
    for f in _files(root):
        # A file that does not parse (a truncated list) holds an unknown number of games: skipping it
        # would publish a silently shorter source, so it fails the source with file and line.
        data = read_json(f)
        if not isinstance(data, list):
            raise LabelFileError(f"{f}: line 1: expected a JSON list of games, got {type(data).__name__}")
        seen: set[str] = set()
        for i, game in enumerate(data):
            native = _native(game if isinstance(game, dict) else {}, i)
            gid = safe_id(SOURCE, f.parent.name.lower(), f.stem, native)
            if gid in seen:
                gid = safe_id(gid, i)
            seen.add(gid)
            games.append(
                GameRef(
                    SOURCE,
                    gid,
                    f"{f.parent.name}/{f.name}#{i}",
                    (("json", str(f)),),
                    member=str(i),
                    split=f.stem,
                )
            )
    return Discovery(games, skipped)


def parse_timestamp(value: Any) -> float | None:
    """ "mm:ss" or "h:mm:ss" -> seconds; None when it is not a time."""
    parts = str(value).strip().split(":")
    if not 2 <= len(parts) <= 3 or not all(p.strip().replace(".", "", 1).isdigit() for p in parts):
        return None
    secs = 0.0
    for p in parts:
        secs = secs * 60 + float(p)
    return secs


def _listish(value: Any) -> list | None:
    return value if isinstance(value, list) else None


def _seat_rows(rows: GameRows, game: dict, names: list[str], warnings: list[str]) -> str:
    """Seats from ``playerNames`` (pseudonymised) with start and end roles into ``rows.seats``; returns
    the rule variant. UnknownRoleError for a role the table lacks."""
    start_roles = _listish(game.get("startRoles")) or []
    end_roles = _listish(game.get("endRoles")) or []
    if start_roles and len(start_roles) != len(names):
        warnings.append(f"{len(start_roles)} startRoles for {len(names)} players")
    for i, n in enumerate(names):
        rows.seats[i + 1] = seat_row(
            i + 1,
            str(start_roles[i]) if i < len(start_roles) else None,
            pseudonymise(n, SOURCE),
            str(end_roles[i]) if i < len(end_roles) else None,
        )
    return rule_variant_id([str(r) for r in start_roles]) if start_roles else "unknown"


def _voice(speaker: str, seat_of: dict[str, int]) -> tuple[int | None, str | None]:
    """(seat, None) for a player, (None, host or system role) for another voice, (None, None) unknown."""
    seat = seat_of.get(speaker.casefold())
    if seat is not None or not speaker:
        return seat, None
    roles = load_roles()
    if roles.has(speaker) and roles.lookup(speaker).faction == "host":
        return None, roles.lookup(speaker).role
    return None, ("system" if _UNNAMED_VOICE.match(speaker) else None)


def _utterances(rows: GameRows, dialogue: list, names: list[str]) -> None:
    """Each dialogue entry becomes an utterance, or a quarantine row when nobody known said it."""
    seat_of = {n.strip().casefold(): i + 1 for i, n in enumerate(names)}
    for k, entry in enumerate(dialogue):
        fields = entry if isinstance(entry, dict) else {}
        speaker = str(fields.get("speaker", "")).strip()
        text = str(fields.get("utterance", "")).strip()
        rec_id = fields.get("Rec_Id")
        seat, host_role = _voice(speaker, seat_of)
        if seat is None and host_role is None:
            rows.reject_line("speaker_unmapped", dumps({"rec_id": rec_id, "speaker_is_player": False, "text": text}),
                             f"{rows.game_id}#{rec_id if rec_id is not None else k}")
            continue
        start = parse_timestamp(fields.get("timestamp")) if "timestamp" in fields else None
        extra: dict[str, Any] = {"rec_id": rec_id}
        if "timestamp" in fields and start is None:
            extra["timestamp_unparsed"] = str(fields.get("timestamp"))
        strategies = fields.get("annotation")
        rows.utterance(
            safe_id(rows.game_id, rec_id if rec_id is not None else f"x{k}"), text, start_s=start, end_s=None,
            seat=seat, is_host=seat is None, host_role=host_role,
            label=rows.seats[seat]["player"] if seat else speaker, speaker_source="annotation", extra=extra,
            strategies=[str(s) for s in strategies] if isinstance(strategies, list) else None)


def _votes(rows: GameRows, outcome: Any, n_players: int, warnings: list[str]) -> None:
    """``votingOutcome`` (a target index per player, or "NA") as day-1 votes, 1-based seats."""
    if not isinstance(outcome, list):
        return
    for voter, target in enumerate(outcome, start=1):
        t = int(target) if isinstance(target, int) or (isinstance(target, str) and target.isdigit()) else None
        if t is not None and not 0 <= t < n_players:
            warnings.append(f"votingOutcome of seat {voter} points outside playerNames: {target!r}")
            t = None
        rows.vote(1, voter, None if t is None else t + 1, "voting_outcome")


def build_game(ref: GameRef) -> GameResult:
    path = ref.path("json")
    assert path is not None and ref.member is not None
    game = read_json(path)[int(ref.member)]
    dialogue = game.get("Dialogue") or [] if isinstance(game, dict) else []
    rows = GameRows(ref, UNIT, f"{path}#{ref.member}", len(dialogue))
    if not isinstance(game, dict):
        return rows.set_aside("labels", "game_invalid", "a game entry is not a JSON object")
    names = [str(n) for n in _listish(game.get("playerNames")) or []]
    warnings: list[str] = []
    try:
        variant = _seat_rows(rows, game, names, warnings)
    except UnknownRoleError as exc:
        return rows.set_aside("labels", "unknown_role", str(exc))
    _utterances(rows, dialogue, names)
    _votes(rows, game.get("votingOutcome"), len(names), warnings)
    start_roles = _listish(game.get("startRoles")) or []
    return rows.game(
        split={"dev": "val"}.get(ref.split or "", ref.split),  # its dev file is our val
        language="en", rule_variant=variant,
        rule_variant_text=("One Night Ultimate Werewolf: " + ", ".join(map(str, start_roles))) if start_roles else "",
        has_host=any(u["is_host"] for u in rows.result.utterances), winner=None, phases=[],
        transcription=source_transcription("en", {"transcript": "human"}), raw_sha256=sha256_files([path]),
        warnings=warnings,
        extra={k: game.get(k) for k in ("video_name", "Game_ID", "EG_ID", "startTime", "endTime", "warning")
               if k in game})


class WerewolfAmongUs(GameSource):
    """Werewolf Among Us: One Night Ultimate Werewolf / Avalon games with persuasion annotations."""

    name = SOURCE
    unit = UNIT
    licence = "Apache-2.0 (Werewolf Among Us)"
    citation = ("Lai et al., Werewolf Among Us: Multimodal Resources for Modeling Persuasion Behaviors "
                "in Social Deduction Games, Findings of ACL 2023")
    homepage = "https://huggingface.co/datasets/bolinlai/Werewolf-Among-Us"
    layouts = ("{Youtube,Ego4D}/{train,dev,test}.json (lists of games with Dialogue entries)",)

    def discover(self, root: Path) -> Discovery:
        return discover(root)

    def build_game(self, ref: GameRef, transcriber: Any = None, progress: Any = None) -> GameResult:
        return build_game(ref)
