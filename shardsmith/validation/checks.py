"""The integrity checks a release runs, by name: each table declares the names of its checks beside
its schema (``schemas.tables.TableSpec.checks``), and the publisher resolves them here. A new check
is one entry here and one name on its table; the publisher holds no map of who owns what.

A check is ``per_chunk`` when it is correct on any run of rows of its table (it looks at one row, or
at rows that always travel together); the others need the whole table and run once. Besides the
declared checks, every table's unique keys (the columns its main suite declares unique) are checked
over the whole table by :func:`unique_over_files`, since the GX suites only see one chunk at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shardsmith.validation import integrity as I
from shardsmith.validation import speech_integrity as S
from shardsmith.validation.outcome import CheckOutcome

Result = CheckOutcome | list[CheckOutcome] | None


@dataclass
class CheckInput:
    """What a check may look at. ``frames``: this chunk's (or the whole table's) frames, as
    ``validation.frames`` builds them; ``arrow``: the same rows as Arrow; ``files``: the table's
    files; ``splits``: (source, patient_id, split) frames, this table's first, then those of tables
    that share its patients."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    arrow: pa.Table | None = None
    files: list[Path] = field(default_factory=list)
    splits: list[pd.DataFrame] = field(default_factory=list)


@dataclass(frozen=True)
class Check:
    run: Callable[[CheckInput], Result]  # None: the check's inputs are not in this release
    per_chunk: bool = False


def _on(fn: Callable[..., Result], *names: str) -> Callable[[CheckInput], Result]:
    """Run ``fn`` on the named frames, or not at all when one of them is absent."""
    def run(inp: CheckInput) -> Result:
        frames = [inp.frames.get(n) for n in names]
        return None if any(f is None for f in frames) else fn(*frames)
    return run


def _view_references(inp: CheckInput) -> Result:
    from shardsmith.views.validation import view_integrity

    return view_integrity(inp.frames)


def _pretraining_references(inp: CheckInput) -> Result:
    from shardsmith.views.pretraining_checks import pretraining_integrity

    return pretraining_integrity(inp.frames)


def _pretrain_covers_every_group(inp: CheckInput) -> Result:
    from shardsmith.views.pretraining_checks import pretrain_covers_every_group

    groups = inp.frames.get("record_groups")
    return None if groups is None else pretrain_covers_every_group(inp.files, groups["image_group"])


CHECKS: dict[str, Check] = {
    # records (2D) and volumes
    "patients_in_one_split": Check(lambda i: I.patients_in_one_split(i.splits[0]) if i.splits else None),
    "patients_in_one_split_across_tables": Check(
        lambda i: I.patients_in_one_split_across(i.splits) if len(i.splits) > 1 else None),
    "normal_has_no_abnormality": Check(_on(I.normal_has_no_abnormality, "records", "targets", "findings"),
                                       per_chunk=True),
    "masks_decode_to_image_size": Check(lambda i: I.masks_decode_to_image_size(i.arrow) if i.arrow else None,
                                        per_chunk=True),
    "volume_labels_named": Check(lambda i: I.volume_labels_named(i.files) if i.files else None),
    # werewolf
    "utterances_do_not_overlap": Check(_on(I.utterances_do_not_overlap, "utterances")),
    "utterance_times_inside_media": Check(_on(I.utterance_times_inside_media, "utterances", "games")),
    "votes_reference_roster": Check(_on(I.votes_reference_roster, "votes", "seats")),
    "decision_context_before_vote": Check(lambda i: _on(
        lambda d, c, u: I.decision_context_before_vote(d, c, u, i.frames.get("phases")),
        "decisions", "decision_context", "utterances")(i)),
    "decisions_cover_votes": Check(_on(I.decisions_cover_votes, "decisions", "votes")),
    "role_items_cover_roster": Check(_on(I.role_items_cover_roster, "role_inference", "seats")),
    "role_items_list_the_seats_lines": Check(_on(I.role_items_list_the_seats_lines, "role_inference",
                                                 "role_utterances", "utterances")),
    # speech_items (WereBench's question bank)
    "speech_answer_in_options": Check(_on(S.speech_answer_in_options, "speech_items", "speech_options")),
    "speech_anchor_exists": Check(_on(S.speech_anchor_exists, "speech_items", "utterances")),
    "speech_context_not_after_anchor": Check(_on(S.speech_context_not_after_anchor, "speech_items",
                                                 "speech_context", "utterances")),
    "speech_items_in_game_split": Check(_on(S.speech_items_in_game_split, "speech_items", "games")),
    # task views: every row refers to a real record, finding and target (one chunk's rows at a time)
    "view_references": Check(_view_references, per_chunk=True),
    # pretraining views (issue 23): rows against the records; one pretrain row per image group
    "pretraining_references": Check(_pretraining_references, per_chunk=True),
    "pretrain_covers_every_image_group": Check(_pretrain_covers_every_group),
}


class UnknownCheckError(KeyError):
    """A table declares a check name that no entry of ``CHECKS`` implements."""


def run_checks(names: Iterable[str], inp: CheckInput, scope: str = "all") -> list[CheckOutcome]:
    """The outcomes of the named checks on ``inp``. ``scope``: ``"chunk"`` runs the per-chunk checks,
    ``"table"`` the whole-table ones, ``"all"`` both (a table validated in one piece)."""
    out: list[CheckOutcome] = []
    for name in names:
        check = CHECKS.get(name)
        if check is None:
            raise UnknownCheckError(f"check {name!r} is declared on a table but not implemented "
                                    f"(shardsmith.validation.checks.CHECKS)")
        if scope != "all" and check.per_chunk != (scope == "chunk"):
            continue
        got = check.run(inp)
        out += got if isinstance(got, list) else [got] if got is not None else []
    return out


def unique_over_files(files: list[Path], key: tuple[str, ...]) -> CheckOutcome:
    """``key`` is unique over every row of ``files`` (rows with a null in the key are the not-null
    expectations' business, as in GX). Only the key columns are read and grouped with Arrow: memory
    is the key columns plus their hash table, about 60 bytes a row for a 24-character id (20 MB at
    335,000 records), never the rows themselves."""
    name = f"unique_over_table:{','.join(key)}"
    parts = []
    for f in files:
        missing = [c for c in key if c not in pq.read_schema(f).names]
        if missing:
            return CheckOutcome(name, False, f"{f.name} has no column(s) {missing}")
        parts.append(pq.read_table(f, columns=list(key)))
    if not parts:
        return CheckOutcome(name, True, "no rows")
    table = pa.concat_tables(parts).combine_chunks()
    for c in key:
        table = table.filter(pc.is_valid(table.column(c)))
    counts = table.group_by(list(key), use_threads=False).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts.column("count_all"), 1))
    examples = [",".join(str(r[c]) for c in key) + f" x{r['count_all']}" for r in repeated.slice(0, 5).to_pylist()]
    return CheckOutcome(name, repeated.num_rows == 0,
                        f"{repeated.num_rows} value(s) of ({', '.join(key)}) repeated among {table.num_rows} rows",
                        examples)
