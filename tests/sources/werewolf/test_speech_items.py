"""speech_items on generated WereBench trees (the demo game in its native layout, with traps added):
items tie to published lines, whatever cannot be tied is a quarantine row with its reason, the
declared checks catch a broken item, and a tree without the extra parts publishes as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shardsmith.config import Settings
from shardsmith.sources.werewolf.werebench_eval import CLEANED_WARNING
from shardsmith.staging.games import build_game, discover_games, game_tables, write_game_staging

BANK = Path("WereBench") / "WereBench.json"


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    from shardsmith.demo.werewolf_demo import write_werewolf_demo

    write_werewolf_demo(tmp_path / "raw", video=False)
    return tmp_path / "raw" / "werebench"


def _add_items(root: Path, category: str, *items: dict) -> None:
    doc = json.loads((root / BANK).read_text(encoding="utf-8"))
    doc["categories"].append({"categoryName": category, "questions": list(items)})
    (root / BANK).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def _item(qid: int, line: int, asker: str = "1号", answer: str = "A", ref: str = "data/Season_9/01.json") -> dict:
    return {"id": qid, "utterance_id": line, "role": asker, "text": f"问题 {qid}", "text1": f"问 {qid}",
            "options": [{"key": "A", "text": "甲"}, {"key": "B", "text": "乙"}], "answerKey": answer,
            "reference": ref, "explanation": ""}


def _results(root: Path) -> dict:
    return {r.game_id: build_game("werebench", r) for r in discover_games("werebench", root)}


def test_demo_items_tie_to_lines_and_the_cleaned_game_wins(raw: Path) -> None:
    res = _results(raw)["werebench-s9-01"]
    items = {i["item_id"]: i for i in res.speech_items}
    assert len(items) == 5 and len({i["dimension"] for i in items.values()}) == 5
    whole_table = items["werebench-deception_reasoning-1"]
    assert whole_table["asker_seat"] is None and whole_table["context_utterance_ids"] == [
        f"werebench-s9-01-{n}" for n in (1, 2, 3, 4)]
    witch = items["werebench-social_interaction-2"]
    assert (witch["asker_seat"], witch["asker_role"], witch["asker_faction"]) == (3, "witch", "village")
    assert witch["anchor_utterance_id"] == "werebench-s9-01-6"  # line 5 (broken timestamp) is not context
    assert witch["context_utterance_ids"][-2:] == ["werebench-s9-01-4", "werebench-s9-01-6"]
    assert items["werebench-counterfactual_trade_off-1"]["explanation"] and witch["explanation"] is None
    game = res.games[0]
    assert {p["name"]: p["start_s"] for p in game["phases"]}["night_1"] == pytest.approx(2.4)  # cleaned, not 2.5
    assert [w for w in game["warnings"] if w.startswith(CLEANED_WARNING)] == [
        w for w in game["warnings"] if "game_status" in w]
    assert game["mvp_seat"] == 1 and game["summary"].startswith("1 号预言家")
    assert res.counts["bank_items"] == res.counts["speech_items"] == 5


def test_items_that_cannot_be_tied_are_quarantined_with_their_reason(raw: Path) -> None:
    _add_items(raw, "Role Inference", _item(7, 5), _item(8, 3, answer="Z"), _item(9, 3, asker="7号"),
               _item(10, 99), _item(11, 3, ref="data/Season_9/02.json"))
    _add_items(raw, "Humour", _item(1, 3))
    results = _results(raw)
    assert set(results) == {"werebench-s9-01", "werebench-s9-02"}  # the bank's game with no files is a game
    reasons = {q["native_id"]: q["reason"] for r in results.values() for q in r.quarantine
               if q["stage"] == "speech_items"}
    assert reasons == {
        "werebench-role_inference-7": "anchor_missing",  # line 5 is quarantined (broken timestamp)
        "werebench-role_inference-8": "answer_not_in_options",
        "werebench-role_inference-9": "asker_not_in_roster",
        "werebench-role_inference-10": "anchor_missing",  # no such SRT entry
        "werebench-role_inference-11": "game_missing",
        "werebench-humour-1": "unknown_dimension",
    }
    missing = results["werebench-s9-02"]
    assert missing.games == [] and [q["reason"] for q in missing.quarantine] == ["game_missing", "game_missing"]
    for r in results.values():  # bank items = items + their quarantine rows, per game
        assert r.counts["bank_items"] == r.counts["speech_items"] + sum(
            q["stage"] == "speech_items" for q in r.quarantine)
        assert r.reconciles()
    assert sum(r.counts["bank_items"] for r in results.values()) == 11


def test_the_items_of_a_game_set_aside_are_quarantined_with_the_games_reason(raw: Path) -> None:
    (raw / "Season_9" / "01-GAME_CONFIG.py").unlink()
    res = _results(raw)["werebench-s9-01"]
    assert res.speech_items == []
    assert {q["reason"] for q in res.quarantine if q["stage"] == "speech_items"} == {"game_quarantined"}
    assert all("config_missing" in q["detail"] for q in res.quarantine if q["stage"] == "speech_items")


def _break_answer(item: dict, _: list) -> None:
    item["answer_key"] = "Z"


def _break_answer_index(item: dict, _: list) -> None:
    item["answer"] = (item["answer"] + 1) % len(item["options"])


def _break_anchor(item: dict, _: list) -> None:
    item["anchor_utterance_id"] += "x"


def _break_context_later(item: dict, utterances: list) -> None:
    item["context_utterance_ids"].append(utterances[-1]["utterance_id"])


def _break_context_short(item: dict, _: list) -> None:
    item["context_utterance_ids"].pop(0)


def _break_split(item: dict, _: list) -> None:
    item["split"] = "test" if item["split"] != "test" else "train"


@pytest.mark.parametrize("breaks,check", [
    (_break_answer, "speech_answer_in_options"),
    (_break_answer_index, "speech_answer_in_options"),
    (_break_anchor, "speech_anchor_exists"),
    (_break_context_later, "speech_context_not_after_anchor"),
    (_break_context_short, "speech_context_not_after_anchor"),
    (_break_split, "speech_items_in_game_split"),
])
def test_each_declared_check_fails_on_the_item_that_breaks_it(raw: Path, breaks, check: str) -> None:
    from shardsmith.schemas.tables import TABLES
    from shardsmith.validation.checks import CheckInput, run_checks
    from shardsmith.validation.frames import werewolf_frames

    res = _results(raw)["werebench-s9-01"]

    def outcomes() -> dict[str, bool]:
        t = game_tables(res)
        frames = werewolf_frames(t["games"], t["utterances"], t["votes"], speech_items=t["speech_items"])
        return {o.name: o.passed for o in run_checks(TABLES["speech_items"].checks, CheckInput(frames))}

    assert outcomes() == dict.fromkeys(TABLES["speech_items"].checks, True)
    breaks(res.speech_items[0], res.utterances)
    got = outcomes()
    assert got[check] is False and all(v for k, v in got.items() if k != check), got


def _release(raw: Path, home: Path):
    from shardsmith.pipeline.releases import build_release

    settings = Settings(home=home)
    shutil.copytree(raw, settings.raw_dir("werebench"))
    for ref in discover_games("werebench", settings.raw_dir("werebench")):
        write_game_staging(settings, "werebench", build_game("werebench", ref))
    return settings, build_release(settings, "werewolf", ["werebench"])


def test_without_the_extra_parts_the_release_is_as_before_and_the_card_says_so(raw: Path, tmp_path: Path) -> None:
    shutil.rmtree(raw / "data")
    shutil.rmtree(raw / "WereBench")
    _, result = _release(raw, tmp_path / "home")
    assert "speech_items" not in result.row_counts and result.row_counts["games"] == {"test": 1}
    card = (result.path / "README.md").read_text()
    assert "Not in `raw/werebench`: cleaned games" in card and "question bank" in card


def test_hugging_face_loads_speech_items_as_multiple_choice(raw: Path, tmp_path: Path) -> None:
    import datasets

    _, result = _release(raw, tmp_path / "home")
    assert result.row_counts["speech_items"] == {"test": 5}
    ds = datasets.load_dataset(str(result.path), "speech_items", split="test")
    assert {"question", "choices", "answer", "answer_key", "options", "context_utterance_ids"} <= set(ds.column_names)
    assert ds.features["choices"].feature.dtype == "string" and ds.features["answer"].dtype == "int32"
    for row in ds:
        assert row["choices"][row["answer"]] == next(o["text"] for o in row["options"] if o["key"] == row["answer_key"])


def test_export_eval_writes_a_task_lm_eval_loads_with_its_own_loader(raw: Path, tmp_path: Path) -> None:
    """``shardsmith export-eval speech_items --format lm-eval``; the harness's TaskManager reads the
    task YAML and loads the JSONL through its dataset loader (no model is run)."""
    from click.testing import CliRunner
    from lm_eval.tasks import TaskManager

    from shardsmith.cli import main
    from shardsmith.publish.eval_export import TASK_NAME

    settings, result = _release(raw, tmp_path / "home")
    out = tmp_path / "task"
    run = CliRunner().invoke(main, ["export-eval", "speech_items", "--format", "lm-eval", "--out", str(out),
                                    "--home", str(settings.home)])
    assert run.exit_code == 0, run.output
    task = TaskManager(include_path=str(out), include_defaults=False).load_task_or_group([TASK_NAME])[TASK_NAME]
    docs = list(task.test_docs())
    assert task.OUTPUT_TYPE == "multiple_choice" and len(docs) == result.row_counts["speech_items"]["test"]
    from shardsmith.loaders import open_release

    items = open_release(settings.releases, "werewolf").pandas("speech_items").set_index("item_id")
    utterances = open_release(settings.releases, "werewolf").pandas("utterances").set_index("utterance_id")
    for doc in docs:
        item = items.loc[doc["item_id"]]
        assert task.doc_to_choice(doc) == list(item["choices"])
        assert task.doc_to_target(doc) == item["answer"]
        prompt = task.doc_to_text(doc)
        assert item["question"] in prompt
        assert prompt.index(utterances.loc[item["anchor_utterance_id"], "text"]) < prompt.index(item["question"])


def test_a_release_with_a_broken_item_is_refused_naming_speech_items(raw: Path, tmp_path: Path) -> None:
    """The GX suite and the checks run on the rows as published: an ``answer`` that no longer points at
    ``answer_key`` (staged by hand) refuses the release."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shardsmith.pipeline.releases import build_release
    from shardsmith.publish.build import ValidationFailedError
    from shardsmith.schemas.werewolf import SPEECH_ITEMS_SCHEMA

    settings = Settings(home=tmp_path / "home")
    shutil.copytree(raw, settings.raw_dir("werebench"))
    for ref in discover_games("werebench", settings.raw_dir("werebench")):
        write_game_staging(settings, "werebench", build_game("werebench", ref))
    staged = settings.layout.game_table("werebench", "speech_items", "werebench-s9-01")
    rows = pq.read_table(staged).to_pylist()
    rows[0]["answer"] = (rows[0]["answer"] + 1) % len(rows[0]["options"])
    pq.write_table(pa.Table.from_pylist(rows, schema=SPEECH_ITEMS_SCHEMA), staged)
    with pytest.raises(ValidationFailedError, match="table speech_items") as err:
        build_release(settings, "werewolf", ["werebench"])
    assert "answer_index_matches" in str(err.value) and "speech_answer_in_options" in str(err.value)
