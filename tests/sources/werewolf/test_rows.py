"""One row builder for every game source: adapters read their files, ``sources/werewolf/rows.py``
fills the shared tables (games, seats, phases, utterances, votes, quarantine) and the counts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import shardsmith.sources.werewolf as werewolf_sources
from shardsmith.sources.werewolf.base import ADAPTER_VERSION, GameRef, seat_row
from shardsmith.sources.werewolf.rows import GameRows, phase_row

ADAPTERS = ("werebench.py", "werewolf_video.py", "werewolf_among_us.py")
SOURCE_DIR = Path(werewolf_sources.__path__[0])
# Keys only the row builder writes: an adapter spelling one out is building rows itself again.
ROW_KEYS = {"utterance_id", "speaker_faction", "cut_off_utterance_id", "adapter_version", "voter_seat"}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapters_are_small_and_leave_rows_to_the_builder(adapter: str) -> None:
    tree = ast.parse((SOURCE_DIR / adapter).read_text(encoding="utf-8"))
    lengths = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert lengths["build_game"] <= 80, lengths["build_game"]
    spelled = {k.value for n in ast.walk(tree) if isinstance(n, ast.Dict)
               for k in n.keys if isinstance(k, ast.Constant) and k.value in ROW_KEYS}
    assert spelled == set(), f"{adapter} builds rows itself: {sorted(spelled)}"


def _rows(unit: str = "subtitle_line", inputs: int = 3) -> GameRows:
    rows = GameRows(GameRef("werebench", "werebench-s1-01", "Season_1/01", ()), unit, "/raw/01.srt", inputs)
    rows.seats = {1: seat_row(1, "预言家"), 2: seat_row(2, "狼人")}
    return rows


def test_speakers_take_role_and_faction_from_the_seat_table() -> None:
    rows = _rows()
    seer = rows.utterance("u1", "I am the seer", start_s=1.0, end_s=2.0, seat=1, is_host=False, label="说话人 1",
                          speaker_source="transcript_label", extra={"srt_id": 1})
    host = rows.utterance("u2", "night falls", start_s=3.0, end_s=4.0, seat=5, is_host=True, label="说话人 9",
                          speaker_source="transcript_label", host_role="system")
    assert (seer["order"], seer["speaker_role"], seer["speaker_faction"], seer["extra"]) == (
        0, "seer", "village", '{"srt_id":1}')
    assert (host["order"], host["speaker_seat"], host["speaker_role"], host["speaker_faction"]) == (
        1, None, "system", "host")
    with pytest.raises(TypeError, match="colour"):
        rows.utterance("u3", "x", start_s=None, end_s=None, seat=1, is_host=False, label=None,
                       speaker_source="annotation", colour="red")


def test_counts_reconcile_by_unit() -> None:
    rows = _rows()
    rows.result.speech_s = {"input": 6.0, "published": 0.0, "quarantined": 0.0}
    rows.utterance("u1", "a", start_s=0.0, end_s=2.0, seat=1, is_host=False, label="s1",
                   speaker_source="transcript_label", seconds=2.0)
    rows.reject_line("no_speaker_label", "{}", "werebench-s1-01#2", seconds=1.5)
    rows.vote(1, 1, 2, "mvp_record", "u1")
    res = rows.game(split="train", language="zh", rule_variant="seer+werewolf", rule_variant_text="", has_host=False,
                    winner=None, phases=[phase_row("night_1", "first_night", 0.0, None)], transcription={},
                    raw_sha256="x", warnings=[], extra={})
    assert (res.inputs, res.published, res.quarantined) == (3, 1, 1)  # one line of three unaccounted for
    assert res.speech_s == {"input": 6.0, "published": 2.0, "quarantined": 1.5}
    game = res.games[0]
    assert game["adapter_version"] == ADAPTER_VERSION and [s["seat"] for s in game["seats"]] == [1, 2]
    assert res.votes == [{"game_id": "werebench-s1-01", "day": 1, "voter_seat": 1, "target_seat": 2,
                          "source": "mvp_record", "cut_off_utterance_id": "u1"}]
    assert res.quarantine[0]["stage"] == "harmonise" and res.quarantine[0]["raw_path"] == "/raw/01.srt"


def test_a_game_set_aside_publishes_nothing_and_reconciles() -> None:
    rows = _rows(unit="game", inputs=1)
    rows.utterance("u1", "a", start_s=0.0, end_s=1.0, seat=1, is_host=False, label=None, speaker_source="turns")
    res = rows.set_aside("decode", "no_audio_stream", "g.mp4: no audio")
    assert res.reconciles() and (res.published, res.quarantined) == (0, 1) and not res.utterances
    assert res.quarantine[0]["reason"] == "no_audio_stream" and res.quarantine[0]["native_id"] == "werebench-s1-01"
