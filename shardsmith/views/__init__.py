"""Task views built from staged tables: the medical views (grounding, consensus, dialogues) at release
time from ``records`` (issue 14); the werewolf evaluation items live in ``shardsmith.werewolf``.
Plain library: no Dagster.

    views = build_views(records_batches)          # one pass over the records
    views.grounding, views.consensus, views.dialogues   # lists of rows for the release tables
    views.card_markdown()                           # the card sections

The builders stream: each takes record rows (dicts, an Arrow table, or an iterable of Arrow
batches) and yields rows of the schemas in ``shardsmith.schemas.views``. Read the records with
``VIEW_COLUMNS`` only, so image bytes are never loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shardsmith.schemas.vocabulary import Vocabulary, load_vocabulary
from shardsmith.views._common import Rows, iter_rows, size_bins
from shardsmith.views.card import consensus_section, dialogues_section, fairness_section, grounding_section
from shardsmith.views.consensus import (
    AgreementStats,
    consensus_for_image,
    consensus_methods,
    consensus_rows,
    method_for,
    votes_from_items,
    votes_from_records,
)
from shardsmith.views.dialogues import dialogue_for_record, dialogue_rows
from shardsmith.views.fairness import PrevalenceBySlice
from shardsmith.views.grounding import grounding_for_record, grounding_rows

# The records columns the views read (everything but pixels and provenance).
VIEW_COLUMNS = ["record_id", "source", "split", "sex", "age_band", "height", "width", "abnormal",
                "complete", "findings", "targets"]

__all__ = [
    "VIEW_COLUMNS", "Views", "build_views", "stream_views", "grounding_rows", "consensus_rows", "dialogue_rows",
    "votes_from_items", "votes_from_records", "AgreementStats", "PrevalenceBySlice",
]


@dataclass
class Views:
    grounding: list[dict[str, Any]] = field(default_factory=list)
    consensus: list[dict[str, Any]] = field(default_factory=list)
    dialogues: list[dict[str, Any]] = field(default_factory=list)
    agreement: AgreementStats = field(default_factory=AgreementStats)
    prevalence: PrevalenceBySlice = field(default_factory=PrevalenceBySlice)

    def card_markdown(self) -> str:
        """The four card sections, in the order the card should show them."""
        return "\n".join([
            grounding_section(self.grounding), consensus_section(self.agreement.results()),
            dialogues_section(self.dialogues), fairness_section(self.prevalence),
        ])


def stream_views(records: Rows, emit: Callable[[str, dict[str, Any]], None], vocab: Vocabulary | None = None,
                 into: Views | None = None) -> Views:
    """One pass over the records, each view row handed to ``emit(table, row)`` as it is made; the
    returned ``Views`` holds the agreement and prevalence statistics (its row lists stay empty).
    The release step writes the rows out in batches, so memory does not grow with the release."""
    vocab = vocab or load_vocabulary()
    bins = size_bins()
    methods = consensus_methods()
    out = into or Views()
    for rec in iter_rows(records):
        for row in grounding_for_record(rec, vocab, bins):
            emit("grounding", row)
        for row in dialogue_for_record(rec, vocab):
            emit("dialogues", row)
        out.prevalence.add(rec)
        method = method_for(methods, rec["source"], rec.get("split"))
        if method is not None:
            for votes in votes_from_records([rec], sources=[rec["source"]]):
                out.agreement.add(votes, method)
                for row in consensus_for_image(votes, method):
                    emit("consensus", row)
    return out


def build_views(records: Rows, vocab: Vocabulary | None = None) -> Views:
    """All views in one pass over the records, their rows kept in lists (tests, small releases)."""
    out = Views()
    return stream_views(records, lambda table, row: getattr(out, table).append(row), vocab, into=out)
