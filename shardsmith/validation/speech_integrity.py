"""Integrity checks of ``speech_items`` (declared on its ``TableSpec``), re-derived from the other
tables rather than from the item's own derived columns."""

from __future__ import annotations

import pandas as pd

from shardsmith.validation.integrity import _value
from shardsmith.validation.outcome import CheckOutcome


def speech_answer_in_options(items: pd.DataFrame, options: pd.DataFrame) -> CheckOutcome:
    """Every item's ``answer_key`` is one of its option keys, and ``answer`` is that option's index."""
    keys: dict[str, list] = {}
    for iid, key in zip(options["item_id"], options["key"], strict=True):
        keys.setdefault(iid, []).append(key)
    bad = [iid for iid, key, idx in zip(items["item_id"], items["answer_key"], items["answer"], strict=True)
           if key not in keys.get(iid, []) or _value(idx) != keys[iid].index(key)]
    return CheckOutcome("speech_answer_in_options", not bad,
                        f"{len(bad)} item(s) whose answer is not among their options", bad[:5])


def _utterance_index(utterances: pd.DataFrame) -> dict[str, tuple]:
    return {u: (g, _value(o), _value(t)) for u, g, o, t in zip(
        utterances["utterance_id"], utterances["game_id"], utterances["order"], utterances["start_s"], strict=True)}


def speech_anchor_exists(items: pd.DataFrame, utterances: pd.DataFrame) -> CheckOutcome:
    """Every item's anchor is a published utterance of the item's game."""
    utt = _utterance_index(utterances)
    bad = [f"{iid}: {a}" for iid, g, a in zip(items["item_id"], items["game_id"], items["anchor_utterance_id"],
                                             strict=True) if utt.get(a, (None,))[0] != g]
    return CheckOutcome("speech_anchor_exists", not bad, f"{len(bad)} item(s) whose anchor is not published", bad[:5])


def speech_context_not_after_anchor(items: pd.DataFrame, context: pd.DataFrame,
                                    utterances: pd.DataFrame) -> CheckOutcome:
    """No context line comes after its anchor (utterance order) or starts after it, every context line
    is of the item's game, and none of the game's lines up to the anchor is left out."""
    utt = _utterance_index(utterances)
    anchor = dict(zip(items["item_id"], items["anchor_utterance_id"], strict=True))
    game = dict(zip(items["item_id"], items["game_id"], strict=True))
    bad: list[str] = []
    listed: dict[str, int] = {}
    for iid, uid in zip(context["item_id"], context["utterance_id"], strict=True):
        listed[iid] = listed.get(iid, 0) + 1
        u, a = utt.get(uid), utt.get(anchor.get(iid))
        if u is None or u[0] != game.get(iid):
            bad.append(f"{iid}: context {uid} is not an utterance of {game.get(iid)}")
        elif a is not None and u[1] is not None and a[1] is not None and u[1] > a[1]:
            bad.append(f"{iid}: context {uid} (order {u[1]}) comes after the anchor (order {a[1]})")
        elif a is not None and u[2] is not None and a[2] is not None and u[2] > a[2]:
            bad.append(f"{iid}: context {uid} starts at {u[2]:.2f}s, after the anchor ({a[2]:.2f}s)")
    per_game: dict[str, list[int]] = {}
    for g, o, _ in utt.values():
        if o is not None:
            per_game.setdefault(g, []).append(o)
    for iid, a_id in anchor.items():
        a = utt.get(a_id)
        if a is not None and a[1] is not None:
            want = sum(1 for o in per_game.get(a[0], []) if o <= a[1])
            if listed.get(iid, 0) != want:
                bad.append(f"{iid}: {listed.get(iid, 0)} context line(s), the game has {want} up to the anchor")
    return CheckOutcome("speech_context_not_after_anchor", not bad,
                        f"{len(bad)} context line(s) after their anchor or missing", bad[:5])


def speech_items_in_game_split(items: pd.DataFrame, games: pd.DataFrame) -> CheckOutcome:
    """Every item sits under its game's split (an item of a game not in the release fails too)."""
    split_of = dict(zip(games["game_id"], games["split"], strict=True))
    bad = [f"{iid}: {s} but game {g} is {split_of.get(g, 'not published')}"
           for iid, g, s in zip(items["item_id"], items["game_id"], items["split"], strict=True)
           if g not in split_of or split_of[g] != s]
    return CheckOutcome("speech_items_in_game_split", not bad,
                        f"{len(bad)} item(s) outside their game's split", bad[:5])
