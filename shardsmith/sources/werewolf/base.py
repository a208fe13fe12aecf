"""Shared pieces of the Werewolf adapters: game references, results, phases, seats, JSON helpers.

Kept apart from ``staging.games`` so that the adapters and the staging code can both import it
without a cycle.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from shardsmith.schemas.roles import Role, lookup_role
from shardsmith.sources.base import Source

ADAPTER_VERSION = "werewolf-1.2.0"  # 1.1: split on every row, decisions, role_inference, WereBench winner; 1.2: WereBench cleaned games, speech items


@dataclass(frozen=True)
class GameRef:
    """One game of one source: its id (the Dagster partition key) and the files it comes from."""

    source: str
    game_id: str
    native_id: str
    paths: tuple[tuple[str, str], ...]  # (kind, path) pairs, e.g. ("srt", "/raw/.../01.srt")
    member: str | None = None  # position inside a multi-game file (Werewolf Among Us: list index)
    split: str | None = None

    def path(self, kind: str) -> Path | None:
        for k, p in self.paths:
            if k == kind:
                return Path(p)
        return None


@dataclass(frozen=True)
class Skipped:
    """A file in a raw tree that is deliberately not a game (e.g. WereBench's config template)."""

    path: str
    reason: str


@dataclass
class Discovery:
    games: list[GameRef]
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class GameResult:
    """Rows for one game plus counts that reconcile: inputs = published + quarantined (in ``unit``)."""

    source: str
    game_id: str
    unit: str
    games: list[dict] = field(default_factory=list)
    utterances: list[dict] = field(default_factory=list)
    votes: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)  # derived: shardsmith.werewolf.decisions
    role_inference: list[dict] = field(default_factory=list)  # derived: shardsmith.werewolf.role_inference
    speech_items: list[dict] = field(default_factory=list)  # derived: shardsmith.werewolf.speech_items
    bank_items: list[dict] = field(default_factory=list)  # the question bank's items about this game (WereBench)
    bank_path: str | None = None
    quarantine: list[dict] = field(default_factory=list)
    inputs: int = 0
    published: int = 0
    quarantined: int = 0
    speech_s: dict[str, float] = field(default_factory=dict)  # input / published / quarantined seconds
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "inputs": self.inputs,
            "published": self.published,
            "quarantined": self.quarantined,
            "utterances": len(self.utterances),
            "votes": len(self.votes),
            "decisions": len(self.decisions),
            "role_inference": len(self.role_inference),
            "speech_items": len(self.speech_items),
            "bank_items": len(self.bank_items),
            "quarantine_rows": len(self.quarantine),
        }

    def reconciles(self) -> bool:
        return self.inputs == self.published + self.quarantined


def source_transcription(language: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The ``transcription`` of a game whose text comes with the source (no ASR ran)."""
    return {"backend": "source", "model": None, "device": None, "compute_type": None,
            "language": language, "settings": dumps(settings)}


def dumps(obj: Any) -> str:
    """Deterministic JSON for ``extra`` / ``settings`` columns."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_id(*parts: object) -> str:
    """An id usable as a partition key and a WebDataset key: letters, digits, '-' and '_' only."""
    return "-".join(_SAFE.sub("_", str(p)).strip("_") for p in parts if str(p) != "")


# ------------------------------------------------------------------ phases

_ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
}
_FIXED = {
    "sheiff_election": "sheriff_election",
    "sheriff_election": "sheriff_election",
    "pre_game": "pre_game",
    "post_game": "post_game",
    "end_time": "end_time",
    "end": "end_time",
}


def canonical_phase(name: str) -> str | None:
    """``first_night`` -> ``night_1``, ``sheiff_election`` -> ``sheriff_election``; None if unknown."""
    key = re.sub(r"[\s-]+", "_", str(name).strip().lower())
    if key in _FIXED:
        return _FIXED[key]
    m = re.fullmatch(r"([a-z]+)_(night|day)", key)
    if m and m.group(1) in _ORDINALS:
        return f"{m.group(2)}_{_ORDINALS[m.group(1)]}"
    m = re.fullmatch(r"(night|day)_?(\d+)", key)
    if m:
        return f"{m.group(1)}_{int(m.group(2))}"
    return None


def phase_day(phase: str | None) -> int | None:
    m = re.fullmatch(r"(?:night|day)_(\d+)", phase or "")
    return int(m.group(1)) if m else None


def phase_at(
    phases: list[dict], t: float | None, game_start: float | None, game_end: float | None
) -> str | None:
    """The phase a moment falls in: the last phase starting at or before it; pre/post outside the game."""
    if t is None:
        return None
    if game_start is not None and t < game_start:
        return "pre_game"
    if game_end is not None and t >= game_end:
        return "post_game"
    current = None
    for p in phases:
        if p["start_s"] <= t:
            current = p["name"]
    return current


# ------------------------------------------------------------------ seats and roles


def seat_row(
    seat: int, role_text: str | None, player: str | None = None, final_role_text: str | None = None
) -> dict:
    """A seats struct; raises UnknownRoleError (naming the string) for a role the table lacks."""
    role: Role | None = lookup_role(role_text) if role_text not in (None, "") else None
    final: Role | None = lookup_role(final_role_text) if final_role_text not in (None, "") else None
    return {
        "seat": int(seat),
        "player": player,
        "role": role.role if role else None,
        "role_source": role_text if role else None,
        "faction": role.faction if role else None,
        "final_role": final.role if final else None,
    }


def rule_variant_id(role_texts: list[str]) -> str:
    """Canonical id of a board: its distinct canonical role ids, sorted, joined by '+'."""
    ids = sorted({lookup_role(r).role for r in role_texts if str(r).strip()})
    return "+".join(ids) if ids else "unknown"


class GameSource(Source):
    """One Werewolf data source: finds its games under ``raw/<name>/`` and turns one game into rows.

    Every game is one partition of the werewolf assets (``partitioned`` is true), counted in
    ``unit`` (subtitle lines, dialogue entries, whole games) so that inputs = published +
    quarantined holds per game. ``needs_asr`` sources get a transcriber and the speech settings in
    ``build_game``; where no transcriber can be had, ``set_aside`` quarantines the game instead.
    """

    collection: ClassVar[str] = "werewolf"
    partitioned: ClassVar[bool] = True
    unit: ClassVar[str] = "game"

    def discover(self, root: Path) -> Discovery:
        """The games under ``root`` and the files deliberately skipped, deterministic order."""
        raise NotImplementedError

    def build_game(self, ref: GameRef, transcriber: Any = None, progress: Any = None,
                   speech: Any = None) -> GameResult:
        """Rows for one game (``transcriber``, ``progress``, a callback the transcriber reports
        seconds of audio done to, and ``speech``, the SpeechOptions, only for ``needs_asr`` sources)."""
        raise NotImplementedError

    def set_aside(self, ref: GameRef, stage: str, reason: str, detail: str) -> GameResult:
        """The whole game quarantined without reading it (a ``needs_asr`` game with no transcriber
        here), counted as one input; a source counted in other units overrides this."""
        from shardsmith.sources.werewolf.rows import GameRows

        return GameRows(ref, self.unit, ref.paths[0][1] if ref.paths else "", inputs=1).set_aside(stage, reason, detail)

    def label_game(self, ref: GameRef) -> GameResult:
        """Rows from label files alone (no audio), for ``shardsmith labels``."""
        return self.build_game(ref)

    def detect(self, root: Path) -> bool:
        return root.is_dir() and bool(self.discover(root).games)
