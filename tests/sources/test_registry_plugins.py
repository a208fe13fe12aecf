"""A medical source and a game source installed from outside the package (entry points) show up
everywhere a built-in one does: the registry, the assets and partitions, the sensors, the suites,
a real ``shardsmith build`` and the dataset card, with no file of shardsmith edited.

The plugin is written by this test into a temporary folder as a tiny installed distribution (a
module plus a ``.dist-info`` with ``entry_points.txt``), which is exactly what ``pip install``
leaves behind and what ``importlib.metadata`` reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

PLUGIN = textwrap.dedent('''
    """Toy sources of a lab: chest X-rays with one label each, and games in a small JSON format."""
    import json
    from pathlib import Path

    from shardsmith.hashing import sha256_file
    from shardsmith.schemas.quarantine import quarantine_row
    from shardsmith.sources.labelfiles import find_label_file, read_rows
    from shardsmith.sources.medical.base import Finding, LabelledItem, LabelResult
    from shardsmith.sources.medical.cxr import CxrSource
    from shardsmith.sources.werewolf.base import (
        Discovery, GameRef, GameResult, GameSource, rule_variant_id, safe_id, seat_row, source_transcription)


    class ToyCxr(CxrSource):
        name = "toy_cxr"
        partitioned = True
        licence = "toy licence 1.0"
        citation = "Toy et al., A toy chest X-ray set (2026)"
        homepage = "https://example.org/toy_cxr"
        layouts = ("labels.csv (image_id,finding) + images/<image_id>.png",)
        vocabulary_files = (Path(__file__).with_name("toy_cxr_labels.csv"),)

        def detect(self, root):
            return find_label_file(root, "labels.csv") is not None

        def read_labels(self, root):
            path = find_label_file(root, "labels.csv")
            items, quarantine, n = [], [], 0
            for lineno, row in read_rows(path, ("image_id", "finding")):
                n += 1
                mapping = self.map_label(row["finding"])
                normal = mapping.kind == "normal"
                findings = [] if normal else [Finding(mapping.canonical, row["finding"], "present")]
                items.append(LabelledItem(native_id=row["image_id"], patient_raw=row["image_id"],
                                          abnormal=not normal, complete=normal, findings=findings))
            return LabelResult(items, quarantine, [path.name], n)

        def find_images(self, root):
            return {p.stem: p for p in sorted((root / "images").glob("*.png"))}


    class ToyGames(GameSource):
        name = "toy_games"
        licence = "toy games licence"
        citation = "Toy games (2026)"
        homepage = "https://example.org/toy_games"
        layouts = ("<game>.json with seats, utterances and votes",)

        def discover(self, root):
            games = [GameRef(self.name, safe_id(self.name, p.stem), p.stem, (("json", str(p)),))
                     for p in sorted(root.glob("*.json"))]
            return Discovery(games)

        def build_game(self, ref, transcriber=None):
            path = ref.path("json")
            data = json.loads(path.read_text())
            res = GameResult(self.name, ref.game_id, "utterance", inputs=len(data["utterances"]))
            seats = [seat_row(s["seat"], s["role"]) for s in data["seats"]]
            roles = {s["seat"]: r for s, r in zip(data["seats"], seats)}
            for i, u in enumerate(data["utterances"]):
                r = roles[u["seat"]]
                res.utterances.append({
                    "utterance_id": f"{ref.game_id}-u{i:04d}", "game_id": ref.game_id, "source": self.name,
                    "order": i, "start_s": u["start"], "end_s": u["end"], "speaker_seat": u["seat"],
                    "is_host": False, "speaker_label": str(u["seat"]), "speaker_role": r["role"],
                    "speaker_faction": r["faction"], "phase": "day_1", "text": u["text"], "words": [],
                    "speaker_source": "annotation", "speaker_confidence": None, "asr_model": None,
                    "asr_confidence": None, "verified": True, "strategies": [], "extra": "{}", "audio": None,
                    "split": data["split"]})
            res.published = len(res.utterances)
            for v in data["votes"]:
                res.votes.append({"game_id": ref.game_id, "day": 1, "voter_seat": v["voter"],
                                  "target_seat": v["target"], "source": "sidecar", "cut_off_utterance_id": None,
                                  "split": data["split"]})
            res.games.append({
                "game_id": ref.game_id, "source": self.name, "native_id": ref.native_id, "split": data["split"],
                "language": "en", "rule_variant": rule_variant_id([s["role"] for s in data["seats"]]),
                "rule_variant_text": "toy", "seats": seats, "has_host": False, "winner": data["winner"],
                "phases": [{"name": "day_1", "name_source": "day 1", "start_s": 0.0, "end_s": 100.0}],
                "media_sha256": None, "media_duration_s": None,
                "transcription": source_transcription("en", {"transcript": "human"}),
                "raw_path": path.name, "raw_sha256": sha256_file(path), "adapter_version": "toy-1",
                "warnings": [], "extra": "{}"})
            return res
''')

VOCAB = "source,source_label,canonical,kind\ntoy_cxr,Nodule,nodule,finding\ntoy_cxr,No finding,,normal\n"

GAME = {
    "split": "test", "winner": "village",
    "seats": [{"seat": 1, "role": "Werewolf"}, {"seat": 2, "role": "Villager"}, {"seat": 3, "role": "Seer"}],
    "utterances": [{"seat": 1, "start": 1.0, "end": 3.0, "text": "I am a villager."},
                   {"seat": 3, "start": 4.0, "end": 6.0, "text": "Seat one is a werewolf."}],
    "votes": [{"voter": 2, "target": 1}, {"voter": 3, "target": 1}, {"voter": 1, "target": 3}],
}


def install_plugin(where: Path) -> Path:
    """Write the toy distribution (module + .dist-info with entry points) under ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "toy_sources.py").write_text(PLUGIN)
    (where / "toy_cxr_labels.csv").write_text(VOCAB)
    dist = where / "toy_sources-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-sources\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[shardsmith.sources]\ntoy_cxr = toy_sources:ToyCxr\ntoy_games = toy_sources:ToyGames\n")
    return where


def write_toy_data(home: Path) -> None:
    root = home / "raw" / "toy_cxr"
    (root / "images").mkdir(parents=True)
    rows = ["image_id,finding"]
    rng = np.random.default_rng(7)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(root / "images" / f"img{i}.png")
        rows.append(f"img{i},{'Nodule' if i % 2 else 'No finding'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    games = home / "raw" / "toy_games"
    games.mkdir(parents=True)
    (games / "g1.json").write_text(json.dumps(GAME))


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    from shardsmith.sources import registry

    path = install_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(path))
    registry.refresh()
    yield path
    registry.refresh()


def test_plugin_sources_join_the_graph(plugin):
    import dagster as dg

    from shardsmith.config import Settings
    from shardsmith.definitions import build_definitions
    from shardsmith.sources.registry import facts, game_source_names, medical_source_names
    from shardsmith.validation.suites import suites_for

    assert "toy_cxr" in medical_source_names() and "toy_games" in game_source_names()
    assert facts()["toy_cxr"]["licence"] == "toy licence 1.0"
    defs = build_definitions(Settings(home=plugin / "home", buckets=4))
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {"toy_cxr_catalog", "toy_cxr_records"} <= keys
    records = defs.resolve_assets_def(dg.AssetKey("toy_cxr_records"))
    assert records.partitions_def.get_partition_keys() == ["b00", "b01", "b02", "b03"]
    sensors = {s.name for s in defs.sensors}
    assert "toy_cxr_raw_changes" in sensors and "werewolf_new_games" in sensors
    assert "toy_games" in json.dumps(suites_for("games"), default=str)


def test_a_class_with_missing_facts_is_refused():
    from shardsmith.sources.medical.cxr import CxrSource
    from shardsmith.sources.registry import SourceRegistryError, validate

    class NoLicence(CxrSource):
        name = "no_licence"
        partitioned = True
        citation = "x"
        homepage = "x"
        layouts = ("x",)

    with pytest.raises(SourceRegistryError, match="licence"):
        validate(NoLicence)


def test_shardsmith_build_publishes_plugin_sources(plugin, tmp_path):
    home = tmp_path / "home"
    write_toy_data(home)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]),
           "SHARDSMITH_DEMO": "1", "SHARDSMITH_WORKERS": "1"}
    env.pop("DAGSTER_HOME", None)
    proc = subprocess.run([sys.executable, "-m", "shardsmith.cli", "build", "--home", str(home)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    medical = home / "releases" / "medical" / "v1"
    records = pq.read_table(medical / "data" / "records").to_pylist()
    assert sorted(r["native_id"] for r in records) == [f"img{i}" for i in range(6)]
    card = (medical / "README.md").read_text()
    assert "toy licence 1.0" in card and "Toy et al." in card
    werewolf = home / "releases" / "werewolf" / "v1"
    games = pq.read_table(werewolf / "data" / "games").to_pylist()
    assert [g["source"] for g in games] == ["toy_games"]
    assert "toy games licence" in (werewolf / "README.md").read_text()
