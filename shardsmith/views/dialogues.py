"""The ``dialogues`` view: per record, the hierarchical turns the record can answer.

Joint diagnosis + segmentation models train on "is it abnormal -> which findings -> segment each".
The turns come from ``schemas/views_data/dialogue_templates.csv``; a level the record does not know
is not asked, and nothing is invented:

* ``abnormality`` (level 1) is asked only when ``abnormal`` is true or false; the answer is yes / no.
* ``findings`` (level 2) is asked when the record is ``complete`` (then the list is everything, and
  may be ``none``, unless the record is flagged abnormal) or states at least one finding present (then the list is what the source
  asserts, not necessarily everything: ``exhaustive`` is false). Uncertain and absent findings are
  never listed; parent labels are not rolled up here (the source did not say them).
* ``segment`` (level 3) is asked once per present finding with box or mask targets drawn by a
  reader (the same targets as the grounding view); the answer is those target ids.

Turns are ordered by level, then by label; ids are ``<record_id>:<turn index>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shardsmith.schemas.vocabulary import Vocabulary, load_vocabulary
from shardsmith.views._common import (
    Rows,
    display_name,
    in_sentence,
    iter_rows,
    present_labels,
    read_data_csv,
    region_targets,
)

NONE_ANSWER = "none"


@dataclass(frozen=True)
class Template:
    turn: str
    level: int
    question: str
    asked_when: str


@lru_cache(maxsize=1)
def templates() -> dict[str, Template]:
    out = {}
    for r in read_data_csv("dialogue_templates.csv"):
        t = Template(r["turn"], int(r["level"]), r["question"], r["asked_when"])
        out[t.turn] = t
    missing = {"abnormality", "findings", "segment"} - set(out)
    if missing:
        raise ValueError(f"dialogue_templates.csv lacks turn(s) {sorted(missing)}")
    return out


def dialogue_for_record(record: dict[str, Any], vocab: Vocabulary | None = None) -> list[dict[str, Any]]:
    vocab = vocab or load_vocabulary()
    tpl = templates()
    turns: list[dict[str, Any]] = []

    def add(t: Template, question: str, answer: str, labels: list[str], target_ids: list[str],
            exhaustive: bool | None) -> None:
        turns.append({
            "turn_id": f"{record['record_id']}:{len(turns)}", "record_id": record["record_id"],
            "source": record["source"], "split": record["split"], "turn_index": len(turns),
            "level": t.level, "turn": t.turn, "question": question, "answer": answer,
            "answer_labels": labels, "answer_target_ids": target_ids, "exhaustive": exhaustive,
        })

    abnormal = record.get("abnormal")
    if abnormal is not None:
        add(tpl["abnormality"], tpl["abnormality"].question, "yes" if abnormal else "no", [], [], None)
    present = sorted(present_labels(record))
    complete = bool(record.get("complete"))
    if present or (complete and abnormal is not True):  # "none" never contradicts an abnormal flag
        names = [display_name(label, vocab) for label in present]
        add(tpl["findings"], tpl["findings"].question, ", ".join(names) if names else NONE_ANSWER,
            present, [], complete)
    regions = region_targets(record)
    for label in present:
        ids = [t["target_id"] for t in regions if t.get("label") == label and t.get("target_id")]
        if ids:
            t = tpl["segment"]
            add(t, t.question.format(finding=in_sentence(display_name(label, vocab))), " ".join(ids),
                [label], ids, None)
    return turns


def dialogue_rows(records: Rows, vocab: Vocabulary | None = None) -> Iterator[dict[str, Any]]:
    """Stream dialogue turns (``schemas.views.DIALOGUES_SCHEMA``) over record rows."""
    vocab = vocab or load_vocabulary()
    for record in iter_rows(records):
        yield from dialogue_for_record(record, vocab)
