"""``shardsmith build`` runs what the plan finds stale: nothing at all when nothing changed since a
successful build, everything again after a failed one, and a release again when a game or a
source leaves ``raw/`` (its staging must not be published any more)."""

from __future__ import annotations

import json
import shutil

import pytest

from shardsmith.defs.run import run_build
from shardsmith.demo import cxr_core
from shardsmith.demo.werewolf_demo import write_werewolf_demo
from shardsmith.loaders import open_release


@pytest.fixture()
def home(nih_home):
    cxr_core.write_vindr(nih_home / "raw" / "vindr_cxr")
    return nih_home


def test_nothing_changed_since_a_successful_build_starts_no_run(home):
    first = run_build(home, echo=False, workers=1)
    assert first["success"] and first["runs"] == 3
    again = run_build(home, echo=False, workers=1)
    assert again["success"] and again["runs"] == 0 and again["recomputed"] == []
    assert "medical_release" in again["reused"] and "nih_cxr14_catalog" in again["reused"]
    assert sum(1 for s in again["reused"] if s.startswith("vindr_cxr_records[")) == 8
    assert (home / "releases" / "medical" / "LATEST").read_text().strip() == "v1"


def test_after_a_failed_build_everything_runs_and_fails_again(home, monkeypatch):
    from test_cli_errors import _impossible_width

    from shardsmith.validation import suites

    monkeypatch.setattr(suites, "record_suites", _impossible_width(suites.record_suites))
    first = run_build(home, echo=False, workers=1)
    assert not first["success"] and first["failed_checks"]
    again = run_build(home, echo=False, workers=1)  # nothing changed on disk
    assert again["runs"] > 0 and not again["success"]
    assert sorted(again["failed_checks"]) == sorted(first["failed_checks"])


def test_a_source_that_leaves_raw_leaves_the_release(home):
    assert run_build(home, echo=False, workers=1)["success"]
    shutil.rmtree(home / "raw" / "vindr_cxr")
    from shardsmith.pipeline.plan import plan_build
    from shardsmith.pipeline.preflight import build_settings

    steps = {s["step"]: s for s in plan_build(build_settings(home), ["nih_cxr14"], [])["steps"]}
    assert steps["medical_release"]["would"] == "recompute" and "vindr_cxr" in steps["medical_release"]["why"]
    result = run_build(home, echo=False, workers=1)
    assert result["success"] and "medical_release" in result["recomputed"]
    sources = set(open_release(home / "releases", "medical").pandas("records", columns=["source"])["source"])
    assert sources == {"nih_cxr14"}


def test_a_game_that_leaves_raw_leaves_the_release(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDSMITH_DEMO", "1")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    write_werewolf_demo(tmp_path / "raw", video=False)
    assert run_build(tmp_path, echo=False, workers=1)["success"]
    games_file = tmp_path / "raw" / "werewolf_among_us" / "data" / "Youtube" / "train.json"
    games = json.loads(games_file.read_text())
    assert len(games) >= 2
    games_file.write_text(json.dumps(games[1:], ensure_ascii=False))
    before = set(open_release(tmp_path / "releases", "werewolf").pandas("games", columns=["game_id"])["game_id"])
    result = run_build(tmp_path, echo=False, workers=1)
    assert result["success"] and "werewolf_release" in result["recomputed"], result
    after = set(open_release(tmp_path / "releases", "werewolf").pandas("games", columns=["game_id"])["game_id"])
    assert len(after) == len(before) - 1 and after < before
