"""``make demo``'s path: every source's demo data, built through Dagster by the real command, gives
both releases, and the terminal shows at most 60 lines (Dagster's events only with ``--verbose``)."""

import os
import subprocess
import sys

from shardsmith.loaders import open_release
from shardsmith.sources.registry import game_source_names, medical_source_names

MAX_LINES = 60


def _shardsmith(*args: str, home, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | {"SHARDSMITH_DEMO": "1", "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "shardsmith.cli", *args], env=env | (env_extra or {}),
                          capture_output=True, text=True, timeout=900, cwd=home)


def test_full_demo_builds_every_source_and_both_collections_quietly(tmp_path):
    home = tmp_path / "home"
    out = _shardsmith("demo", "--home", str(home), home=tmp_path)
    lines = (out.stdout + out.stderr).splitlines()
    assert out.returncode == 0, "\n".join(lines[-60:])
    assert len(lines) <= MAX_LINES, "\n".join(lines)
    assert not any("DEBUG" in ln or "Warning" in ln or "alembic" in ln or "ephemeral docs" in ln for ln in lines)
    medical = open_release(home / "releases", "medical")
    assert medical.verify().ok
    sources = set(medical.pandas("records", columns=["source"])["source"])
    assert sources == set(medical_source_names())
    assert sum(medical.manifest["row_counts"]["volumes"].values()) > 0
    werewolf = open_release(home / "releases", "werewolf")
    assert werewolf.verify().ok
    games = werewolf.pandas("games", columns=["source"])
    assert set(games["source"]) == set(game_source_names())
    assert sum(werewolf.manifest["row_counts"]["utterances"].values()) > 0

    again = _shardsmith("--verbose", "build", "--home", str(home), "--source", "nih_cxr14", home=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "STEP_START" in again.stderr and "RUN_SUCCESS" in again.stderr  # Dagster's events are back
