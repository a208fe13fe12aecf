"""``speech_items`` -> the flat frames its GX suite tests (see ``validation.frames`` for the idea).

``speech_items`` holds one row per item with derived booleans (game known, split as the game's,
asker at the table, answer among the options, ``answer`` pointing at it); ``speech_options`` one row
per option and ``speech_context`` one row per context utterance, for the integrity checks.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

SPEECH_SCALARS = ["item_id", "game_id", "source", "split", "dimension", "bank_item_id", "question",
                  "question_short", "asker_seat", "asker_role", "asker_faction", "answer_key", "answer",
                  "anchor_utterance_id", "explanation", "language"]
SPEECH_DERIVED = ["n_options", "n_context", "game_known", "split_matches_game", "asker_in_roster",
                  "answer_in_options", "answer_index_matches", "context_ends_at_anchor"]


def speech_item_frames(items: pa.Table, roster: dict[str, set[int]], split_of: dict[str, str | None],
                       known: set | None) -> dict[str, pd.DataFrame]:
    rows, options, context = [], [], []
    for r in items.to_pylist():
        gid, seat, opts = r.get("game_id"), r.get("asker_seat"), r.get("options") or []
        ctx, choices, answer = r.get("context_utterance_ids") or [], r.get("choices") or [], r.get("answer")
        keys = [o.get("key") for o in opts]
        row = {c: r.get(c) for c in SPEECH_SCALARS}
        row.update({
            "n_options": len(opts),
            "n_context": len(ctx),
            "game_known": None if known is None else gid in known,
            "split_matches_game": None if known is None or gid not in known else r.get("split") == split_of.get(gid),
            "asker_in_roster": None if seat is None or known is None else seat in roster.get(gid, set()),
            "answer_in_options": r.get("answer_key") in keys,
            "answer_index_matches": (answer is not None and 0 <= answer < len(opts)
                                     and keys[answer] == r.get("answer_key")
                                     and choices == [o.get("text") for o in opts]),
            "context_ends_at_anchor": bool(ctx) and ctx[-1] == r.get("anchor_utterance_id"),
        })
        rows.append(row)
        options += [{"item_id": r.get("item_id"), "position": i, "key": o.get("key"), "text": o.get("text")}
                    for i, o in enumerate(opts)]
        context += [{"item_id": r.get("item_id"), "game_id": gid, "position": i, "utterance_id": u}
                    for i, u in enumerate(ctx)]
    return {"speech_items": pd.DataFrame(rows, columns=SPEECH_SCALARS + SPEECH_DERIVED),
            "speech_options": pd.DataFrame(options, columns=["item_id", "position", "key", "text"]),
            "speech_context": pd.DataFrame(context, columns=["item_id", "game_id", "position", "utterance_id"])}
