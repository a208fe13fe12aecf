"""One evaluation item per vote: what had been said before it, who could be voted for, what was chosen.

Built per game from that game's ``games`` row and its ``utterances`` and ``votes`` rows, so that a
partition re-run rebuilds exactly its own items.

"Before the vote" is defined from what the sources record, and is never looser than the end of the
vote's day:

- ``day_end_s``: the day ends when a later-numbered phase begins (``night_{d+1}``, or any
  ``night_k`` / ``day_k`` with k > d), at the end of the ``day_d`` phase, or at the game's end,
  whichever comes first. (WereBench boards without a ``first_day`` anchor talk in the sheriff
  election and then go to ``night_2``; the later-phase rule still ends day 1 there.) A line that
  starts exactly at the day's end already belongs to the next phase, so context lines start
  strictly before ``day_end_s``.
- ``before_cut_off`` (WereBench): the vote names its cut-off line (MVP ``cut_off_time``, an SRT
  id). That line is where the host calls or announces the vote, often with every player's vote and
  who is out, so context is the lines strictly before it in utterance order that start no later
  than it (``vote_time_s``) and before ``day_end_s``. A cut-off after the day's end (configs whose
  vote keys count the MVP's votes, not the days) is cut at the day's end and said so in
  ``warnings``: the context is then shorter, never later.
- ``before_day_end``: no usable cut-off; every line starting before the end of the vote's day. For
  sources that do not time the vote this may include talk after the vote on that same day (the
  host's result, last words); the rule is in the row so a reader can filter on it.
- ``before_game_end``: neither a cut-off nor a day with phases (Werewolf Among Us: one vote after
  the discussion); every in-game line, bounded by the game's end where phases give one.

Post-game lines (the host's recap names every role) are never context.

Candidates: the game's seats minus the seats known to be out before the vote. Only whole-table
votes of earlier days tell who was exiled (a unique plurality target); night kills are recorded by
no source, so ``candidates_exact`` is true only where nobody can be out before the vote (ONUW's one
vote, ``voting_outcome``). WereBench records neither exiles nor deaths as data, so its candidates
are the whole roster (and its MVP "votes" include days after the MVP died, by the host's own
announcements), hence inexact.

Outcome: ``voter_won`` compares the game's ``winner`` with the faction the voter wins with (that
of the final card where cards are swapped). ``winning_majority_target`` is the unique plurality of
that day's recorded targets of voters on the winning side; WereBench records only the MVP's vote,
so there it is the MVP's target when the MVP won, else null.
"""

from __future__ import annotations

import math
from collections import Counter

from shardsmith.schemas.roles import load_roles
from shardsmith.sources.werewolf.base import phase_day, safe_id

# Vote sources that record the whole table's votes, so a day's plurality is that day's exile.
WHOLE_TABLE_VOTES = frozenset({"sidecar", "voting_outcome"})
# Vote sources of games where nobody is out before the vote (ONUW: one night, one vote).
NOBODY_OUT_BEFORE_VOTE = frozenset({"voting_outcome"})


def _known(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def game_end_s(phases: list[dict]) -> float | None:
    """The end of the last phase (the game's end_time where the source has one)."""
    ends = [p["end_s"] for p in phases or () if _known(p.get("end_s"))]
    return max(ends) if ends else None


def day_end_s(phases: list[dict], day: int | None) -> float | None:
    """When day ``day`` ends: the earliest of a later-numbered phase's start, the ``day_<day>`` phase's
    end, and the game's end. None when the day or the phases are unknown."""
    if day is None or not phases:
        return None
    bounds = []
    for p in phases:
        n = phase_day(p.get("name"))
        if n is not None and n > day and _known(p.get("start_s")):
            bounds.append(p["start_s"])
        if p.get("name") == f"day_{day}" and _known(p.get("end_s")):
            bounds.append(p["end_s"])
    end = game_end_s(phases)
    if end is not None:
        bounds.append(end)
    return min(bounds) if bounds else None


def plurality(targets: list[int | None]) -> int | None:
    """The single most voted seat; None when nobody was voted for or the top is tied."""
    counts = Counter(t for t in targets if t is not None).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def _winning_faction(seat: dict | None, factions: dict[str, str]) -> str | None:
    """The faction a seat wins or loses with: that of its final card where the game swaps cards."""
    if seat is None:
        return None
    final = seat.get("final_role")
    return factions.get(final, seat.get("faction")) if final else seat.get("faction")


def decision_id(game_id: str, day: int | None, voter: int | None, vote_source: str) -> str:
    return safe_id(game_id, f"day{day if day is not None else 'x'}",
                   f"seat{voter if voter is not None else 'x'}", vote_source)


def _context(utterances: list[dict], vote: dict, day_end: float | None, game_end: float | None,
             has_day: bool) -> tuple[list[str], str, float | None, list[str]]:
    """Context ids, the rule used, the vote time and warnings for one vote (see the module doc)."""
    warnings: list[str] = []
    in_game = [u for u in utterances if u.get("phase") != "post_game"]
    cut_id = vote.get("cut_off_utterance_id")
    cut = next((u for u in utterances if u["utterance_id"] == cut_id), None) if cut_id else None
    if cut_id and cut is None:
        warnings.append(f"cut-off {cut_id} is not a published utterance; context cut at the day's end")
    if cut is not None:
        vote_time = cut.get("start_s") if _known(cut.get("start_s")) else None
        if vote_time is not None and day_end is not None and vote_time > day_end:
            warnings.append(f"cut-off {cut_id} starts at {vote_time:.2f}s, after day {vote.get('day')} ends "
                            f"({day_end:.2f}s); context cut at the day's end")
        ids = [u["utterance_id"] for u in in_game
               if u["order"] < cut["order"]
               and (vote_time is None or not _known(u.get("start_s")) or u["start_s"] <= vote_time)
               and (day_end is None or not _known(u.get("start_s")) or u["start_s"] < day_end)]
        return ids, "before_cut_off", vote_time, warnings
    if has_day and day_end is not None:
        ids = [u["utterance_id"] for u in in_game if _known(u.get("start_s")) and u["start_s"] < day_end]
        return ids, "before_day_end", None, warnings
    ids = [u["utterance_id"] for u in in_game
           if game_end is None or not _known(u.get("start_s")) or u["start_s"] < game_end]
    return ids, "before_game_end", None, warnings


def build_decisions(game: dict, utterances: list[dict], votes: list[dict]) -> list[dict]:
    """Rows of the ``decisions`` table for one game, one per vote, in the votes' order."""
    factions = load_roles().roles()
    seats = {s["seat"]: s for s in game.get("seats") or () if s.get("seat") is not None}
    roster = sorted(seats)
    phases = sorted(game.get("phases") or (), key=lambda p: (p.get("start_s") is None, p.get("start_s")))
    game_end = game_end_s(phases)
    winner = game.get("winner")
    ordered = sorted((u for u in utterances if u.get("game_id") == game["game_id"]), key=lambda u: u["order"])
    by_day: dict[int | None, list[dict]] = {}
    for v in votes:
        by_day.setdefault(v.get("day"), []).append(v)
    exiled: dict[int, int] = {}  # day -> seat exiled by the table's votes
    for day, vs in by_day.items():
        whole = [v["target_seat"] for v in vs if v.get("source") in WHOLE_TABLE_VOTES]
        if day is not None and whole and (out := plurality(whole)) is not None:
            exiled[day] = out

    rows = []
    for v in votes:
        day, voter = v.get("day"), v.get("voter_seat")
        seat = seats.get(voter)
        out_before = {s for d, s in exiled.items() if day is not None and d < day}
        voter_faction = _winning_faction(seat, factions)
        won = None if winner is None or voter_faction is None else voter_faction == winner
        majority = None
        if winner is not None:
            majority = plurality([w.get("target_seat") for w in by_day.get(day, [])
                                  if _winning_faction(seats.get(w.get("voter_seat")), factions) == winner])
        d_end = day_end_s(phases, day)
        ids, rule, vote_time, warnings = _context(ordered, v, d_end, game_end, day is not None and bool(phases))
        rows.append({
            "decision_id": decision_id(game["game_id"], day, voter, v["source"]),
            "game_id": game["game_id"],
            "source": game["source"],
            "split": game.get("split"),
            "day": day,
            "vote_source": v["source"],
            "voter_seat": voter,
            "voter_role": (seat or {}).get("role"),
            "voter_faction": (seat or {}).get("faction"),
            "voter_final_role": (seat or {}).get("final_role"),
            "candidate_seats": [s for s in roster if s not in out_before],
            "candidates_exact": v["source"] in NOBODY_OUT_BEFORE_VOTE,
            "target_seat": v.get("target_seat"),
            "winner": winner,
            "voter_won": won,
            "winning_majority_target": majority,
            "context_utterance_ids": ids,
            "context_rule": rule,
            "cut_off_utterance_id": v.get("cut_off_utterance_id"),
            "vote_time_s": vote_time,
            "day_end_s": d_end if rule != "before_game_end" else None,
            "warnings": warnings,
        })
    return rows

