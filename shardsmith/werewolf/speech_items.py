"""WereBench speech items: the benchmark's multiple-choice question bank, tied to the published game.

Built per game in ``staging.games`` from the game's rows and the bank items the adapter found for
it (``GameResult.bank_items``). Decisions:

- one row per bank item; an item that cannot be tied to the release (its game is missing or set
  aside, its anchor line is not a published utterance, its answer is not among its options, its
  category is not one of the five dimensions, its asking seat is not at the table) is a quarantine
  row with the reason, never dropped: bank items = items + their quarantine rows, per game;
- the anchor is the utterance built from the SRT entry the item names (``<game_id>-<srt id>``: the
  WereBench adapter keeps one utterance per subtitle line for exactly this); the context is every
  published utterance of the game up to and including it, in utterance order;
- ``dimension`` is the canonical snake_case of the bank's category (``speech_dimensions.csv``);
- ``choices`` / ``answer`` repeat ``options`` / ``answer_key`` as Hugging Face multiple-choice
  columns (texts in option order, index of the answer).
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache

from shardsmith.packaged import data_path
from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.sources.werewolf.base import safe_id

DIMENSIONS_CSV = data_path("schemas", "vocabulary", "speech_dimensions.csv")
STAGE = "speech_items"
_SEAT = re.compile(r"(\d{1,2})\s*号")


@lru_cache(maxsize=1)
def dimensions() -> dict[str, str]:
    """The bank's category name -> canonical dimension id."""
    with DIMENSIONS_CSV.open(newline="", encoding="utf-8") as fh:
        return {row["category"].strip(): row["dimension"].strip() for row in csv.DictReader(fh)}


def item_id(dimension: str, bank_id: object) -> str:
    """Bank ids repeat across categories, so the id is (dimension, bank id)."""
    return safe_id("werebench", dimension, bank_id)


def asker_seat(label: str) -> int | None:
    """``9号`` / ``预言家12号`` -> the seat; ``场上玩家`` (the whole table) -> None."""
    m = _SEAT.search(str(label or ""))
    return int(m.group(1)) if m else None


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def build_speech_items(game: dict | None, utterances: list[dict], bank_items: list[dict], *, source: str,
                       game_id: str, bank_path: str | None,
                       why_no_game: str = "game_missing") -> tuple[list[dict], list[dict]]:
    """(``speech_items`` rows, quarantine rows) for one game's bank items. ``why_no_game``: the reason
    the game itself was set aside, when it has no games row."""
    ordered = sorted((u for u in utterances if u.get("game_id") == game_id), key=lambda u: u["order"])
    position = {u["utterance_id"]: i for i, u in enumerate(ordered)}
    seats = {s["seat"]: s for s in (game or {}).get("seats") or ()}
    rows, rejected = [], []
    for q in bank_items:
        dim = dimensions().get(str(q.get("category") or "").strip())
        iid = item_id(dim or safe_id(str(q.get("category") or "unknown")).lower(), q.get("id"))
        try:
            if game is None:
                raise _Reject("game_missing" if why_no_game == "game_missing" else "game_quarantined",
                              f"{_where(q)}: game {game_id} is not published ({why_no_game})")
            rows.append(_row(q, dim, iid, game, ordered, position, seats, source, game_id))
        except _Reject as why:
            rejected.append(quarantine_row(source, STAGE, why.reason, why.detail, iid, bank_path))
    return rows, rejected


def _where(q: dict) -> str:
    return f"item {q.get('category')!r} #{q.get('id')} ({q.get('reference')}, line {q.get('utterance_id')})"


def _row(q: dict, dim: str | None, iid: str, game: dict, ordered: list[dict], position: dict[str, int],
         seats: dict[int, dict], source: str, game_id: str) -> dict:
    where = _where(q)
    if dim is None:
        raise _Reject("unknown_dimension", f"{where}: category not in speech_dimensions.csv")
    options = [{"key": str(o.get("key")), "text": str(o.get("text") or "")} for o in q.get("options") or ()
               if isinstance(o, dict)]
    keys = [o["key"] for o in options]
    answer_key = str(q.get("answerKey") or "")
    if answer_key not in keys or len(set(keys)) != len(keys):
        raise _Reject("answer_not_in_options", f"{where}: answer {answer_key!r}, options {keys}")
    srt_id = q.get("utterance_id")
    anchor = f"{game_id}-{srt_id}"
    if not isinstance(srt_id, int) or anchor not in position:
        raise _Reject("anchor_missing", f"{where}: SRT entry {srt_id!r} is not a published utterance of {game_id}")
    seat = asker_seat(q.get("role", ""))
    if seat is not None and seat not in seats:
        raise _Reject("asker_not_in_roster", f"{where}: asker {q.get('role')!r} is not a seat of {game_id}")
    explanation = str(q.get("explanation") or "").strip()
    return {
        "item_id": iid,
        "game_id": game_id,
        "source": source,
        "split": game.get("split"),
        "dimension": dim,
        "dimension_source": q.get("category"),
        "bank_item_id": q.get("id"),
        "question": q.get("text"),
        "question_short": q.get("text1"),
        "asker_seat": seat,
        "asker_label": q.get("role"),
        "asker_role": (seats.get(seat) or {}).get("role") if seat is not None else None,
        "asker_faction": (seats.get(seat) or {}).get("faction") if seat is not None else None,
        "options": options,
        "choices": [o["text"] for o in options],
        "answer_key": answer_key,
        "answer": keys.index(answer_key),
        "anchor_utterance_id": anchor,
        "anchor_srt_id": srt_id,
        "context_utterance_ids": [u["utterance_id"] for u in ordered[: position[anchor] + 1]],
        "explanation": explanation or None,
        "language": game.get("language") or "zh",
    }
