"""WereBench adapter: all 77 real games, safe config parsing, SRT robustness, line accounting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shardsmith.schemas.roles import load_roles
from shardsmith.sources.werewolf.werebench import ConfigError, parse_config, parse_srt
from shardsmith.staging.games import build_game, discover, discover_games

ARROW = re.compile(r"^(\d+):(\d\d):(\d\d),(\d{3}) --> (\d+):(\d\d):(\d\d),(\d{3})$")


def _independent_speech_seconds(srt: Path) -> tuple[int, float]:
    """Blocks and summed durations, counted by this test on its own (not with the adapter's parser)."""
    blocks, total = 0, 0.0
    for line in srt.read_text(encoding="utf-8-sig").replace("\r\n", "\n").split("\n"):
        if "-->" in line:
            blocks += 1
            m = ARROW.match(line.strip())
            if m:
                g = [int(x) for x in m.groups()]
                total += (g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000) - (
                    g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
                )
    return blocks, total


@pytest.fixture(scope="module")
def real_werebench(real_samples: Path) -> Path:
    return real_samples / "werebench"


@pytest.fixture(scope="module")
def real_results(real_werebench: Path) -> list:
    return [(ref, build_game("werebench", ref)) for ref in discover_games("werebench", real_werebench)]


def test_all_77_real_games_import(real_results: list) -> None:
    assert len(real_results) == 77
    seasons = {ref.native_id.split("/")[0] for ref, _ in real_results}
    assert seasons == {"Season_1", "Season_3", "Season_5"}
    for ref, res in real_results:
        assert len(res.games) == 1, (ref.game_id, res.quarantine)
        assert res.reconciles(), ref.game_id
        assert res.utterances, ref.game_id


def test_every_subtitle_line_and_second_accounted(real_results: list) -> None:
    import json

    for ref, res in real_results:
        blocks, seconds = _independent_speech_seconds(ref.path("srt"))
        assert res.inputs == blocks, ref.game_id
        assert len(res.utterances) + len(res.quarantine) == blocks, ref.game_id
        published = sum(u["end_s"] - u["start_s"] for u in res.utterances)
        quarantined = 0.0
        for q in res.quarantine:
            d = json.loads(q["detail"])
            if d["start_s"] is not None and d["end_s"] is not None:
                quarantined += d["end_s"] - d["start_s"]
        assert published + quarantined == pytest.approx(seconds, abs=1e-6), ref.game_id


def test_speakers_are_seats_or_host_and_roles_normalised(real_results: list) -> None:
    table = load_roles()
    canonical = table.roles()
    for ref, res in real_results:
        game = res.games[0]
        seats = {s["seat"] for s in game["seats"]}
        assert seats and all(1 <= s <= 12 for s in seats), ref.game_id
        for s in game["seats"]:
            if s["role"] is not None:  # null only where real_role gives the seat no role (a warning says so)
                assert canonical[s["role"]] == s["faction"]
                assert table.lookup(s["role_source"]).role == s["role"]
            else:
                assert any(f"seat {s['seat']} has no role" in w for w in game["warnings"])
        for u in res.utterances:
            assert u["is_host"] != (u["speaker_seat"] is not None), u
            assert u["is_host"] or u["speaker_seat"] in seats
            assert u["speaker_source"] == "transcript_label" and u["speaker_label"].startswith("说话人")
            assert u["phase"] is not None
        assert {q["reason"] for q in res.quarantine} <= {"speaker_unmapped", "broken_timestamp"}


def test_real_quarantine_reasons_and_typos(real_results: list) -> None:
    by_id = {ref.game_id: res for ref, res in real_results}
    broken = [q for q in by_id["werebench-s1-03"].quarantine if q["reason"] == "broken_timestamp"]
    assert len(broken) == 1 and "7毒0" in broken[0]["detail"]
    # `hsot` and `阔人` are typos the role table maps on purpose
    s3_25 = by_id["werebench-s3-25"].games[0]
    assert s3_25["has_host"]
    s1_11 = {s["seat"]: s for s in by_id["werebench-s1-11"].games[0]["seats"]}
    assert s1_11[9]["role"] == "hunter" and s1_11[9]["role_source"] == "阔人"
    # the sheiff_election typo stays verbatim next to the canonical name
    phases = by_id["werebench-s1-01"].games[0]["phases"]
    assert {"name": "sheriff_election", "name_source": "sheiff_election"}.items() <= phases[1].items()
    assert [p["name"] for p in phases][:3] == ["night_1", "sheriff_election", "day_1"]
    votes = by_id["werebench-s3-01"].votes
    assert [(v["day"], v["voter_seat"], v["target_seat"]) for v in votes] == [(1, 2, 4), (2, 2, 12)]
    assert votes[0]["cut_off_utterance_id"] == "werebench-s3-01-594"


def test_every_real_role_string_is_in_the_table(real_werebench: Path) -> None:
    table = load_roles()
    for ref in discover_games("werebench", real_werebench):
        md = parse_config(ref.path("config").read_text(encoding="utf-8"))["metadata"]
        for text in list(md["real_role"].values()) + list(md["game_roles"]):
            assert table.has(text), (ref.game_id, text)


def test_real_templates_skipped_with_reason(real_werebench: Path) -> None:
    found = discover("werebench", real_werebench)
    names = sorted(Path(s.path).name for s in found.skipped)
    assert names == ["00-GAME_CONFIG_template copy 7.py", "00-GAME_CONFIG_template.py"]
    assert all("template" in s.reason for s in found.skipped)


def _write_game(root: Path, config: str, srt: str, name: str = "01-GAME_CONFIG.py") -> None:
    season = root / "Season_7"
    season.mkdir(parents=True, exist_ok=True)
    (season / name).write_text(config, encoding="utf-8")
    (season / "01.srt").write_bytes(srt.encode("utf-8"))


SRT = (
    "1\n00:00:01,000 --> 00:00:02,000\n说话人 1: 你好\n\n"
    "2\n00:00:03,000 --> 00:00:04,500\n说话人 2: 我是 2 号\n"
)
CONFIG = """GAME_CONFIG = {{
    "metadata": {{
        "game_id": 1, "source": "x", "game_rules": "", "game_roles": ["村民", "狼人"],
        "game_status": {status},
        "user_aliases": {{"说话人 1": ["host"], "说话人 2": ["2号"]}},
        "real_role": {{"说话人 1": "host", "说话人 2": "平民"}},
        "MVP": {{"id": "2号", "votes": {{}}}}, "logs": "",
    }},
    "sheriff_appointments": {{}}, "summary_id_range": (1, 1),
}}
"""


def test_config_with_code_is_quarantined_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = CONFIG.format(status=f"__import__('os').system('touch {marker}')")
    _write_game(tmp_path / "wb", evil, SRT, name="01 - GAME_CONFIG.txt")
    refs = discover_games("werebench", tmp_path / "wb")
    assert len(refs) == 1
    res = build_game("werebench", refs[0])
    assert not marker.exists()
    assert res.games == [] and res.utterances == []
    assert [q["reason"] for q in res.quarantine] == ["config_contains_code"]
    assert res.inputs == 2 and res.quarantined == 2 and res.reconciles()


@pytest.mark.parametrize(
    "snippet",
    [
        "open('/etc/passwd').read()",
        "os.system('x')",
        "OrderedDict(x=1)",
        "[i for i in range(3)]",
        "lambda: 1",
        "1 + 1",
        "{**{}}",
        "collections.OrderedDict.__class__",
    ],
)
def test_safe_evaluator_rejects_code(snippet: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f'GAME_CONFIG = {{"metadata": {{"x": {snippet}}}}}')
    assert err.value.reason == "config_contains_code"


def test_safe_evaluator_accepts_ordered_dicts() -> None:
    cfg = parse_config(
        'from collections import OrderedDict\nimport collections\nGAME_CONFIG = {"metadata": {'
        '"a": OrderedDict([("x", "1"), ("y", -2)]), "b": collections.OrderedDict(), "c": (1, 2.5)}}'
    )
    assert cfg["metadata"] == {"a": {"x": "1", "y": -2}, "b": {}, "c": (1, 2.5)}
    with pytest.raises(ConfigError) as err:
        parse_config("import os\nGAME_CONFIG = {'metadata': {}}")
    assert err.value.reason == "config_contains_code"


def test_srt_bom_crlf_missing_blank_line_and_broken_timestamps() -> None:
    data = (
        "\ufeff1\r\n00:00:01,000 --> 00:00:02,000\r\n说话人 1: a\r\n\r\n"
        "2\r\n00:00:02,000 --> 00:00:0x,000\r\n说话人 1: broken\r\n\r\n"
        "3\r\n00:00:05,000 --> 00:00:04,000\r\n说话人 2: reversed\r\n\r\n"
        "4\r\n00:00:06,000 --> 00:00:07,250\r\n说话人 2: b\r\n"
        "5\r\n00:00:07,300 --> 00:00:08,000\r\n说话人 2: no blank line before me\r\nsecond line\r\n"
    ).encode()
    entries = parse_srt(data)
    assert [e.srt_id for e in entries] == [1, 2, 3, 4, 5]
    assert [e.problem for e in entries] == [None, "broken_timestamp", "broken_timestamp", None, None]
    assert entries[3].end_s == 7.25 and entries[4].text == "说话人 2: no blank line before me\nsecond line"


def test_srt_broken_lines_quarantined_rest_continues(tmp_path: Path) -> None:
    srt = (
        SRT + "\n3\n00:00:05,000 --> 00:00:0?,000\n说话人 2: 坏了\n\n4\n00:00:06,000 --> 00:00:07,000\n"
        "没有说话人前缀\n\n5\n00:00:08,000 --> 00:00:09,000\n说话人 9: 谁\n\n"
        "6\n00:00:09,000 --> 00:00:10,000\n说话人 2: 结束后\n"
    )
    status = (
        'OrderedDict([("first_night", "00:00:02,000"), ("sheiff_election", "00:00:03,000"), '
        '("first_day", ""), ("end_time", "00:00:09,000")])'
    )
    _write_game(tmp_path / "wb", CONFIG.format(status=status), srt)
    res = build_game("werebench", discover_games("werebench", tmp_path / "wb")[0])
    assert res.reconciles() and res.inputs == 6 and res.published == 3 and res.quarantined == 3
    assert sorted(q["reason"] for q in res.quarantine) == [
        "broken_timestamp",
        "no_speaker_label",
        "speaker_unmapped",
    ]
    assert [u["phase"] for u in res.utterances] == ["pre_game", "sheriff_election", "post_game"]
    assert [(u["speaker_seat"], u["is_host"], u["speaker_role"]) for u in res.utterances] == [
        (None, True, "host"),
        (2, False, "villager"),
        (2, False, "villager"),
    ]
    assert any("first_day" in w for w in res.games[0]["warnings"])
