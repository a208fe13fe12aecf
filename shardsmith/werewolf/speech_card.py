"""The release card's section on WereBench's evaluation files: speech items per dimension and split,
items quarantined with reasons, what the cleaned games changed (warnings per game), and which of
the extra parts were not in ``raw/werebench``.

Read from the staged files the release publishes (games, speech_items) and the games' quarantine
files, since quarantine rows are not a release table.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from shardsmith.config import Settings
from shardsmith.sources.werewolf.werebench_eval import CLEANED_WARNING, locate
from shardsmith.werewolf.speech_items import STAGE

SOURCE = "werebench"


def _rows(files: list[Path], columns: list[str]) -> list[dict]:
    out: list[dict] = []
    for f in files:
        names = pq.read_schema(f).names
        if all(c in names for c in columns):
            out += pq.read_table(f, columns=columns).to_pylist()
    return out


def speech_card_section(settings: Settings, sources: list[str]) -> str:
    """Markdown for the card, or "" when WereBench is not in the release."""
    if SOURCE not in sources or not settings.raw_dir(SOURCE).is_dir():
        return ""
    layout = settings.layout
    lines = ["## WereBench evaluation files", ""]
    missing = locate(settings.raw_dir(SOURCE)).missing()
    if missing:
        lines += [f"Not in `raw/{SOURCE}`: {'; '.join(missing)}. Without the question bank there is no "
                  "`speech_items` table; without the cleaned games seats, roles and phases come from the "
                  "configs and SRT alone.", ""]
    items = _rows(layout.table_files(SOURCE, "speech_items"), ["dimension", "split"])
    if items:
        per = Counter((r["dimension"], r["split"]) for r in items)
        splits = sorted({s for _, s in per})
        lines += ["Speech items (question bank) per dimension and split:", "",
                  "| dimension | " + " | ".join(splits) + " | total |",
                  "| --- | " + " | ".join("---:" for _ in splits) + " | ---: |"]
        for dim in sorted({d for d, _ in per}):
            cells = [str(per.get((dim, s), 0)) for s in splits]
            lines.append(f"| {dim} | " + " | ".join(cells) + f" | {sum(per[(dim, s)] for s in splits)} |")
        lines.append("")
    quarantined = Counter(r["reason"] for f in sorted(layout.quarantine_dir(SOURCE).glob("*.parquet"))
                          for r in _rows([f], ["stage", "reason"]) if r["stage"] == STAGE)
    lines += [f"Items quarantined: {sum(quarantined.values())}"
              + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(quarantined.items())) + ")" if quarantined else "")
              + ".", ""]
    warned = Counter()
    for g in _rows(layout.table_files(SOURCE, "games"), ["game_id", "warnings"]):
        warned[g["game_id"]] = sum(1 for w in g["warnings"] or () if w.startswith(CLEANED_WARNING))
    changed = {g: n for g, n in warned.items() if n}
    lines.append(f"Cleaned games and configs/SRT disagree in {len(changed)} of {len(warned)} game(s) "
                 "(the cleaned game was used; each disagreement is a warning on the game):")
    if changed:
        lines += ["", "| game | warnings |", "| --- | ---: |"] + [f"| {g} | {n} |" for g, n in sorted(changed.items())]
    return "\n".join(lines) + "\n"
