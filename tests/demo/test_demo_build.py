"""``make demo``'s path: every source's demo data, built through Dagster, gives both releases."""

import json

from shardsmith.cli import run_build
from shardsmith.demo.generate import write_all
from shardsmith.loaders import open_release
from shardsmith.sources.registry import game_source_names, medical_source_names


def test_full_demo_builds_every_source_and_both_collections(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDSMITH_DEMO", "1")
    written = write_all(tmp_path)
    assert set(written) == set(medical_source_names()) | set(game_source_names())
    summary = run_build(tmp_path, echo=False)
    assert summary["success"], json.dumps(summary)[:2000]
    medical = open_release(tmp_path / "releases", "medical")
    assert medical.verify().ok
    sources = set(medical.pandas("records", columns=["source"])["source"])
    assert sources == set(medical_source_names())
    assert sum(medical.manifest["row_counts"]["volumes"].values()) > 0
    werewolf = open_release(tmp_path / "releases", "werewolf")
    assert werewolf.verify().ok
    games = werewolf.pandas("games", columns=["source"])
    assert set(games["source"]) == set(game_source_names())
    assert sum(werewolf.manifest["row_counts"]["utterances"].values()) > 0
