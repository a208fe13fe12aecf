"""The ``pairs`` view: two distinct radiographs of the same patient, for anatomical-consistency
pretraining (ACE, PEAC) and change-over-time models.

Pairs are made within one source, patient and split, so a pair can never cross either, from
the patient's radiographs with copies collapsed (one record per ``image_group``, the smallest
record_id; a film is never paired with its own copy). Copies are collapsed inside the source, not
to the ``pretrain`` representative, which may belong to another source (an MS-CXR record of a
MIMIC-CXR film) and would take the film out of its patient's history:

* ``same_study_other_view``: one study, two different view positions (PA + lateral);
* ``follow_up``: two different studies; ``a`` is the earlier (by ``study_order``), and
  ``days_between`` comes from the sources' relative day offsets (MIMIC-CXR); CheXpert ``studyN``
  and NIH ``Follow-up #`` give an order without days, so their ``days_between`` is null.

A record without a study (neither ``study_id`` nor ``study_order``) cannot be placed and is not
paired. At most ``MAX_PAIRS_PER_PATIENT`` pairs are kept per patient, so a patient with 100 studies
does not dominate: every candidate is ranked by ``sha256(pair_id)`` (the ids are keyed pseudonyms;
the rank is stable for a release) and the first ones kept, other-view pairs before follow-ups.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

MAX_PAIRS_PER_PATIENT = 10
RELATION_RANK = {"same_study_other_view": 0, "follow_up": 1}
PAIR_COLUMNS = ["record_id", "image_group", "source", "patient_id", "study_id", "view", "split", "study_day",
                "study_order"]


def _study_key(r: dict[str, Any]) -> tuple[str, object] | None:
    if r.get("study_id"):
        return ("id", r["study_id"])
    if r.get("study_order") is not None:
        return ("order", r["study_order"])
    return None


def _pair(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """The pair of two radiographs of one patient, or None when they are not one (same view of one
    study: a repeat, not another view)."""
    if _study_key(a) == _study_key(b):
        if not a.get("view") or not b.get("view") or a["view"] == b["view"]:
            return None
        relation = "same_study_other_view"
        a, b = sorted((a, b), key=lambda r: r["record_id"])
    else:
        relation = "follow_up"
        a, b = sorted((a, b), key=lambda r: (r.get("study_order") is None, r.get("study_order") or 0,
                                              r.get("study_day") or 0, r["record_id"]))
    days = None
    if relation == "follow_up" and a.get("study_day") is not None and b.get("study_day") is not None:
        days = abs(int(b["study_day"]) - int(a["study_day"]))
    return {
        "pair_id": f"{a['record_id']}:{b['record_id']}", "source": a["source"], "patient_id": a["patient_id"],
        "split": a["split"], "relation": relation, "record_id_a": a["record_id"], "record_id_b": b["record_id"],
        "view_a": a.get("view"), "view_b": b.get("view"), "study_order_a": a.get("study_order"),
        "study_order_b": b.get("study_order"), "days_between": days,
    }


def _rank(pair: dict[str, Any]) -> tuple[int, str]:
    return RELATION_RANK[pair["relation"]], hashlib.sha256(pair["pair_id"].encode()).hexdigest()


def patient_pairs(images: list[dict[str, Any]], cap: int = MAX_PAIRS_PER_PATIENT) -> list[dict[str, Any]]:
    """The kept pairs of one patient's radiographs (all of one source and split)."""
    films: dict[str, dict[str, Any]] = {}
    for r in sorted(images, key=lambda r: r["record_id"]):
        films.setdefault(r.get("image_group") or r["record_id"], r)
    placed = [r for r in films.values() if _study_key(r) is not None]
    candidates = [p for a, b in itertools.combinations(placed, 2) if (p := _pair(a, b)) is not None]
    return sorted(sorted(candidates, key=_rank)[:cap], key=lambda p: p["pair_id"])


def pair_rows(radiographs: pa.Table, cap: int = MAX_PAIRS_PER_PATIENT) -> Iterator[dict[str, Any]]:
    """``PAIRS_SCHEMA`` rows over ``radiographs`` (``pretrain.radiographs``), patient by patient
    (source, patient, split sorted)."""
    import pyarrow.compute as pc

    if not radiographs.num_rows:
        return
    t = radiographs.filter(pc.is_valid(radiographs["patient_id"])).select(PAIR_COLUMNS)
    t = t.sort_by([("source", "ascending"), ("patient_id", "ascending"), ("split", "ascending"),
                   ("record_id", "ascending")])
    for batch_key, rows in itertools.groupby(_rows(t), key=lambda r: (r["source"], r["patient_id"], r["split"])):
        del batch_key
        yield from patient_pairs(list(rows), cap)


def _rows(t: pa.Table) -> Iterator[dict[str, Any]]:
    for batch in t.to_batches(max_chunksize=8192):
        yield from batch.to_pylist()
