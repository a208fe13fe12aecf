"""WereBench (Pandakill TV show, Chinese): speaker-labelled SRT transcripts + hand-filled game configs.

Layout: ``<root>/Season_N/NN.srt`` with a config beside it whose name varies
(``NN - GAME_CONFIG.txt``, ``NN-GAME_CONFIG.py``, ``NN-GAME_CONFIG.txt``); files with ``template`` in
the name are blank templates, not games (skipped, and said so).

Configs are Python dict literals. They are parsed as DATA: ``ast.parse`` and a small evaluator
that accepts dict/list/tuple/str/number literals and ``OrderedDict(...)`` /
``collections.OrderedDict(...)`` calls only. Anything else (another call, a name, an attribute,
an operator) quarantines the game with reason ``config_contains_code``; nothing is ever executed.

Decisions:
- One utterance per subtitle line, NOT merged. WereBench's own converter merges adjacent lines of
  one speaker and phase; we keep the lines so each row maps 1:1 to an SRT id (the ids that the
  MVP ``cut_off_time`` and the WereBench questions point at) and speech time adds up exactly. A
  merged view is a group-by on consecutive (speaker, phase) downstream.
- Every subtitle line is accounted for (unit = subtitle line): lines inside the game get their
  phase, lines before ``first_night`` get ``pre_game`` and lines from ``end_time`` on get
  ``post_game`` (the host's recap lives there); lines without a ``说话人 N:`` prefix
  (``no_speaker_label``), with a speaker that ``user_aliases`` does not map to a seat or the host
  (``speaker_unmapped``), or with a broken / reversed timestamp (``broken_timestamp``) become
  quarantine rows whose ``detail`` is JSON with the SRT id, times and text.
- Config problems that do not invalidate the game (an empty phase time, an unknown phase key, phase
  anchors out of order, a speaker whose alias and role disagree) are kept and listed in the game's
  ``warnings``. Phases are the config anchors sorted by time.
- Timestamps with fewer than three fraction digits (``00:00:36,72``) are read as decimal fractions.
- No winner field exists in WereBench. The host announces it ("游戏结束，好人阵营获胜": game over, the
  good side wins): ``winner`` is the faction announced after the end-of-game marker in the latest
  host line (outside pre-game rule explanations) that has one, with the phrases as data in
  ``schemas/vocabulary/werewolf_outcomes.csv``; the line's id goes to ``extra.winner_announced_in``.
  No announcement leaves ``winner`` null; host lines naming different winners leave it null, and
  either case is said in ``warnings``. The MVP goes to ``extra``.
"""

from __future__ import annotations

import ast
import csv
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from shardsmith.errors import ShardsmithError
from shardsmith.hashing import sha256_files
from shardsmith.packaged import data_path
from shardsmith.pseudonym import split_for
from shardsmith.schemas.roles import Role, UnknownRoleError, lookup_role
from shardsmith.schemas.werewolf import FACTIONS
from shardsmith.sources.labelfiles import LabelFileError, read_label_text
from shardsmith.sources.werewolf.base import (
    Discovery,
    GameRef,
    GameResult,
    GameSource,
    Skipped,
    canonical_phase,
    dumps,
    phase_at,
    phase_day,
    rule_variant_id,
    safe_id,
    seat_row,
    source_transcription,
)
from shardsmith.sources.werewolf.rows import GameRows, phase_row
from shardsmith.sources.werewolf.werebench_eval import (
    EvalParts,
    bank_by_game,
    cleaned_path,
    compare_lines,
    load_cleaned,
    locate,
    merge_metadata,
)

SOURCE = "werebench"
UNIT = "subtitle_line"
log = logging.getLogger(__name__)

_CONFIG_NAME = re.compile(r"^(\d+)\s*-\s*GAME_CONFIG.*\.(txt|py)$", re.I)
_SRT_NAME = re.compile(r"^(\d+)\.srt$", re.I)
_TIME = r"(\d+):(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_TIME_RE = re.compile(rf"^\s*{_TIME}\s*$")
_ARROW_RE = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}\s*$")
_SPEAKER_RE = re.compile(r"^\s*(说话人\s*(\d+))\s*[:：]\s?(.*)$", re.S)
_SEAT_RE = re.compile(r"^\s*(\d{1,2})\s*号?\s*$")


class ConfigError(ShardsmithError, ValueError):
    """A config that cannot be used; ``reason`` is the quarantine code."""

    reason_in_str = True

    def __init__(self, reason: str, detail: str):
        super().__init__(reason, detail)


# ------------------------------------------------------------------ safe config parsing


def _literal(node: ast.AST) -> Any:
    """Evaluate a literal node; OrderedDict(...) becomes a plain (ordered) dict. Anything else raises."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, (ast.USub, ast.UAdd))
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, (int, float))
    ):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ConfigError("config_contains_code", f"dict unpacking (**) at line {node.lineno}")
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if (
        isinstance(node, ast.Call)
        and _is_ordered_dict(node.func)
        and not node.keywords
        and len(node.args) <= 1
    ):
        items = _literal(node.args[0]) if node.args else []
        if isinstance(items, dict):
            return dict(items)
        if isinstance(items, (list, tuple)) and all(isinstance(p, tuple) and len(p) == 2 for p in items):
            return dict(items)
        raise ConfigError(
            "config_contains_code", f"OrderedDict of something other than pairs at line {node.lineno}"
        )
    what = ast.unparse(node)[:80] if hasattr(ast, "unparse") else type(node).__name__
    raise ConfigError(
        "config_contains_code", f"{type(node).__name__} at line {getattr(node, 'lineno', '?')}: {what}"
    )


def _is_ordered_dict(func: ast.AST) -> bool:
    if isinstance(func, ast.Name):
        return func.id == "OrderedDict"
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "OrderedDict"
        and isinstance(func.value, ast.Name)
        and func.value.id == "collections"
    )


_ALLOWED_IMPORTS = {("collections", "OrderedDict"), ("collections", None)}


def parse_config(text: str) -> dict:
    """The GAME_CONFIG dict of a WereBench config file, parsed as data (never executed)."""
    try:
        tree = ast.parse(text.lstrip("\ufeff"))
    except SyntaxError as exc:
        raise ConfigError("config_syntax_error", f"line {exc.lineno}: {exc.msg}") from None
    config = None
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and all(
            (stmt.module, a.name) in _ALLOWED_IMPORTS for a in stmt.names
        ):
            continue
        if isinstance(stmt, ast.Import) and all((a.name, None) in _ALLOWED_IMPORTS for a in stmt.names):
            continue
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == "GAME_CONFIG"
            and config is None
        ):
            config = _literal(stmt.value)
            continue
        raise ConfigError(
            "config_contains_code",
            f"statement at line {stmt.lineno} is not `GAME_CONFIG = {{...}}`: {ast.unparse(stmt)[:80]}",
        )
    if not isinstance(config, dict) or not isinstance(config.get("metadata"), dict):
        raise ConfigError("config_invalid", "no GAME_CONFIG dict with a 'metadata' dict")
    return config


# ------------------------------------------------------------------ SRT parsing


@dataclass
class SrtEntry:
    index: int  # position in the file (0-based), the order of utterances
    srt_id: int | None
    start_s: float | None
    end_s: float | None
    timing: str  # the raw timing line
    text: str
    problem: str | None = None  # broken_timestamp | ...


def parse_time(text: str) -> float | None:
    m = _TIME_RE.match(str(text))
    return _seconds(m.groups()) if m else None


def _seconds(g: tuple) -> float:
    h, mi, s, frac = g
    return int(h) * 3600 + int(mi) * 60 + int(s) + (float(f"0.{frac}") if frac else 0.0)


def parse_srt(data: bytes | str) -> list[SrtEntry]:
    """Blocks of an SRT file, tolerant of BOM, CRLF, missing blank lines and broken timestamps.

    A block starts at a line containing ``-->`` (normally preceded by a numeric id line). A timing
    line that does not parse gives an entry with ``problem='broken_timestamp'``; the parser goes on.
    """
    text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else data.lstrip("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    entries: list[SrtEntry] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < n else ""
        if line.strip().isdigit() and "-->" in nxt:
            srt_id, timing, i = int(line.strip()), nxt, i + 2
        elif "-->" in line:
            srt_id, timing, i = None, line, i + 1
        else:
            if line.strip() and entries:  # stray text after a block's blank line: keep it with the block
                entries[-1].text = (entries[-1].text + "\n" + line.strip()).strip()
            i += 1
            continue
        body: list[str] = []
        while i < n and lines[i].strip() != "":
            if lines[i].strip().isdigit() and i + 1 < n and "-->" in lines[i + 1]:
                break  # the next block starts without a blank line between
            body.append(lines[i].strip())
            i += 1
        m = _ARROW_RE.match(timing)
        start = end = None
        problem = None
        if m:
            start, end = _seconds(m.groups()[:4]), _seconds(m.groups()[4:])
            if end < start:
                problem = "broken_timestamp"
        else:
            problem = "broken_timestamp"
        entries.append(SrtEntry(len(entries), srt_id, start, end, timing.strip(), "\n".join(body), problem))
    return entries


# ------------------------------------------------------------------ the announced winner

OUTCOMES_CSV = data_path("schemas", "vocabulary", "werewolf_outcomes.csv")


@lru_cache(maxsize=1)
def outcome_phrases() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """End-of-game markers and (win phrase, faction) pairs from ``werewolf_outcomes.csv``."""
    markers: list[str] = []
    wins: list[tuple[str, str]] = []
    with OUTCOMES_CSV.open(newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.DictReader(fh), start=2):
            phrase, faction = row["phrase"].strip(), row["faction"].strip()
            if not phrase:
                raise ValueError(f"{OUTCOMES_CSV.name}:{lineno}: empty phrase")
            if row["kind"] == "end_marker":
                markers.append(phrase)
            elif row["kind"] == "win" and faction in FACTIONS and faction != "host":
                wins.append((phrase, faction))
            else:
                raise ValueError(f"{OUTCOMES_CSV.name}:{lineno}: kind {row['kind']!r} / faction {faction!r}")
    return tuple(markers), tuple(wins)


def announced_winner(host_lines: list[tuple[str, str]]) -> tuple[str | None, str | None, list[str]]:
    """(winner, id of the announcing line, warnings) from the host's lines ``(utterance_id, text)``.

    A line announces a winner when a win phrase follows an end-of-game marker in it; the first such
    phrase counts. The latest announcing line decides; an earlier one naming another faction makes
    the winner unknown.
    """
    markers, wins = outcome_phrases()
    found: list[tuple[str, str]] = []
    for uid, text in host_lines:
        for marker in markers:
            at = text.find(marker)
            rest = text[at + len(marker):] if at >= 0 else ""
            hits = sorted((rest.find(phrase), faction) for phrase, faction in wins if phrase in rest)
            if hits:
                found.append((uid, hits[0][1]))
                break
    if not found:
        return None, None, ["no host line announces the winner; winner is null"]
    named = sorted({f for _, f in found})
    if len(named) > 1:
        return None, None, [f"host lines announce different winners {named} ({[u for u, _ in found]}); "
                            "winner is null"]
    return found[-1][1], found[-1][0], []


# ------------------------------------------------------------------ discovery


_NOT_SEASONS = {"data", "werebench", "dataset"}  # the evaluation parts beside the Season folders (flat layout)


def discover(root: Path) -> Discovery:
    """Games under ``root`` (Season folders, flat or as cloned), in a stable order; templates and
    strays are skipped. Each game also names its cleaned game and the question bank where the tree
    has them; a game the bank asks about that has no transcript or config is still a game (it is
    quarantined with its items, never dropped)."""
    parts = locate(root) if root.is_dir() else EvalParts(root, None, None)
    games: list[GameRef] = []
    skipped: list[Skipped] = []
    seasons = parts.seasons
    season_dirs = sorted(p for p in seasons.iterdir() if p.is_dir() and not (
        seasons == root and p.name.lower() in _NOT_SEASONS)) if seasons.is_dir() else []
    for season_dir in season_dirs:
        configs: dict[int, Path] = {}
        srts: dict[int, Path] = {}
        for f in sorted(season_dir.iterdir()):
            if not f.is_file():
                continue
            if "template" in f.name.lower():
                skipped.append(Skipped(str(f), "template: a blank config form, not a game"))
                log.info("werebench: skipping %s (config template, not a game)", f)
                continue
            if m := _CONFIG_NAME.match(f.name):
                key = int(m.group(1))
                if key in configs:
                    skipped.append(
                        Skipped(str(f), f"second config for game {key}; using {configs[key].name}")
                    )
                    log.warning("werebench: skipping %s (second config for game %s)", f, key)
                    continue
                configs[key] = f
            elif m := _SRT_NAME.match(f.name):
                srts[int(m.group(1))] = f
            else:
                skipped.append(Skipped(str(f), "not a WereBench game file"))
                log.info("werebench: skipping %s (not a game file)", f)
        for key in sorted(set(configs) | set(srts)):
            native = f"{season_dir.name}/{key:02d}"
            paths = tuple((k, str(p)) for k, p in (("config", configs.get(key)), ("srt", srts.get(key)),
                                                   ("cleaned", cleaned_path(parts, native)),
                                                   ("bank", parts.bank)) if p)
            games.append(
                GameRef(
                    SOURCE,
                    safe_id(SOURCE, season_dir.name.lower().replace("season_", "s"), f"{key:02d}"),
                    native,
                    paths,
                )
            )
    games += _games_only_the_bank_names(parts, {g.native_id for g in games})
    return Discovery(games, skipped)


def _games_only_the_bank_names(parts: EvalParts, found: set[str]) -> list[GameRef]:
    """Games the question bank references that have no transcript or config here."""
    if parts.bank is None:
        return []
    out = []
    for native in sorted(set(bank_by_game(parts.bank)) - found):
        season, _, key = native.partition("/")
        out.append(GameRef(SOURCE, safe_id(SOURCE, season.lower().replace("season_", "s") or "unreferenced",
                                           key or "00"), native or "unreferenced", (("bank", str(parts.bank)),)))
    return out


# ------------------------------------------------------------------ building one game


def _speaker_key(label: str) -> str:
    m = re.match(r"\s*说话人\s*(\d+)", label)
    return f"说话人 {int(m.group(1))}" if m else label.strip()


def _alias_target(aliases: Any) -> int | str | None:
    """A user_aliases entry -> seat number, 'host', or None when it names neither."""
    values = aliases if isinstance(aliases, (list, tuple)) else [aliases]
    for a in values:
        if isinstance(a, int):
            return a
        s = str(a).strip()
        if s.lower() in {"host", "hsot"} or s == "主持人":
            return "host"
        if m := _SEAT_RE.match(s):
            return int(m.group(1))
    return None


def _seat_of(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    m = _SEAT_RE.match(str(value))
    return int(m.group(1)) if m else None


def _line_detail(e: SrtEntry, extra: dict | None = None) -> str:
    d = {"srt_id": e.srt_id, "timing": e.timing, "start_s": e.start_s, "end_s": e.end_s, "text": e.text}
    d.update(extra or {})
    return dumps(d)


def _duration(e: SrtEntry) -> float:
    return (
        max(0.0, e.end_s - e.start_s)
        if e.start_s is not None and e.end_s is not None and not e.problem
        else 0.0
    )


@dataclass
class _Table:
    """Who speaks: SRT speaker label -> seat number or ``"host"``, from ``user_aliases``."""

    target_of: dict[str, int | str]
    variant: str
    board: list[str]


def _read_table(md: dict, rows: GameRows, warnings: list[str]) -> _Table:
    """Speakers to seats and seats to roles (into ``rows.seats``); UnknownRoleError for an unknown role."""
    aliases = md.get("user_aliases") or {}
    real_role = {_speaker_key(k): v for k, v in (md.get("real_role") or {}).items()}
    target_of: dict[str, int | str] = {}
    for label, al in aliases.items():
        t = _alias_target(al)
        if t is None:
            warnings.append(f"user_aliases {label!r} -> {al!r} names neither a seat nor the host")
        else:
            target_of[_speaker_key(label)] = t
    role_of_label = {k: lookup_role(v) for k, v in real_role.items() if str(v).strip()}
    board = [str(r) for r in md.get("game_roles") or [] if str(r).strip()]
    variant = rule_variant_id(board)
    seat_roles = _seat_roles(target_of, real_role, role_of_label, warnings)
    for label in sorted(set(real_role) - set(target_of)):
        warnings.append(f"real_role has {label} ({real_role[label]!r}) but user_aliases gives it no seat")
    for s in sorted({t for t in target_of.values() if isinstance(t, int)}):
        role_text = seat_roles.get(s, (None, None))[1]
        if role_text is None:
            warnings.append(f"seat {s} has no role in real_role")
        rows.seats[s] = seat_row(s, role_text)
    return _Table(target_of, variant, board)


def _seat_roles(target_of: dict[str, int | str], real_role: dict[str, str], role_of_label: dict[str, Role],
                warnings: list[str]) -> dict[int, tuple[str, str]]:
    """Seat -> (speaker label, verbatim role); disagreements between the two tables become warnings."""
    seat_roles: dict[int, tuple[str, str]] = {}
    for label in sorted(target_of, key=lambda s: (len(s), s)):
        t = target_of[label]
        role_text = real_role.get(label)
        role = role_of_label.get(label)
        if t == "host":
            if role is not None and role.role != "host":
                warnings.append(f"{label} is the host in user_aliases but has role {role_text!r} in real_role")
            continue
        if role is not None and role.faction == "host":
            warnings.append(f"{label} is seat {t} in user_aliases but 'host' in real_role")
            continue
        if t in seat_roles and role_text and seat_roles[t][1] != role_text:
            warnings.append(f"seat {t}: {seat_roles[t][0]} says {seat_roles[t][1]!r}, {label} says "
                            f"{role_text!r}; kept the first")
        elif role_text and t not in seat_roles:
            seat_roles[t] = (label, role_text)  # type: ignore[index]
    return seat_roles


def _phases(md: dict, warnings: list[str]) -> tuple[list[dict], float | None, float | None]:
    """Phases from the ``game_status`` anchors sorted by time, the game's start and its end."""
    anchors: list[tuple[float, int, str, str]] = []
    game_end: float | None = None
    for pos, (key, value) in enumerate((md.get("game_status") or {}).items()):
        name = canonical_phase(str(key))
        t = parse_time(str(value).strip())
        if name is None:
            warnings.append(f"game_status key {key!r} is not a phase name; ignored")
        elif t is None:
            warnings.append(f"game_status {key!r} has no usable time ({value!r}); ignored")
        elif name == "end_time":
            game_end = t
        else:
            anchors.append((t, pos, name, str(key)))
    if [a[1] for a in sorted(anchors)] != [a[1] for a in anchors]:
        warnings.append("game_status anchors are not in chronological order; phases sorted by time")
    anchors.sort()
    phases = [phase_row(name, verbatim, t, anchors[i + 1][0] if i + 1 < len(anchors) else game_end)
              for i, (t, _, name, verbatim) in enumerate(anchors)]
    if game_end is None:
        warnings.append("game_status has no end_time; no line is marked post_game")
    return phases, (anchors[0][0] if anchors else None), game_end


def _utterances(rows: GameRows, entries: list[SrtEntry], table: _Table, phases: list[dict],
                game_start: float | None, game_end: float | None) -> None:
    """Each subtitle line becomes an utterance or a quarantine row naming why."""
    for e in entries:
        dur, native = _duration(e), f"{rows.game_id}#{e.srt_id}"
        if e.problem:
            rows.reject_line(e.problem, _line_detail(e), native)
            continue
        m = _SPEAKER_RE.match(e.text)
        if not m:
            rows.reject_line("no_speaker_label", _line_detail(e), native, dur)
            continue
        label, text = m.group(1), m.group(3).strip()
        target = table.target_of.get(_speaker_key(label))
        if target is None:
            rows.reject_line("speaker_unmapped", _line_detail(e, {"speaker_label": label}), native, dur)
            continue
        rows.utterance(
            f"{rows.game_id}-{e.srt_id if e.srt_id is not None else f'x{e.index}'}", text,
            start_s=e.start_s, end_s=e.end_s, seat=None if target == "host" else int(target),
            is_host=target == "host", label=label, speaker_source="transcript_label",
            phase=phase_at(phases, e.start_s, game_start, game_end), seconds=dur, extra={"srt_id": e.srt_id})


def _mvp_votes(rows: GameRows, md: dict, entries: list[SrtEntry], warnings: list[str]) -> int | None:
    """Only the MVP's votes are recorded, one per day; ``cut_off_time`` is an SRT id. Returns the MVP seat."""
    mvp = md.get("MVP") or {}
    mvp_seat = _seat_of(mvp.get("id"))
    by_srt = {e.srt_id: f"{rows.game_id}-{e.srt_id}" for e in entries if e.srt_id is not None}
    for key, vote in (mvp.get("votes") or {}).items():
        day = phase_day(canonical_phase(str(key).removesuffix("_votes")))
        if not isinstance(vote, dict) or mvp_seat is None:
            warnings.append(f"MVP vote {key!r} unusable: {vote!r}")
            continue
        cut = vote.get("cut_off_time")
        rows.vote(day, mvp_seat, _seat_of(vote.get("vote_to")), "mvp_record",
                  by_srt.get(cut) if isinstance(cut, int) else None)
    return mvp_seat


def _read_entries(srt_path: Path | None) -> tuple[list[SrtEntry], str | None]:
    """The SRT's entries, or why its text cannot be decoded (strict: a cut or flipped byte must not
    become U+FFFD in a published utterance)."""
    if srt_path is None:
        return [], None
    try:
        return parse_srt(read_label_text(srt_path)), None
    except LabelFileError as exc:
        return [], str(exc)


def build_game(ref: GameRef) -> GameResult:
    """Rows for one WereBench game; every subtitle line ends up an utterance or a quarantine row.

    Where the cleaned game exists, its verified seats, roles, host and phases win over the config
    (``werebench_eval.merge_metadata``); the question bank's items about this game ride along on the
    result (``bank_items``) and become ``speech_items`` once the game's rows exist (``staging.games``).
    """
    srt_path, cfg_path, clean_path, bank_path = (ref.path(k) for k in ("srt", "config", "cleaned", "bank"))
    entries, undecodable = _read_entries(srt_path)
    rows = GameRows(ref, UNIT, str(srt_path or cfg_path or bank_path), len(entries) if undecodable is None else 1)
    rows.result.speech_s = {"input": sum(_duration(e) for e in entries), "published": 0.0, "quarantined": 0.0}
    if bank_path is not None:
        rows.result.bank_items = list(bank_by_game(bank_path).get(ref.native_id, []))
        rows.result.bank_path = str(bank_path)
    if cfg_path is None and srt_path is None:
        return rows.set_aside("labels", "game_missing",
                              f"the question bank names {ref.native_id}, which has no transcript or config here")
    if cfg_path is None:
        return rows.set_aside("labels", "config_missing", f"no GAME_CONFIG file beside {srt_path}")
    if srt_path is None:
        return rows.set_aside("labels", "transcript_missing", f"no NN.srt beside {cfg_path}")
    if undecodable is not None:
        return rows.set_aside("labels", "undecodable_text", undecodable)
    try:
        config = parse_config(read_label_text(cfg_path))
    except ConfigError as exc:
        return rows.set_aside("labels", exc.reason, f"{cfg_path.name}: {exc.detail}")
    except LabelFileError as exc:
        return rows.set_aside("labels", "undecodable_text", str(exc))
    md, warnings = config["metadata"], []
    cleaned = None
    if clean_path is not None:
        try:
            cleaned = load_cleaned(clean_path)
            md = merge_metadata(md, cleaned["metadata"], warnings)
        except (ValueError, LabelFileError) as exc:  # JSONDecodeError is a ValueError
            warnings.append(f"cleaned game {clean_path.name} unreadable ({exc}); used the config")
    try:
        table = _read_table(md, rows, warnings)
    except UnknownRoleError as exc:
        return rows.set_aside("labels", "unknown_role", f"{cfg_path.name}: {exc}")
    phases, game_start, game_end = _phases(md, warnings)
    _utterances(rows, entries, table, phases, game_start, game_end)
    if cleaned is not None:
        compare_lines(cleaned, rows.result.utterances, canonical_phase, warnings)
    mvp_seat = _mvp_votes(rows, md, entries, warnings)
    utterances = rows.result.utterances
    winner, announced_in, winner_warnings = announced_winner(
        [(u["utterance_id"], u["text"]) for u in utterances if u["is_host"] and u["phase"] != "pre_game"])
    extra = {
        "episode": md.get("source"),
        "winner_announced_in": announced_in,
        "config_game_id": md.get("game_id"),
        "mvp_seat": mvp_seat,
        "sheriff_appointments": config.get("sheriff_appointments"),
        "summary_id_range": list(config["summary_id_range"]) if config.get("summary_id_range") else None,
        "game_roles": md.get("game_roles"),
        "logs": md.get("logs") or None,
    }
    return rows.game(
        split=split_for(ref.game_id),  # no official split: deterministic by game
        language="zh", rule_variant=table.variant,
        rule_variant_text=(md.get("game_rules") or "").strip() or "、".join(table.board),
        has_host=any(t == "host" for t in table.target_of.values()), winner=winner, phases=phases,
        transcription=source_transcription("zh", {"speaker_labels": "说话人 N via user_aliases"}),
        raw_sha256=sha256_files([srt_path, cfg_path, *([clean_path] if cleaned is not None else [])]),
        warnings=warnings + winner_warnings, extra=extra, mvp_seat=mvp_seat,
        summary=(str((cleaned or {}).get("metadata", {}).get("summary") or "").strip() or None))


class WereBench(GameSource):
    """WereBench: 77 televised Chinese Werewolf games (Pandakill), speaker-labelled SRT transcripts
    plus per-game config dict literals (parsed as data, never executed)."""

    name = SOURCE
    unit = UNIT
    licence = "see the WereBench repository (research use)"
    citation = ("Song et al., Beyond Survival: Evaluating LLMs in Social Deduction Games with "
                "Human-Aligned Strategies, arXiv:2510.11389 (2025)")
    homepage = "https://github.com/ZiruiSongBest/WereBench"
    layouts = ("Season_N/NN.srt + NN - GAME_CONFIG.txt | NN-GAME_CONFIG.py | NN-GAME_CONFIG.txt",
               "optional beside them: data/Season_N/NN.json (cleaned games), WereBench/WereBench.json (question bank)",
               "as cloned: dataset/clean_process/Season_N/, dataset/data/, dataset/WereBench/")

    def discover(self, root: Path) -> Discovery:
        return discover(root)

    def build_game(self, ref: GameRef, transcriber: Any = None, progress: Any = None) -> GameResult:
        return build_game(ref)
