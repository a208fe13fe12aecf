"""The one builder of a game's rows (games, seats, phases, utterances, votes, quarantine).

Every game source fills the same tables; what differs is how it reads its files. The fields that
are filled the same way everywhere (ids, source, utterance order, a speaker's role and faction from
the seat table, the adapter version, how a whole game or one line is set aside and counted) are set
here, so the three adapters cannot drift apart. Adapters pass what only they know.
"""

from __future__ import annotations

import logging
from typing import Any

from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.sources.werewolf.base import ADAPTER_VERSION, GameRef, GameResult, dumps

log = logging.getLogger(__name__)


def phase_row(name: str, name_source: str, start_s: float, end_s: float | None) -> dict:
    """A ``phases`` struct: canonical name, the source's own name, start and end in seconds."""
    return {"name": name, "name_source": name_source, "start_s": start_s, "end_s": end_s}


class GameRows:
    """Rows of one game, collected into a :class:`GameResult` whose counts reconcile.

    ``raw_path`` is what quarantine rows and the games row point at. ``seats`` (seat number -> the
    ``seats`` struct) gives every seated speaker's role and faction.
    """

    def __init__(self, ref: GameRef, unit: str, raw_path: str, inputs: int = 0) -> None:
        self.ref = ref
        self.raw_path = raw_path
        self.result = GameResult(ref.source, ref.game_id, unit, inputs=inputs)
        self.seats: dict[int, dict] = {}

    @property
    def game_id(self) -> str:
        return self.ref.game_id

    def set_aside(self, stage: str, reason: str, detail: str) -> GameResult:
        """The whole game quarantined: every input counted as quarantined, no rows published."""
        res = self.result
        res.quarantine.append(quarantine_row(res.source, stage, reason, detail, res.game_id, self.raw_path))
        res.quarantined, res.published = res.inputs, 0
        res.utterances, res.votes, res.games = [], [], []
        if res.speech_s:
            res.speech_s["quarantined"] = res.speech_s["input"]
        log.warning("%s: game %s quarantined: %s (%s)", res.source, res.game_id, reason, detail)
        return res

    def reject_line(self, reason: str, detail: str, native_id: str, seconds: float = 0.0) -> None:
        """One input line quarantined (stage ``harmonise``), its speech seconds counted as such."""
        res = self.result
        res.quarantine.append(quarantine_row(res.source, "harmonise", reason, detail, native_id, self.raw_path))
        res.quarantined += 1
        if res.speech_s:
            res.speech_s["quarantined"] += seconds

    def utterance(self, utterance_id: str, text: str, *, start_s: float | None, end_s: float | None,
                  seat: int | None, is_host: bool, label: str | None, speaker_source: str,
                  phase: str | None = None, host_role: str | None = "host", seconds: float = 0.0,
                  extra: dict | None = None, **asr: Any) -> dict:
        """Append an utterance; ``asr`` holds the optional columns (words, speaker_confidence,
        asr_model, asr_confidence, verified, strategies, audio) where the source has them."""
        seat_row = self.seats.get(seat) if seat is not None else None
        row = {
            "utterance_id": utterance_id,
            "game_id": self.game_id,
            "source": self.result.source,
            "order": len(self.result.utterances),
            "start_s": start_s,
            "end_s": end_s,
            "speaker_seat": None if is_host else seat,
            "is_host": is_host,
            "speaker_label": label,
            "speaker_role": host_role if is_host else (seat_row or {}).get("role"),
            "speaker_faction": "host" if is_host else (seat_row or {}).get("faction"),
            "phase": phase,
            "text": text,
            "words": asr.pop("words", None),
            "speaker_source": speaker_source,
            "speaker_confidence": asr.pop("speaker_confidence", None),
            "asr_model": asr.pop("asr_model", None),
            "asr_confidence": asr.pop("asr_confidence", None),
            "verified": asr.pop("verified", True),
            "strategies": asr.pop("strategies", None),
            "extra": dumps(extra or {}),
            "audio": asr.pop("audio", None),
        }
        if asr:
            raise TypeError(f"unknown utterance columns {sorted(asr)}")
        self.result.utterances.append(row)
        if self.result.speech_s:
            self.result.speech_s["published"] += seconds
        return row

    def vote(self, day: int | None, voter: int | None, target: int | None, source: str,
             cut_off_utterance_id: str | None = None) -> None:
        self.result.votes.append({
            "game_id": self.game_id,
            "day": day,
            "voter_seat": voter,
            "target_seat": target,
            "source": source,
            "cut_off_utterance_id": cut_off_utterance_id,
        })

    def game(self, *, split: str | None, language: str, rule_variant: str, rule_variant_text: str,
             has_host: bool, winner: str | None, phases: list[dict], transcription: dict,
             raw_sha256: str, warnings: list[str], extra: dict,
             media_sha256: str | None = None, media_duration_s: float | None = None,
             mvp_seat: int | None = None, summary: str | None = None) -> GameResult:
        """Append the ``games`` row (seats from ``self.seats``) and finish the counts: a game-unit
        source publishes the game whole, a line-unit source each utterance it kept."""
        res = self.result
        res.games.append({
            "game_id": self.game_id,
            "source": res.source,
            "native_id": self.ref.native_id,
            "split": split,
            "language": language,
            "rule_variant": rule_variant,
            "rule_variant_text": rule_variant_text,
            "seats": list(self.seats.values()),
            "has_host": has_host,
            "winner": winner,
            "phases": phases,
            "media_sha256": media_sha256,
            "media_duration_s": media_duration_s,
            "transcription": transcription,
            "raw_path": self.raw_path,
            "raw_sha256": raw_sha256,
            "adapter_version": ADAPTER_VERSION,
            "warnings": warnings,
            "extra": dumps(extra),
            "mvp_seat": mvp_seat,
            "summary": summary,
        })
        res.published = 1 if res.unit == "game" else len(res.utterances)
        return res
