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

import json
import re
from pathlib import Path
from typing import Any

from shardsmith.hashing import sha256_files
from shardsmith.pseudonym import pseudonymise
from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.schemas.roles import UnknownRoleError, load_roles
from shardsmith.sources.werewolf.base import (
    ADAPTER_VERSION,
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
        try:
            data = json.loads(f.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as exc:
            skipped.append(Skipped(str(f), f"unreadable JSON: {exc}"))
            continue
        if not isinstance(data, list):
            skipped.append(Skipped(str(f), "not a list of games"))
            continue
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


def build_game(ref: GameRef) -> GameResult:
    res = GameResult(SOURCE, ref.game_id, UNIT)
    path = ref.path("json")
    assert path is not None and ref.member is not None
    raw_path = f"{path}#{ref.member}"
    game = json.loads(path.read_text(encoding="utf-8-sig"))[int(ref.member)]
    dialogue = game.get("Dialogue") or [] if isinstance(game, dict) else []
    res.inputs = len(dialogue)

    def fail_game(reason: str, detail: str) -> GameResult:
        res.quarantine.append(quarantine_row(SOURCE, "labels", reason, detail, ref.game_id, raw_path))
        res.quarantined = res.inputs
        return res

    if not isinstance(game, dict):
        return fail_game("game_invalid", "a game entry is not a JSON object")
    names = [str(n) for n in _listish(game.get("playerNames")) or []]
    start_roles = _listish(game.get("startRoles")) or []
    end_roles = _listish(game.get("endRoles")) or []
    warnings: list[str] = []
    if start_roles and len(start_roles) != len(names):
        warnings.append(f"{len(start_roles)} startRoles for {len(names)} players")
    try:
        seats = [
            seat_row(
                i + 1,
                str(start_roles[i]) if i < len(start_roles) else None,
                pseudonymise(n, SOURCE),
                str(end_roles[i]) if i < len(end_roles) else None,
            )
            for i, n in enumerate(names)
        ]
        variant = rule_variant_id([str(r) for r in start_roles]) if start_roles else "unknown"
    except UnknownRoleError as exc:
        return fail_game("unknown_role", str(exc))
    seat_of = {n.strip().casefold(): i + 1 for i, n in enumerate(names)}
    roles = load_roles()

    order = 0
    for k, entry in enumerate(dialogue):
        speaker = str(entry.get("speaker", "")).strip() if isinstance(entry, dict) else ""
        text = str(entry.get("utterance", "")).strip() if isinstance(entry, dict) else ""
        rec_id = entry.get("Rec_Id") if isinstance(entry, dict) else None
        native = f"{ref.game_id}#{rec_id if rec_id is not None else k}"
        seat = seat_of.get(speaker.casefold())
        host_role = None
        if seat is None and speaker:
            if roles.has(speaker) and roles.lookup(speaker).faction == "host":
                host_role = roles.lookup(speaker).role
            elif _UNNAMED_VOICE.match(speaker):
                host_role = "system"
        if seat is None and host_role is None:
            res.quarantine.append(
                quarantine_row(
                    SOURCE,
                    "harmonise",
                    "speaker_unmapped",
                    dumps({"rec_id": rec_id, "speaker_is_player": False, "text": text}),
                    native,
                    raw_path,
                )
            )
            res.quarantined += 1
            continue
        start = parse_timestamp(entry.get("timestamp")) if "timestamp" in entry else None
        extra: dict[str, Any] = {"rec_id": rec_id}
        if "timestamp" in entry and start is None:
            extra["timestamp_unparsed"] = str(entry.get("timestamp"))
        srow = seats[seat - 1] if seat else None
        strategies = entry.get("annotation")
        res.utterances.append(
            {
                "utterance_id": safe_id(ref.game_id, rec_id if rec_id is not None else f"x{k}"),
                "game_id": ref.game_id,
                "source": SOURCE,
                "order": order,
                "start_s": start,
                "end_s": None,
                "speaker_seat": seat,
                "is_host": seat is None,
                "speaker_label": srow["player"] if srow else speaker,
                "speaker_role": srow["role"] if srow else host_role,
                "speaker_faction": srow["faction"] if srow else "host",
                "phase": None,
                "text": text,
                "words": None,
                "speaker_source": "annotation",
                "speaker_confidence": None,
                "asr_model": None,
                "asr_confidence": None,
                "verified": True,
                "strategies": [str(s) for s in strategies] if isinstance(strategies, list) else None,
                "extra": dumps(extra),
                "audio": None,
            }
        )
        order += 1
        res.published += 1

    outcome = game.get("votingOutcome")
    if isinstance(outcome, list):
        for voter, target in enumerate(outcome, start=1):
            t = (
                int(target)
                if isinstance(target, int) or (isinstance(target, str) and target.isdigit())
                else None
            )
            if t is not None and not 0 <= t < len(names):
                warnings.append(f"votingOutcome of seat {voter} points outside playerNames: {target!r}")
                t = None
            res.votes.append(
                {
                    "game_id": ref.game_id,
                    "day": 1,
                    "voter_seat": voter,
                    "target_seat": None if t is None else t + 1,
                    "source": "voting_outcome",
                    "cut_off_utterance_id": None,
                }
            )
    res.games.append(
        {
            "game_id": ref.game_id,
            "source": SOURCE,
            "native_id": ref.native_id,
            "split": {"dev": "val"}.get(ref.split or "", ref.split),  # its dev file is our val
            "language": "en",
            "rule_variant": variant,
            "rule_variant_text": ("One Night Ultimate Werewolf: " + ", ".join(map(str, start_roles)))
            if start_roles
            else "",
            "seats": seats,
            "has_host": any(u["is_host"] for u in res.utterances),
            "winner": None,
            "phases": [],
            "media_sha256": None,
            "media_duration_s": None,
            "transcription": source_transcription("en", {"transcript": "human"}),
            "raw_path": raw_path,
            "raw_sha256": sha256_files([path]),
            "adapter_version": ADAPTER_VERSION,
            "warnings": warnings,
            "extra": dumps(
                {
                    k: game.get(k)
                    for k in ("video_name", "Game_ID", "EG_ID", "startTime", "endTime", "warning")
                    if k in game
                }
            ),
        }
    )
    return res


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
