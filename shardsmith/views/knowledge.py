"""The ``knowledge`` view: per canonical finding, the descriptions a release holds, each traceable
to where it comes from, for vision-language pretraining with label knowledge (DeViDe and kin).

Rows, all verbatim (nothing here writes text of its own):

* ``display_name`` and ``synonym``: the vocabulary's name and synonyms (``synonyms_table``), for
  every finding some record states; source ``vocabulary``, split ``shared`` (every split may use them), no record ids;
* ``grounded_phrase``: a radiologist's phrase tied to a region of that finding (``targets.text``,
  MS-CXR);
* ``report_sentence``: a sentence of a report's FINDINGS or IMPRESSION section that names the
  finding by its display name or a synonym (whole words, any case); ``negated`` when a negation cue
  (``schemas/views_data/negation_cues.csv``) comes before the mention in the same clause. A
  report is searched for the findings its study's labels state (present, absent or uncertain: the
  labellers state exactly the findings a report mentions), which keeps 377,110 reports cheap.

Phrases and sentences keep the split of the records they come from (one row per split), so a test
report never reaches a model trained on ``train``; each row lists at most ``MAX_RECORD_IDS`` of the
records holding it, and each finding keeps at most ``MAX_SENTENCES_PER_LABEL`` distinct sentences
(the first met in record order).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from shardsmith.schemas.vocabulary import Vocabulary, load_vocabulary
from shardsmith.views._common import DATA_DIR, Rows, display_name, iter_rows, synonyms_table

MAX_SENTENCES_PER_LABEL = 50
MAX_RECORD_IDS = 20
# the split of vocabulary rows (no record: any split may use them); not "all", which Hugging Face
# datasets reserves for the union of splits
SHARED = "shared"
REPORT_SECTIONS = ("FINDINGS", "IMPRESSION")
KNOWLEDGE_COLUMNS = ["record_id", "source", "split", "findings", "targets", "report_sections"]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CLAUSE_BREAK = re.compile(r";|\bbut\b|\bhowever\b|\balthough\b", re.IGNORECASE)


@lru_cache(maxsize=1)
def negation_cues() -> re.Pattern[str]:
    with (DATA_DIR / "negation_cues.csv").open(newline="", encoding="utf-8") as fh:
        cues = sorted((r["cue"].strip() for r in csv.DictReader(fh) if r["cue"].strip()), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(c) for c in cues) + r")\b", re.IGNORECASE)


def sentences(text: str) -> list[str]:
    """A section's sentences, whitespace inside each collapsed (reports wrap lines at ~80 columns)."""
    return [s for s in (" ".join(part.split()) for part in _SENTENCE_END.split(text)) if s]


def mention(sentence: str, term: re.Pattern[str]) -> bool | None:
    """None when the sentence does not name the term; else whether the first mention is negated."""
    m = term.search(sentence)
    if m is None:
        return None
    clause_start = max((b.end() for b in _CLAUSE_BREAK.finditer(sentence, 0, m.start())), default=0)
    return negation_cues().search(sentence, clause_start, m.start()) is not None


def _terms(labels: set[str], vocab: Vocabulary) -> dict[str, re.Pattern[str]]:
    synonyms = synonyms_table(vocab)
    out = {}
    for label in sorted(labels):
        names = [display_name(label, vocab), *synonyms.get(label, ())]
        words = sorted({" ".join(n.replace("_", " ").split()).lower() for n in names if n}, key=len, reverse=True)
        out[label] = re.compile(r"\b(?:" + "|".join(r"\s+".join(map(re.escape, w.split())) for w in words) + r")\b",
                                re.IGNORECASE)
    return out


@dataclass
class _Entry:
    label: str
    kind: str
    text: str
    source: str
    split: str
    negated: bool | None = None
    record_ids: list[str] = field(default_factory=list)


def knowledge_rows(records: Rows, vocab: Vocabulary | None = None) -> Iterator[dict[str, Any]]:
    """``KNOWLEDGE_SCHEMA`` rows over record rows (``KNOWLEDGE_COLUMNS``; one pass, bounded memory:
    at most ``MAX_SENTENCES_PER_LABEL`` sentences a finding are kept)."""
    vocab = vocab or load_vocabulary()
    entries: dict[tuple[str, str, str, str, str], _Entry] = {}
    per_label: dict[str, int] = {}
    stated: set[str] = set()
    terms: dict[str, re.Pattern[str]] = {}

    def add(label: str, kind: str, text: str, rec: dict[str, Any], negated: bool | None = None) -> None:
        key = (label, kind, text, rec["source"], rec["split"])
        entry = entries.get(key)
        if entry is None:
            if kind == "report_sentence":
                if per_label.get(label, 0) >= MAX_SENTENCES_PER_LABEL:
                    return
                per_label[label] = per_label.get(label, 0) + 1
            entry = entries[key] = _Entry(label, kind, text, rec["source"], rec["split"], negated)
        if len(entry.record_ids) < MAX_RECORD_IDS and rec["record_id"] not in entry.record_ids:
            entry.record_ids.append(rec["record_id"])

    for rec in iter_rows(records):
        labels = {f["label"] for f in rec.get("findings") or () if f.get("label") in vocab.canonical}
        stated |= labels
        for t in rec.get("targets") or ():
            if t.get("text") and t.get("label") in vocab.canonical:
                stated.add(t["label"])
                add(t["label"], "grounded_phrase", t["text"].strip(), rec)
        sections = [s for s in rec.get("report_sections") or () if s.get("name") in REPORT_SECTIONS]
        if not sections:
            continue
        for label in labels - terms.keys():
            terms.update(_terms({label}, vocab))
        for s in sections:
            for sentence in sentences(s.get("text") or ""):
                for label in sorted(labels):  # a sentence is matched against the study's stated findings
                    negated = mention(sentence, terms[label])
                    if negated is not None:
                        add(label, "report_sentence", sentence, rec, negated)
    synonyms = synonyms_table(vocab)
    for label in sorted(stated):
        yield _row(_Entry(label, "display_name", display_name(label, vocab), "vocabulary", SHARED))
        for syn in synonyms.get(label, ()):
            yield _row(_Entry(label, "synonym", syn, "vocabulary", SHARED))
    for entry in sorted(entries.values(), key=lambda e: (e.label, e.kind, e.split, e.source, e.text)):
        yield _row(entry)


def _row(e: _Entry) -> dict[str, Any]:
    key = "\x1f".join((e.label, e.kind, e.source, e.split, e.text))
    return {"knowledge_id": "k" + hashlib.sha256(key.encode()).hexdigest()[:20], "label": e.label, "kind": e.kind,
            "text": e.text, "negated": e.negated, "source": e.source, "split": e.split,
            "record_ids": list(e.record_ids) or None}
