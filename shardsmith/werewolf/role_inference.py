""""Who is the werewolf" items: per game and seat, the true role and what that seat said.

Built per game from its ``games`` row and ``utterances`` rows. Decisions:

- one row per seat that has a role (a seat whose role the source does not give has no answer, so
  it is no item; the game's ``warnings`` already name it); the host holds no seat and is no item;
- ``utterance_ids`` are the seat's in-game lines in utterance order; post-game lines are left out
  because there players and the host say who held which card;
- ``role_set`` is the multiset of dealt roles at the table (sorted canonical ids, repeated as many
  times as dealt): the board a model reasons over, alongside the ``rule_variant`` id (which keeps
  only the distinct roles).
"""

from __future__ import annotations

from shardsmith.sources.werewolf.base import safe_id


def role_set(game: dict) -> list[str]:
    """The game's dealt roles, sorted, with repeats (e.g. four ``werewolf`` entries)."""
    return sorted(s["role"] for s in game.get("seats") or () if s.get("role"))


def item_id(game_id: str, seat: int) -> str:
    return safe_id(game_id, f"seat{seat}")


def build_role_inference(game: dict, utterances: list[dict]) -> list[dict]:
    """Rows of the ``role_inference`` table for one game, by seat."""
    board = role_set(game)
    said: dict[int, list[str]] = {}
    for u in sorted((u for u in utterances if u.get("game_id") == game["game_id"]), key=lambda u: u["order"]):
        if u.get("speaker_seat") is not None and u.get("phase") != "post_game":
            said.setdefault(u["speaker_seat"], []).append(u["utterance_id"])
    rows = []
    for s in sorted(game.get("seats") or (), key=lambda s: s["seat"]):
        if not s.get("role"):
            continue
        rows.append({
            "item_id": item_id(game["game_id"], s["seat"]),
            "game_id": game["game_id"],
            "source": game["source"],
            "split": game.get("split"),
            "seat": s["seat"],
            "role": s["role"],
            "faction": s.get("faction"),
            "final_role": s.get("final_role"),
            "utterance_ids": said.get(s["seat"], []),
            "rule_variant": game.get("rule_variant"),
            "role_set": board,
        })
    return rows
