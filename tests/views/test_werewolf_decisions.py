"""Evaluation views: splits on every table, ``decisions`` (one per vote, context never after it) and
``role_inference``; on the 77 real WereBench games, on the demo sources and on small synthetic games."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pyarrow as pa
import pytest

from shardsmith.config import Settings
from shardsmith.schemas.werewolf import (
    DECISIONS_SCHEMA,
    GAMES_SCHEMA,
    ROLE_INFERENCE_SCHEMA,
    UTTERANCES_SCHEMA,
    VOTES_SCHEMA,
)
from shardsmith.staging.games import GAME_TABLES, build_game, discover_games, game_tables
from shardsmith.validation import integrity as I
from shardsmith.validation.frames import werewolf_frames
from shardsmith.werewolf.decisions import build_decisions, day_end_s
from shardsmith.werewolf.role_inference import build_role_inference

# ----------------------------------------------------------------- an independent reading of WereBench

_ORDINAL = {w: i for i, w in enumerate(
    ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"], 1)}
_SRT_TIME = re.compile(r"(?m)^\s*(\d+)\s*\n\s*(\d+):(\d+):(\d+)[,.](\d+)\s*-->")


class _OrderedDictAsPairs(ast.NodeTransformer):
    """``OrderedDict([...])`` -> its list of pairs, so the rest is a plain literal."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        assert name == "OrderedDict" and len(node.args) == 1, ast.unparse(node)[:80]
        return self.visit(node.args[0])


def _config(path: Path) -> dict:
    """GAME_CONFIG of a config file, read with ``ast`` only (never executed)."""
    tree = ast.parse(path.read_text(encoding="utf-8-sig"))
    (value,) = [s.value for s in tree.body if isinstance(s, ast.Assign) and s.targets[0].id == "GAME_CONFIG"]
    return ast.literal_eval(_OrderedDictAsPairs().visit(value))


def _seconds(text: str) -> float:
    h, m, s, frac = re.fullmatch(r"\s*(\d+):(\d+):(\d+)[,.](\d+)\s*", text).groups()
    return int(h) * 3600 + int(m) * 60 + int(s) + float(f"0.{frac}")


def _truth(root: Path) -> dict[str, dict]:
    """Per game: its MVP votes (day, voter, target, cut-off id), phase anchors and SRT start times."""
    games = {}
    for cfg in sorted(root.glob("Season_*/*GAME_CONFIG*")):
        if "template" in cfg.name.lower():
            continue
        season, num = cfg.parent.name.split("_")[1], int(re.match(r"\d+", cfg.name).group())
        md = _config(cfg)["metadata"]
        mvp = md["MVP"]
        seat = int(re.search(r"\d+", str(mvp["id"])).group())
        votes = []
        for key, v in mvp["votes"].items():
            target = re.search(r"\d+", str(v["vote_to"]))
            votes.append((_ORDINAL[key.split("_")[0]], seat, int(target.group()) if target else None,
                          v["cut_off_time"]))
        anchors = [(k, _seconds(t)) for k, t in md["game_status"] if str(t).strip()]
        srt = (cfg.parent / f"{num:02d}.srt").read_text(encoding="utf-8-sig")
        starts = {int(i): int(h) * 3600 + int(m) * 60 + int(s) + float(f"0.{f}")
                  for i, h, m, s, f in _SRT_TIME.findall(srt.replace("\r\n", "\n"))}
        games[f"werebench-s{season}-{num:02d}"] = {"votes": votes, "anchors": anchors, "starts": starts}
    return games


def _day_ends_by_config(anchors: list[tuple[str, float]], day: int) -> float | None:
    """The issue's bound: the day is over when a later-numbered phase begins or the game ends."""
    later = [t for k, t in anchors
             if k == "end_time" or (k.split("_")[0] in _ORDINAL and _ORDINAL[k.split("_")[0]] > day)]
    return min(later) if later else None


@pytest.fixture(scope="module")
def werebench(real_samples: Path):
    root = real_samples / "werebench"
    t0 = time.perf_counter()
    results = [build_game("werebench", ref) for ref in discover_games("werebench", root)]
    seconds = time.perf_counter() - t0
    return results, _truth(root), seconds


def test_every_config_vote_is_one_decision(werebench) -> None:
    results, truth, seconds = werebench
    assert len(results) == 77 and seconds < 30, seconds  # no audio: the 77 games build in seconds
    assert sum(len(t["votes"]) for t in truth.values()) == sum(len(r.decisions) for r in results) == 113
    for r in results:
        got = sorted((d["day"], d["voter_seat"], d["target_seat"], d["cut_off_utterance_id"]) for d in r.decisions)
        want = sorted((day, voter, target, f"{r.game_id}-{cut}") for day, voter, target, cut in truth[r.game_id]["votes"])
        assert got == want, r.game_id
        assert len({d["decision_id"] for d in r.decisions}) == len(r.decisions)


def test_no_context_line_starts_after_the_votes_day_ends(werebench) -> None:
    results, truth, _ = werebench
    checked = 0
    for r in results:
        t = truth[r.game_id]
        for d in r.decisions:
            end = _day_ends_by_config(t["anchors"], d["day"])
            cut = int(d["cut_off_utterance_id"].rsplit("-", 1)[1])
            assert end is not None and d["context_utterance_ids"], d["decision_id"]
            for uid in d["context_utterance_ids"]:
                srt_id = int(uid.rsplit("-", 1)[1])
                assert t["starts"][srt_id] < end, (d["decision_id"], uid, t["starts"][srt_id], end)
                assert srt_id < cut and t["starts"][srt_id] <= t["starts"][cut], (d["decision_id"], uid)
                checked += 1
    assert checked > 10_000  # the contexts are real transcripts, not empty lists


def test_every_row_carries_its_games_split(werebench) -> None:
    results, _, _ = werebench
    splits = set()
    for r in results:
        split = r.games[0]["split"]
        splits.add(split)
        for table in ("utterances", "votes", "decisions", "role_inference"):
            assert {row["split"] for row in getattr(r, table)} <= {split}, (r.game_id, table)
        assert r.utterances and r.role_inference
    assert splits == {"train", "val", "test"}


def test_release_checks_pass_on_real_games(werebench) -> None:
    results, _, _ = werebench
    tables = {name: pa.concat_tables([game_tables(r)[name] for r in results]) for name in GAME_TABLES}
    frames = werewolf_frames(tables["games"], tables["utterances"], tables["votes"],
                             decisions=tables["decisions"], role_inference=tables["role_inference"])
    outcomes = {c.name: c for c in I.werewolf_integrity(frames)}
    for name in ("decision_context_before_vote", "decisions_cover_votes", "role_items_cover_roster",
                 "role_items_list_the_seats_lines"):
        assert outcomes[name].passed, outcomes[name]
    for frame, column in (("utterances", "split_matches_game"), ("votes", "split_matches_game"),
                          ("decisions", "split_matches_game"), ("decisions", "target_is_candidate"),
                          ("role_inference", "role_set_matches_roster")):
        assert frames[frame][column].dropna().all() and frames[frame][column].notna().any(), (frame, column)
    # votes whose key counts the MVP's votes rather than the days point past the day: said, never used
    warned = [d for r in results for d in r.decisions if d["warnings"]]
    assert warned and all(d["vote_time_s"] > d["day_end_s"] for d in warned)


@pytest.mark.parametrize("game_id,winner", [
    ("werebench-s1-04", "werewolf"),  # "游戏结束，狼人阵营胜利"
    ("werebench-s3-17", "village"),  # "... 7 号玩家出局，游戏结束，好人阵营获胜"
    ("werebench-s3-04", "village"),  # "狼人交牌，好人阵营获胜": the wolves concede
    ("werebench-s5-09", "werewolf"),
    ("werebench-s3-01", None),  # only the recap says who won ("好人阵营惊险获胜"), after no marker
])
def test_winner_is_the_hosts_announcement(werebench, game_id: str, winner: str | None) -> None:
    results, _, _ = werebench
    (r,) = [r for r in results if r.game_id == game_id]
    assert r.games[0]["winner"] == winner
    for d in r.decisions:
        assert d["winner"] == winner
        assert d["voter_won"] == (None if winner is None else d["voter_faction"] == winner)
        # only the MVP's votes are recorded: the winners' choice is the MVP's when the MVP won
        assert d["winning_majority_target"] == (d["target_seat"] if d["voter_won"] else None)


def test_winner_known_for_almost_every_game(werebench) -> None:
    results, _, _ = werebench
    winners = [r.games[0]["winner"] for r in results]
    assert winners.count(None) <= 1 and {"village", "werewolf"} <= set(winners)
    won = [d["voter_won"] for r in results for d in r.decisions]
    assert won.count(True) > won.count(False) > 0  # the MVP is mostly, not always, on the winning side


def test_announced_winner_rules() -> None:
    from shardsmith.sources.werewolf.werebench import announced_winner

    assert announced_winner([("a", "天亮了"), ("b", "游戏结束，狼人阵营获胜")]) == ("werewolf", "b", [])
    assert announced_winner([("a", "好人阵营获胜")])[0] is None  # no end-of-game marker before it
    winner, line, warnings = announced_winner([("a", "游戏结束，好人阵营获胜"), ("b", "游戏结束，狼人阵营胜利")])
    assert winner is None and line is None and "different winners" in warnings[0]


# ----------------------------------------------------------------- synthetic games

SEATS = [(1, "seer", "village"), (2, "werewolf", "werewolf"), (3, "villager", "village"),
         (4, "witch", "village"), (5, "werewolf", "werewolf")]


def _game(winner: str | None = "village") -> tuple[dict, list[dict], list[dict]]:
    """A recorded game with two days of whole-table votes: seat 2 is exiled on day 1, day 2 is a tie."""
    game = {"game_id": "g", "source": "werewolf_video", "split": "val", "winner": winner,
            "rule_variant": "seer+villager+werewolf+witch",
            "seats": [{"seat": s, "role": r, "faction": f, "final_role": None} for s, r, f in SEATS],
            "phases": [{"name": "night_1", "start_s": 0.0, "end_s": 10.0},
                       {"name": "day_1", "start_s": 10.0, "end_s": 50.0},
                       {"name": "night_2", "start_s": 50.0, "end_s": 60.0},
                       {"name": "day_2", "start_s": 60.0, "end_s": 100.0}]}
    lines = [(None, 11.0), (1, 15.0), (2, 25.0), (3, 35.0), (None, 45.0), (None, 61.0), (4, 70.0), (5, 80.0),
             (1, 105.0)]
    utts = [{"utterance_id": f"g-{i}", "game_id": "g", "source": "werewolf_video", "split": "val", "order": i,
             "start_s": t, "end_s": t + 4, "speaker_seat": seat, "is_host": seat is None, "text": "x",
             "speaker_source": "turns", "verified": True,
             "phase": "post_game" if t >= 100 else ("day_1" if t < 50 else "day_2")}
            for i, (seat, t) in enumerate(lines)]
    votes = [{"game_id": "g", "split": "val", "day": day, "voter_seat": v, "target_seat": t, "source": "sidecar"}
             for day, pairs in ((1, [(1, 2), (2, 1), (3, 2), (4, 2), (5, 1)]), (2, [(1, 5), (3, 5), (4, 1), (5, 1)]))
             for v, t in pairs]
    return game, utts, votes


def test_decisions_of_a_recorded_game() -> None:
    game, utts, votes = _game()
    rows = {(d["day"], d["voter_seat"]): d for d in build_decisions(game, utts, votes)}
    assert len(rows) == len(votes)
    d1, d2 = rows[(1, 1)], rows[(2, 5)]
    assert d1["candidate_seats"] == [1, 2, 3, 4, 5] and d2["candidate_seats"] == [1, 3, 4, 5]  # 2 was exiled
    assert not d1["candidates_exact"]  # night kills are recorded nowhere
    assert (d1["voter_won"], d2["voter_won"]) == (True, False)
    assert d1["winning_majority_target"] == 2 and d2["winning_majority_target"] == 5  # village 2:1 on day 2
    assert d1["context_rule"] == "before_day_end" and d1["day_end_s"] == 50.0
    assert d1["context_utterance_ids"] == ["g-0", "g-1", "g-2", "g-3", "g-4"]
    assert d2["context_utterance_ids"] == [f"g-{i}" for i in range(8)]  # never the post-game line
    unknown = build_decisions(_game(winner=None)[0], utts, votes)
    assert all(d["voter_won"] is None and d["winning_majority_target"] is None for d in unknown)


def test_day_end_is_the_start_of_a_later_day() -> None:
    game, _, _ = _game()
    assert day_end_s(game["phases"], 1) == 50.0 and day_end_s(game["phases"], 2) == 100.0
    # a board with no ``first_day`` anchor (talk in the sheriff election) still ends day 1 at night 2
    phases = [{"name": "night_1", "start_s": 0.0, "end_s": 5.0}, {"name": "sheriff_election", "start_s": 5.0,
                                                                  "end_s": 40.0},
              {"name": "night_2", "start_s": 40.0, "end_s": 45.0}, {"name": "day_2", "start_s": 45.0, "end_s": 90.0}]
    assert day_end_s(phases, 1) == 40.0 and day_end_s(phases, None) is None


def _frames(game: dict, utts: list[dict], votes: list[dict], decisions: list[dict], items: list[dict]) -> dict:
    game = {**game, "seats": [{**s, "player": None, "role_source": s["role"]} for s in game["seats"]]}
    return werewolf_frames(pa.Table.from_pylist([game], schema=GAMES_SCHEMA),
                           pa.Table.from_pylist(utts, schema=UTTERANCES_SCHEMA),
                           pa.Table.from_pylist(votes, schema=VOTES_SCHEMA),
                           decisions=pa.Table.from_pylist(decisions, schema=DECISIONS_SCHEMA),
                           role_inference=pa.Table.from_pylist(items, schema=ROLE_INFERENCE_SCHEMA))


def test_context_check_fails_on_a_leaked_later_line() -> None:
    game, utts, votes = _game()
    decisions = build_decisions(game, utts, votes)
    items = build_role_inference(game, utts)
    frames = _frames(game, utts, votes, decisions, items)
    assert I.decision_context_before_vote(frames["decisions"], frames["decision_context"], frames["utterances"],
                                          frames["phases"]).passed
    decisions[0]["context_utterance_ids"] = decisions[0]["context_utterance_ids"] + ["g-5"]  # said on day 2
    frames = _frames(game, utts, votes, decisions, items)
    check = I.decision_context_before_vote(frames["decisions"], frames["decision_context"], frames["utterances"],
                                           frames["phases"])
    assert not check.passed and "g-5" in check.examples[0] and "after day 1 ends" in check.examples[0]


def test_context_check_fails_past_a_cut_off(real_samples: Path) -> None:
    ref = discover_games("werebench", real_samples / "werebench")[0]
    tables = game_tables(build_game("werebench", ref))
    frames = werewolf_frames(tables["games"], tables["utterances"], tables["votes"], decisions=tables["decisions"])
    ok = I.decision_context_before_vote(frames["decisions"], frames["decision_context"], frames["utterances"],
                                        frames["phases"])
    assert ok.passed, ok
    rows = tables["decisions"].to_pylist()
    rows[0]["context_utterance_ids"].append(rows[0]["cut_off_utterance_id"])  # the line that announces the vote
    leaked = werewolf_frames(tables["games"], tables["utterances"], tables["votes"],
                             decisions=pa.Table.from_pylist(rows, schema=DECISIONS_SCHEMA))
    check = I.decision_context_before_vote(leaked["decisions"], leaked["decision_context"], leaked["utterances"],
                                           leaked["phases"])
    assert not check.passed and "is not before cut-off" in check.examples[0]
    assert not I.decisions_cover_votes(leaked["decisions"], leaked["votes"].iloc[1:]).passed


def test_role_inference_items() -> None:
    game, utts, _ = _game()
    items = {i["seat"]: i for i in build_role_inference(game, utts)}
    assert sorted(items) == [1, 2, 3, 4, 5]
    assert items[1]["utterance_ids"] == ["g-1"]  # not its post-game line (roles are revealed there)
    assert items[5]["role"] == "werewolf" and items[5]["faction"] == "werewolf" and items[5]["split"] == "val"
    assert items[1]["role_set"] == ["seer", "villager", "werewolf", "werewolf", "witch"]  # a multiset
    assert items[1]["rule_variant"] == "seer+villager+werewolf+witch"
    game["seats"][2]["role"] = None  # the source names no role for seat 3: no answer, no item
    assert sorted(i["seat"] for i in build_role_inference(game, utts)) == [1, 2, 4, 5]
    wrong = build_role_inference(*_game()[:2])
    wrong[0]["utterance_ids"] = ["g-1", "g-2"]  # seat 2's line listed under seat 1
    frames = _frames(*_game(), [], wrong)
    check = I.role_items_list_the_seats_lines(frames["role_inference"], frames["role_utterances"],
                                              frames["utterances"])
    assert not check.passed and "g-2" in check.examples[0]


# ----------------------------------------------------------------- demo sources and the release layout


@pytest.fixture(scope="module")
def demo_raw(tmp_path_factory) -> Path:
    from shardsmith.demo.werewolf_demo import write_werewolf_demo

    root = tmp_path_factory.mktemp("raw")
    write_werewolf_demo(root, video=False)
    return root


def test_demo_sources_give_decisions_and_items(demo_raw: Path) -> None:
    (wb,) = [build_game("werebench", r) for r in discover_games("werebench", demo_raw / "werebench")]
    (d,) = wb.decisions
    assert d["context_rule"] == "before_cut_off" and d["cut_off_utterance_id"] == "werebench-s9-01-6"
    # line 5 is quarantined (broken timestamp); line 6 is the cut-off itself; line 8 is post-game
    assert d["context_utterance_ids"] == [f"werebench-s9-01-{i}" for i in (1, 2, 3, 4)]
    assert wb.games[0]["winner"] == "village" and d["voter_won"] and d["winning_majority_target"] == 2
    wau = build_game("werewolf_among_us", discover_games("werewolf_among_us", demo_raw / "werewolf_among_us")[0])
    assert len(wau.decisions) == len(wau.votes) == 4
    assert all(x["candidates_exact"] and x["context_rule"] == "before_game_end" for x in wau.decisions)
    assert {x["seat"]: x["final_role"] for x in wau.role_inference}[3] == "werewolf"  # ONUW swaps cards


def test_release_writes_every_table_under_its_split(demo_raw: Path, tmp_path: Path) -> None:
    import shutil

    from shardsmith.pipeline.releases import build_release
    from shardsmith.staging.games import write_game_staging

    settings = Settings(home=tmp_path)
    for source in ("werebench", "werewolf_among_us"):
        shutil.copytree(demo_raw / source, settings.raw_dir(source))
        for ref in discover_games(source, settings.raw_dir(source)):
            paths = write_game_staging(settings, source, build_game(source, ref))
            assert set(GAME_TABLES) <= set(paths)
    result = build_release(settings, "werewolf", ["werebench", "werewolf_among_us"])
    assert set(result.row_counts) == set(GAME_TABLES)
    for table, by_split in result.row_counts.items():
        assert set(by_split) <= {"train", "val", "test"} and sum(by_split.values()) > 0, (table, by_split)
        for split in by_split:
            assert any((result.path / "data" / table / split).glob("*.parquet")), (table, split)
    assert result.row_counts["decisions"] == {"test": 1, "train": 4}
    assert (result.path / "validation" / "decisions.json").is_file()


@pytest.mark.parametrize("first,second", [
    ("shardsmith.validation.integrity", "shardsmith.werewolf.decisions"),
    ("shardsmith.werewolf.decisions", "shardsmith.validation.integrity"),
    ("shardsmith.werewolf.role_inference", "shardsmith.staging.games"),
    ("shardsmith.views", "shardsmith.werewolf.role_inference"),
])
def test_game_items_live_outside_views_without_an_import_loop(first: str, second: str) -> None:
    """The per-game item builders are a package of their own: importable in either order beside the
    validation and staging code, and the release-time ``views`` neither holds nor loads them."""
    import subprocess
    import sys

    code = (f"import sys, importlib.util; import {first}, {second}; "
            "assert importlib.util.find_spec('shardsmith.views.decisions') is None; "
            "assert importlib.util.find_spec('shardsmith.views.role_inference') is None; "
            "import shardsmith.views; "
            f"print(sorted(m for m in sys.modules if m.startswith('shardsmith.views') and "
            "m.rsplit('.', 1)[-1] in ('decisions', 'role_inference')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
