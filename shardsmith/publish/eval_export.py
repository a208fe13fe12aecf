"""Evaluation tasks written from a release, for an LLM evaluation harness to load.

``export_eval(release, "speech_items", "lm-eval", out)`` writes WereBench's speech items as an
EleutherAI lm-evaluation-harness task: one JSONL file per split (every item with its context as
text: the game's published lines up to and including the anchor, one ``speaker: text`` line each)
and a task YAML (``output_type: multiple_choice``, ``doc_to_choice: choices``, ``doc_to_target:
answer``) that the harness's ``TaskManager(include_path=out)`` loads with its own dataset loader.

Why lm-evaluation-harness: it installs beside our pins (``datasets==5.2.0``, torch CPU, numpy)
without changing any installed package, while inspect-ai requires ``fsspec<=2026.6.0`` (a downgrade
of the fsspec the loaders use) and pulls an S3 client, a web server and a TUI. The harness reads the
JSONL through ``datasets`` itself, so the export is the release's rows as ``load_dataset`` sees them.

Formats are data (``FORMATS``): a new harness is one writer here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

TASK_NAME = "shardsmith_werebench_speech"
HOST = "主持人"
# A prompt in the items' language: the game so far, the question, then the answer cue.
PROMPT = "以下是一局狼人杀游戏到目前为止的发言：\n{{context}}\n\n{{question}}\n答案："
HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def _speaker(u: dict) -> str:
    return HOST if u["is_host"] else f"{u['speaker_seat']}号" if u["speaker_seat"] is not None else "?"


def speech_docs(rel, split: str) -> list[dict]:
    """The split's speech items as harness documents (raw columns, plus ``context`` as text)."""
    items = rel.arrow("speech_items", split).to_pylist()
    games = sorted({i["game_id"] for i in items})
    utt = rel.arrow("utterances", split, columns=["utterance_id", "game_id", "is_host", "speaker_seat", "text"])
    line = {u["utterance_id"]: f"{_speaker(u)}: {u['text']}" for u in utt.to_pylist() if u["game_id"] in games}
    docs = []
    for i in sorted(items, key=lambda i: i["item_id"]):
        docs.append({
            "item_id": i["item_id"], "game_id": i["game_id"], "dimension": i["dimension"],
            "asker_seat": i["asker_seat"], "asker_role": i["asker_role"],
            "context": "\n".join(line[u] for u in i["context_utterance_ids"]),
            "question": i["question"], "question_short": i["question_short"],
            "choices": list(i["choices"]), "answer": i["answer"], "answer_key": i["answer_key"],
            "anchor_utterance_id": i["anchor_utterance_id"],
        })
    return docs


def _yaml(files: dict[str, Path]) -> str:
    """The lm-eval task YAML (JSON is YAML; quoting is then never a question)."""
    task = {
        "task": TASK_NAME,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {HF_SPLITS[s]: str(p.resolve()) for s, p in files.items()}},
        "output_type": "multiple_choice",
        "doc_to_text": PROMPT,
        "doc_to_choice": "choices",
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0, "source": "shardsmith speech_items (WereBench question bank)"},
    }
    for key, split in (("training_split", "train"), ("validation_split", "val"), ("test_split", "test")):
        if split in files:
            task[key] = HF_SPLITS[split]
    if "test" not in files:
        task["test_split"] = task.get("validation_split") or task["training_split"]
    return json.dumps(task, ensure_ascii=False, indent=1) + "\n"


def write_lm_eval(rel, out: Path) -> dict[str, Path]:
    """JSONL per split and ``<TASK_NAME>.yaml`` under ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for split in rel.splits("speech_items"):
        files[split] = out / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in speech_docs(rel, split)),
                                encoding="utf-8")
    if not files:
        raise ValueError("the release has no speech_items rows")
    task = out / f"{TASK_NAME}.yaml"
    task.write_text(_yaml(files), encoding="utf-8")
    return {**files, "task": task}


FORMATS: dict[str, Callable] = {"lm-eval": write_lm_eval}
TABLES = ("speech_items",)


def export_eval(rel, table: str, fmt: str, out: Path) -> dict[str, Path]:
    """Write ``table`` of the opened release ``rel`` as a ``fmt`` task under ``out``."""
    if table not in TABLES:
        raise ValueError(f"no evaluation export for table {table!r}; known: {', '.join(TABLES)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if table not in rel.tables:
        raise ValueError(f"release {rel.version} has no {table} table")
    return FORMATS[fmt](rel, Path(out))
