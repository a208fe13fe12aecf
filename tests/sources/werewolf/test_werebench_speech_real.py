"""WereBench's question bank and cleaned games on the real files: a werewolf release built from the
77 real games with both extra parts (the repository's cloned layout) publishes every bank item, its
checks pass, and what it says agrees with independent readings of the bank, the SRTs and the configs."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from shardsmith.config import Settings

# Written out here, not read from speech_dimensions.csv: the count must not share the code's mapping.
DIMENSION = {"Role Inference": "role_inference", "Strategic Judgment": "strategic_judgment",
             "Deception Reasoning": "deception_reasoning", "Social Interaction": "social_interaction",
             "Counterfactual Trade-off": "counterfactual_trade_off"}
_SRT_BLOCK = re.compile(r"(?m)^(\d+)\n[^\n]*-->[^\n]*\n((?:[^\n]+\n?)*)")


def _cloned_tree(real: Path, root: Path) -> Path:
    """``dataset/clean_process`` + ``dataset/data`` + ``dataset/WereBench`` as symlinks to the samples."""
    ds = root / "dataset"
    (ds / "clean_process").mkdir(parents=True)
    (ds / "WereBench").mkdir()
    for season in sorted((real / "werebench").glob("Season_*")):
        (ds / "clean_process" / season.name).symlink_to(season)
    (ds / "data").symlink_to(real / "werebench-eval" / "data")
    (ds / "WereBench" / "WereBench.json").symlink_to(real / "werebench-eval" / "WereBench.json")
    return root


@pytest.fixture(scope="module")
def release(real_samples: Path, tmp_path_factory) -> tuple[Settings, object]:
    from shardsmith.pipeline.releases import build_release
    from shardsmith.staging.games import build_game, discover_games, write_game_staging

    settings = Settings(home=tmp_path_factory.mktemp("home"))
    settings.raw_dir("werebench").parent.mkdir(parents=True, exist_ok=True)
    _cloned_tree(real_samples, settings.raw_dir("werebench"))
    for ref in discover_games("werebench", settings.raw_dir("werebench")):
        write_game_staging(settings, "werebench", build_game("werebench", ref))
    return settings, build_release(settings, "werewolf", ["werebench"])


def _bank(real: Path) -> list[tuple[str, dict]]:
    doc = json.loads((real / "werebench-eval" / "WereBench.json").read_text(encoding="utf-8"))
    return [(c["categoryName"], q) for c in doc["categories"] for q in c["questions"]]


def _game_id(reference: str) -> str:
    season, num = re.fullmatch(r"data/Season_(\d+)/(\d+)\.json", reference).groups()
    return f"werebench-s{season}-{int(num):02d}"


def test_every_bank_item_is_published_per_dimension_and_game(release, real_samples: Path) -> None:
    from shardsmith.loaders import open_release

    settings, result = release
    items = open_release(settings.releases, "werewolf", result.version).pandas("speech_items")
    bank = _bank(real_samples)
    assert len(bank) == 698
    assert Counter(items["dimension"]) == Counter(DIMENSION[c] for c, _ in bank)
    assert Counter(items["game_id"]) == Counter(_game_id(q["reference"]) for _, q in bank)
    assert items["item_id"].is_unique  # bank ids repeat across categories; item ids do not
    summary = json.loads((result.path / "validation" / "speech_items.json").read_text())
    assert summary["success"]
    assert {c["name"] for c in summary["integrity"]} >= {
        "speech_answer_in_options", "speech_anchor_exists", "speech_context_not_after_anchor",
        "speech_items_in_game_split"}
    card = (result.path / "README.md").read_text()
    assert "Items quarantined: 0." in card and "| social_interaction |" in card


def test_answers_options_and_splits_match_the_bank_and_games(release, real_samples: Path) -> None:
    from shardsmith.loaders import open_release

    settings, result = release
    rel = open_release(settings.releases, "werewolf", result.version)
    items = rel.pandas("speech_items").set_index("item_id")
    split_of = dict(zip(rel.pandas("games")["game_id"], rel.pandas("games")["split"], strict=True))
    for category, q in _bank(real_samples):
        row = items.loc[f"werebench-{DIMENSION[category]}-{q['id']}"]
        assert row["answer_key"] == q["answerKey"] and row["question"] == q["text"]
        assert list(row["choices"]) == [o["text"] for o in q["options"]]
        assert row["choices"][row["answer"]] == next(o["text"] for o in q["options"] if o["key"] == q["answerKey"])
        assert row["split"] == split_of[row["game_id"]]
        assert row["explanation"] == (q["explanation"].strip() or None)


def test_anchor_text_is_the_srt_entry_text(release, real_samples: Path) -> None:
    from shardsmith.loaders import open_release

    settings, result = release
    rel = open_release(settings.releases, "werewolf", result.version)
    utterances = rel.pandas("utterances", columns=["utterance_id", "game_id", "text", "extra"])
    text_of = {(g, json.loads(x)["srt_id"]): t for g, x, t in zip(utterances["game_id"], utterances["extra"],
                                                                  utterances["text"], strict=True)}
    by_id = dict(zip(utterances["utterance_id"], zip(utterances["game_id"], utterances["extra"], strict=True),
                     strict=True))
    items = rel.pandas("speech_items").set_index("item_id")
    sampled = _bank(real_samples)[::17]
    srts: dict[str, dict[int, str]] = {}
    for category, q in sampled:
        season, num = re.fullmatch(r"data/Season_(\d+)/(\d+)\.json", q["reference"]).groups()
        srt = real_samples / "werebench" / f"Season_{season}" / f"{int(num):02d}.srt"
        if str(srt) not in srts:
            body = srt.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
            srts[str(srt)] = {int(i): t.strip() for i, t in _SRT_BLOCK.findall(body)}
        entry = re.sub(r"^说话人\s*\d+\s*[:：]\s?", "", srts[str(srt)][q["utterance_id"]]).strip()
        item = items.loc[f"werebench-{DIMENSION[category]}-{q['id']}"]
        game, extra = by_id[item["anchor_utterance_id"]]  # the anchor the item names, read back
        assert (game, json.loads(extra)["srt_id"]) == (_game_id(q["reference"]), q["utterance_id"])
        assert text_of[(game, q["utterance_id"])] == entry
    assert len(sampled) >= 40


def test_cleaned_seats_and_roles_agree_with_the_config_or_the_game_warns(release, real_samples: Path) -> None:
    """For every game with both: where config and cleaned game agree on who sits where with which role,
    the published seats are exactly theirs; where they differ (here only the MVP's vote cut-offs, in
    six games), a warning on the game names the key."""
    from shardsmith.loaders import open_release
    from shardsmith.sources.labelfiles import read_label_text
    from shardsmith.sources.werewolf.werebench import parse_config

    settings, result = release
    games = open_release(settings.releases, "werewolf", result.version).pandas("games").set_index("native_id")
    differing = Counter()
    for cfg in sorted((real_samples / "werebench").glob("Season_*/*GAME_CONFIG*")):
        if "template" in cfg.name.lower():
            continue
        num = int(re.match(r"\d+", cfg.name).group())
        native = f"{cfg.parent.name}/{num:02d}"
        ours = parse_config(read_label_text(cfg))["metadata"]
        theirs = json.loads((real_samples / "werebench-eval" / "data" / f"{native}.json").read_text())["metadata"]
        game = games.loc[native]
        warnings = " | ".join(game["warnings"])
        for key in ("user_aliases", "real_role", "game_status", "MVP"):
            if ours.get(key) != theirs.get(key):
                differing[key] += 1
                assert f"disagrees: {key}" in warnings, (native, key)
            else:
                assert f"disagrees: {key}" not in warnings, (native, key)
        seats = {int(re.search(r"\d+", a[0]).group()): theirs["real_role"].get(label) or None
                 for label, a in theirs["user_aliases"].items() if a[0] != "host"}
        assert {s["seat"]: s["role_source"] for s in game["seats"]} == seats, native
        assert game["mvp_seat"] == int(re.search(r"\d+", theirs["MVP"]["id"]).group())
        assert game["summary"] == theirs["summary"].strip()
    assert differing == {"MVP": 6}


def test_flat_and_cloned_layouts_find_the_same_games_and_items(real_samples: Path, tmp_path: Path) -> None:
    from shardsmith.sources.werewolf.werebench_eval import bank_by_game
    from shardsmith.staging.games import discover_games

    flat = tmp_path / "flat"
    flat.mkdir()
    for season in sorted((real_samples / "werebench").glob("Season_*")):
        (flat / season.name).symlink_to(season)
    (flat / "data").symlink_to(real_samples / "werebench-eval" / "data")
    (flat / "WereBench").mkdir()
    (flat / "WereBench" / "WereBench.json").symlink_to(real_samples / "werebench-eval" / "WereBench.json")
    cloned = _cloned_tree(real_samples, tmp_path / "cloned")
    found = {}
    for name, root in (("flat", flat), ("cloned", cloned)):
        refs = discover_games("werebench", root)
        assert all(r.path("cleaned") and r.path("bank") and r.path("srt") for r in refs), name
        found[name] = {r.game_id: len(bank_by_game(r.path("bank")).get(r.native_id, [])) for r in refs}
    assert found["flat"] == found["cloned"] and len(found["flat"]) == 77
    assert sum(found["flat"].values()) == 698
