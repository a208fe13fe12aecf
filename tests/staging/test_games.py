"""Role table, Werewolf Among Us adapter, demo WereBench game, schemas and label statistics."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from shardsmith.schemas.roles import UnknownRoleError, load_roles, lookup_role
from shardsmith.schemas.werewolf import GAMES_SCHEMA, UTTERANCES_SCHEMA, VOTES_SCHEMA, WEREWOLF_SCHEMA_VERSION
from shardsmith.staging.games import build_game, discover, discover_games, game_tables, label_stats


@pytest.fixture(scope="module")
def demo_raw(tmp_path_factory) -> Path:
    from shardsmith.demo.werewolf_demo import write_werewolf_demo

    root = tmp_path_factory.mktemp("raw")
    write_werewolf_demo(root, video=False)
    return root


@pytest.mark.parametrize(
    "text,role,faction",
    [
        ("预言家", "seer", "village"),
        ("seer", "seer", "village"),
        ("女巫", "witch", "village"),
        ("狼人", "werewolf", "werewolf"),
        ("村民", "villager", "village"),
        ("平民", "villager", "village"),
        ("hsot", "host", "host"),
        (" Host ", "host", "host"),
        ("阔人", "hunter", "village"),
        ("Tanner", "tanner", "neutral"),
        ("Minion", "minion", "werewolf"),
        ("Game Audio", "system", "host"),
    ],
)
def test_role_table(text: str, role: str, faction: str) -> None:
    r = lookup_role(text)
    assert (r.role, r.faction) == (role, faction)


def test_unknown_role_names_it() -> None:
    with pytest.raises(UnknownRoleError, match="Space Wizard"):
        lookup_role("Space Wizard")
    assert all(r.faction in {"werewolf", "village", "neutral", "host"} for r in load_roles().rows())


def test_schemas_carry_version() -> None:
    for schema in (GAMES_SCHEMA, UTTERANCES_SCHEMA, VOTES_SCHEMA):
        assert schema.metadata[b"shardsmith.schema_version"].decode() == WEREWOLF_SCHEMA_VERSION


def test_werewolf_among_us_demo(demo_raw: Path) -> None:
    refs = discover_games("werewolf_among_us", demo_raw / "werewolf_among_us")
    assert [r.split for r in refs] == ["train", "train"]
    res = build_game("werewolf_among_us", refs[0])
    assert res.reconciles() and res.inputs == 6 and res.quarantined == 1
    assert res.quarantine[0]["reason"] == "speaker_unmapped"
    by_rec = {u["utterance_id"].rsplit("-", 1)[1]: u for u in res.utterances}
    assert by_rec["1"]["is_host"] and by_rec["1"]["speaker_role"] == "host"
    assert by_rec["4"]["is_host"] and by_rec["4"]["speaker_role"] == "system"
    assert by_rec["2"]["speaker_seat"] == 1 and by_rec["2"]["strategies"] == [
        "Identity Declaration",
        "Accusation",
    ]
    assert by_rec["2"]["speaker_label"] != "Alice"  # pseudonym, never the name
    assert by_rec["6"]["start_s"] is None and by_rec["3"]["start_s"] == 9.0
    seats = {s["seat"]: s for s in res.games[0]["seats"]}
    assert (seats[3]["role"], seats[3]["final_role"]) == ("robber", "werewolf")
    assert [(v["voter_seat"], v["target_seat"]) for v in res.votes] == [(1, 2), (2, 3), (3, 2), (4, 2)]
    tables = game_tables(res)
    assert tables["utterances"].schema.equals(UTTERANCES_SCHEMA)
    assert build_game("werewolf_among_us", refs[1]).votes == []  # "NA"


def test_werebench_demo_game_and_stats(demo_raw: Path) -> None:
    found = discover("werebench", demo_raw / "werebench")
    assert [s.reason.split(":")[0] for s in found.skipped] == ["template"]
    res = build_game("werebench", found.games[0])
    assert res.reconciles() and (res.inputs, res.published, res.quarantined) == (8, 6, 2)
    assert {q["reason"] for q in res.quarantine} == {"broken_timestamp", "no_speaker_label"}
    assert res.votes[0]["target_seat"] == 2 and res.votes[0]["cut_off_utterance_id"] == "werebench-s9-01-6"
    assert isinstance(game_tables(res)["games"], pa.Table)
    stats = label_stats("werebench", demo_raw / "werebench")
    assert stats["games"] == 1 and stats["utterances"] == 6 and stats["roles"]["seer"] == 1
    assert stats["skipped"][0]["reason"].startswith("template")


def test_real_label_stats(real_samples: Path) -> None:
    stats = label_stats("werebench", real_samples / "werebench")
    print({k: stats[k] for k in ("games", "utterances", "speech_seconds", "quarantine_reasons")})
    assert stats["games"] == 77 and stats["quarantined_games"] == 0
    assert stats["roles"]["villager"] > stats["roles"]["seer"] > 0
