"""WereBench's own evaluation files: the cleaned games (``data/Season_N/NN.json``) and the
question bank of its speech evaluation (``WereBench.json``).

Two layouts under ``raw/werebench/`` are read:

- as cloned: ``dataset/clean_process/Season_N/`` (SRT + configs), ``dataset/data/Season_N/NN.json``,
  ``dataset/WereBench/WereBench.json``;
- flat: ``Season_N/`` with ``data/Season_N/NN.json`` and ``WereBench/WereBench.json`` (or
  ``WereBench.json``) beside it.

Either extra part may be absent; :func:`locate` says which are there, and the release card says
which were not.

The cleaned games are the benchmark authors' hand-verified facts: where one exists, its
``user_aliases``, ``real_role``, ``game_status`` (phases) and ``MVP`` win over the config's, and every
place the two disagree, and every cleaned line whose speaker or phase disagrees with the row built
from the SRT, becomes a game warning starting with :data:`CLEANED_WARNING` (the card counts them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from shardsmith.sources.labelfiles import read_label_text

CLEANED_WARNING = "cleaned game disagrees: "
# Metadata the cleaned game states as verified; it wins over the config's value for the same key.
PREFERRED_KEYS = ("user_aliases", "real_role", "game_status", "MVP", "game_roles")
BANK_NAMES = ("WereBench/WereBench.json", "WereBench.json")
_REFERENCE = re.compile(r"^(?:dataset/)?data/(Season_\d+)/(\d+)\.json$")


@dataclass(frozen=True)
class EvalParts:
    """Where the parts of a WereBench tree are: the games (SRT + configs), cleaned games, the bank."""

    seasons: Path
    cleaned: Path | None
    bank: Path | None

    def missing(self) -> list[str]:
        """The extra parts not found, in words (for the card)."""
        return [what for what, p in (("cleaned games (data/Season_N/NN.json)", self.cleaned),
                                     ("question bank (WereBench/WereBench.json)", self.bank)) if p is None]


def locate(root: Path) -> EvalParts:
    """The parts of ``raw/werebench`` in either layout (cloned ``dataset/`` or flat)."""
    base = root / "dataset" if (root / "dataset" / "clean_process").is_dir() else root
    seasons = base / "clean_process" if base is not root else root
    cleaned = base / "data" if (base / "data").is_dir() else None
    bank = next((base / n for n in BANK_NAMES if (base / n).is_file()), None)
    return EvalParts(seasons, cleaned, bank)


def cleaned_path(parts: EvalParts, native_id: str) -> Path | None:
    """The cleaned game of ``Season_N/NN``, when the tree has it."""
    if parts.cleaned is None:
        return None
    p = parts.cleaned / f"{native_id}.json"
    return p if p.is_file() else None


def native_of_reference(reference: str) -> str | None:
    """``data/Season_1/01.json`` -> ``Season_1/01`` (None for anything else)."""
    m = _REFERENCE.match(str(reference).strip())
    return f"{m.group(1)}/{int(m.group(2)):02d}" if m else None


# ------------------------------------------------------------------ the question bank


@lru_cache(maxsize=4)
def _bank(path: str, mtime_ns: int, size: int) -> dict[str, list[dict]]:
    """Bank items by game (native id; ``""`` for an unreadable reference), each with its category."""
    doc = json.loads(read_label_text(Path(path)))
    by_game: dict[str, list[dict]] = {}
    for category in doc.get("categories") or ():
        for q in category.get("questions") or ():
            item = {**q, "category": category.get("categoryName"), "bank_version": doc.get("version")}
            by_game.setdefault(native_of_reference(q.get("reference", "")) or "", []).append(item)
    return by_game


def bank_by_game(path: Path) -> dict[str, list[dict]]:
    """The bank's items grouped by the game they reference (parsed once per file version)."""
    st = path.stat()
    return _bank(str(path), st.st_mtime_ns, st.st_size)


# ------------------------------------------------------------------ the cleaned games


def load_cleaned(path: Path) -> dict:
    """A cleaned game: ``{"metadata": {...}, "utterances": [...]}``."""
    doc = json.loads(read_label_text(path))
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
        raise ValueError(f"{path.name}: no 'metadata' object")
    return doc


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)[:160]


def merge_metadata(config_md: dict, cleaned_md: dict, warnings: list[str]) -> dict:
    """The config's metadata with the cleaned game's verified keys put over it; each key where the
    two disagree becomes one warning naming the entries that differ."""
    merged = dict(config_md)
    for key in PREFERRED_KEYS:
        theirs = cleaned_md.get(key)
        if theirs in (None, "", {}, []):
            continue
        ours = config_md.get(key)
        if ours not in (None, "", {}, []) and ours != theirs:
            if isinstance(ours, dict) and isinstance(theirs, dict):
                diff = {k: (ours.get(k), theirs.get(k)) for k in dict.fromkeys([*ours, *theirs])
                        if ours.get(k) != theirs.get(k)}
                warnings.append(f"{CLEANED_WARNING}{key}: config vs cleaned {_short(diff)}; used the cleaned game")
            else:
                warnings.append(f"{CLEANED_WARNING}{key}: config {_short(ours)} vs cleaned {_short(theirs)}; "
                                "used the cleaned game")
        merged[key] = theirs
    return merged


def compare_lines(cleaned: dict, utterances: list[dict], canonical_phase, warnings: list[str]) -> None:
    """Every cleaned line (it merges SRT entries) against the rows built from those entries: an entry
    the transcript does not publish, a different speaker or a different phase is a warning."""
    by_srt = {json.loads(u["extra"]).get("srt_id"): u for u in utterances}
    for line in cleaned.get("utterances") or ():
        speaker = str(line.get("speaker_id") or "").strip()
        phase = canonical_phase(str(line.get("status") or ""))
        for srt_id in line.get("utterance_id") or ():
            u = by_srt.get(srt_id)
            if u is None:
                warnings.append(f"{CLEANED_WARNING}line {srt_id} ({speaker}) is not a published utterance of "
                                "the transcript")
                continue
            ours = "host" if u["is_host"] else f"{u['speaker_seat']}号"
            if speaker and speaker != ours:
                warnings.append(f"{CLEANED_WARNING}line {srt_id}: speaker {speaker} in the cleaned game, "
                                f"{ours} from the SRT label")
            if phase is not None and u["phase"] not in (phase, "pre_game", "post_game"):
                warnings.append(f"{CLEANED_WARNING}line {srt_id}: phase {phase} in the cleaned game, "
                                f"{u['phase']} from the phase times")
