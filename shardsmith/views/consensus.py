"""Reader consensus for multi-reader sources (VinDr-CXR: 3 readers per image; LIDC-IDRI: up to 4).

Users of these sources must choose between reader-level labels and a consensus. This view keeps
the readers' own targets untouched in ``records`` and adds, per image and label:

* agreement: which readers marked the label present, out of how many read the image;
* consensus targets, by the method ``schemas/views_data/consensus_methods.csv`` names:
  ``wbf`` fuses the boxes of all readers who marked the label (weighted box fusion from the
  ``ensemble-boxes`` package, which the VinDr-CXR competition's winners used to merge readers),
  once at least ``min_readers`` readers marked it; ``mask_vote`` is the source's own consensus
  (LIDC's 50% consensus): the union of the record's ``reader = consensus`` targets of the label.
  Those come from ``sources.medical.lidc_idri.nodule_consensus``, the one definition, which votes
  per 3D nodule; a slice alone cannot tell which nodule a reader's pixels belong to, so the view
  never votes again.

The same code serves label files (``LabelledItem`` in source geometry, no pixels) and records
(stored pixels): both are first turned into :class:`ImageVotes`, and everything after works on
those. Per-label agreement over a source (percent agreement and Fleiss' kappa) accumulates in
:class:`AgreementStats` while the rows stream.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from shardsmith.media import masks as M
from shardsmith.views._common import CONSENSUS_READER, Rows, iter_rows, read_data_csv

# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ConsensusMethod:
    source: str
    split: str  # the source split it applies to, or "*" for every split
    method: str  # wbf | mask_vote
    min_readers: int
    readers_per_image: int | None  # known reader count when the data does not list silent readers
    iou_thr: float | None
    skip_box_thr: float


def _num(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


@lru_cache(maxsize=1)
def consensus_methods() -> dict[tuple[str, str], ConsensusMethod]:
    out = {}
    for r in read_data_csv("consensus_methods.csv"):
        m = ConsensusMethod(
            source=r["source"], split=r["split"] or "*", method=r["method"], min_readers=int(r["min_readers"]),
            readers_per_image=int(r["readers_per_image"]) if r["readers_per_image"] else None,
            iou_thr=_num(r["iou_thr"]), skip_box_thr=_num(r["skip_box_thr"]) or 0.0,
        )
        if m.method not in ("wbf", "mask_vote"):
            raise ValueError(f"consensus_methods.csv: {m.source}: unknown method {m.method!r}")
        if (m.source, m.split) in out:
            raise ValueError(f"consensus_methods.csv: {m.source}/{m.split} listed twice")
        if m.method == "wbf" and m.iou_thr is None:
            raise ValueError(f"consensus_methods.csv: {m.source}: wbf needs iou_thr")
        out[(m.source, m.split)] = m
    return out


def method_for(methods: dict[tuple[str, str], ConsensusMethod], source: str,
               split: str | None) -> ConsensusMethod | None:
    """The method of a source's split: an exact split row wins over the source's ``*`` row."""
    return methods.get((source, split or "*")) or methods.get((source, "*"))


# --------------------------------------------------------------------------- the common input


@dataclass(frozen=True)
class Mark:
    """One reader's region for one label: a corner box and/or a COCO RLE mask."""

    label: str
    reader: str
    box: tuple[float, float, float, float] | None = None
    mask_rle: dict[str, Any] | None = None


@dataclass
class ImageVotes:
    """What the readers of one image said, in whatever geometry the input had."""

    image_id: str  # record_id for records, native_id for label files
    source: str
    split: str | None
    readers: tuple[str, ...]  # readers known to have read the image
    present: dict[str, set[str]] = field(default_factory=dict)  # label -> readers who marked it
    known: set[str] = field(default_factory=set)  # labels with a stated present/absent status
    marks: list[Mark] = field(default_factory=list)
    consensus_masks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # the source's own, per label

    def readers_total(self, method: ConsensusMethod | None = None) -> int:
        """Readers of the image: those listed, or the source's known count when silent readers
        (VinDr ``No finding``) leave no trace in the rows."""
        seen = set(self.readers).union(*self.present.values()) if self.present else set(self.readers)
        floor = method.readers_per_image if method and method.readers_per_image else 0
        return max(len(seen), floor)


def votes_from_items(items: Iterable[Any], source: str) -> Iterator[ImageVotes]:
    """From adapter ``LabelledItem`` objects (label files only, boxes in source geometry)."""
    for item in items:
        present: dict[str, set[str]] = {}
        known: set[str] = set()
        for f in item.findings:
            if f.status in ("present", "absent"):
                known.add(f.label)
            if f.status == "present":
                present.setdefault(f.label, set()).update(f.readers)
        marks = []
        consensus: dict[str, list[dict[str, Any]]] = {}
        for t in item.targets:
            g = t.geometry
            if t.reader == CONSENSUS_READER and t.kind == "abnormality" and g.get("type") == "coco_rle":
                consensus.setdefault(t.label, []).append(g["rle"])
            if not t.reader or t.reader == CONSENSUS_READER or t.kind != "abnormality":
                continue
            box = None
            if g.get("type") == "box_xyxy":
                box = tuple(float(c) for c in g["coords"])
            elif g.get("type") == "box_xywh":
                box = tuple(M.xywh_to_xyxy(g["coords"]))
            mask = g.get("rle") if g.get("type") == "coco_rle" else None
            if box is not None or mask is not None:
                marks.append(Mark(t.label, t.reader, box, mask))
        readers = tuple(sorted((item.extra or {}).get("readers") or ()))
        yield ImageVotes(item.native_id, source, item.split, readers, present, known, marks, consensus)


def votes_from_marks(
    marks: Iterable[tuple[str, str, str, Any]],
    source: str,
    readers: dict[str, Iterable[str]] | None = None,
    split: str | None = None,
) -> Iterator[ImageVotes]:
    """From plain ``(image_id, label, reader, box_xyxy or None)`` tuples, e.g. a label table read by
    hand. Each tuple is a present mark; ``readers`` lists who read each image (silent readers
    included) when known. Images come out sorted by id."""
    by_image: dict[str, ImageVotes] = {}
    for image_id, label, reader, box in marks:
        v = by_image.get(image_id)
        if v is None:
            v = by_image[image_id] = ImageVotes(image_id, source, split, tuple(sorted((readers or {}).get(image_id, ()))))
        v.present.setdefault(label, set()).add(reader)
        v.known.add(label)
        if box is not None:
            v.marks.append(Mark(label, reader, tuple(float(c) for c in box)))
    for image_id, rs in sorted((readers or {}).items()):
        by_image.setdefault(image_id, ImageVotes(image_id, source, split, tuple(sorted(rs))))
    yield from (by_image[k] for k in sorted(by_image))


def votes_from_records(records: Rows, sources: Iterable[str] | None = None) -> Iterator[ImageVotes]:
    """From record rows (stored-pixel geometry); only sources with a consensus method by default."""
    wanted = set(sources) if sources is not None else {s for s, _ in consensus_methods()}
    for rec in iter_rows(records):
        if rec["source"] not in wanted:
            continue
        present: dict[str, set[str]] = {}
        known: set[str] = set()
        readers: set[str] = set()
        for f in rec.get("findings") or ():
            readers.update(f.get("readers") or ())  # LIDC lists every reader on absent findings too
            if f.get("status") in ("present", "absent"):
                known.add(f["label"])
            if f.get("status") == "present":
                present.setdefault(f["label"], set()).update(f.get("readers") or ())
        marks = []
        consensus: dict[str, list[dict[str, Any]]] = {}
        for t in rec.get("targets") or ():
            reader = t.get("reader")
            if reader == CONSENSUS_READER and t.get("kind") == "abnormality" and t.get("mask_rle"):
                consensus.setdefault(t["label"], []).append(t["mask_rle"])
            if not reader or reader == CONSENSUS_READER or t.get("kind") != "abnormality":
                continue
            box = tuple(float(v) for v in t["box_xyxy"]) if t.get("box_xyxy") else None
            if box is not None or t.get("mask_rle"):
                marks.append(Mark(t["label"], reader, box, t.get("mask_rle")))
                readers.add(reader)
        yield ImageVotes(rec["record_id"], rec["source"], rec.get("split"), tuple(sorted(readers)),
                         present, known, marks, consensus)


# --------------------------------------------------------------------------- consensus targets


def fuse_boxes(
    boxes_by_reader: dict[str, list[tuple[float, ...]]], iou_thr: float, skip_box_thr: float = 0.0
) -> tuple[list[list[float]], list[float], list[int]]:
    """Weighted box fusion across readers, each reader one equally weighted "model" of score-1 boxes.

    WBF wants coordinates in [0, 1]; dividing by the largest coordinate (and multiplying back) is
    exact because fusion only averages coordinates and compares IoU, both scale-free. So no image
    size is needed, and label-file geometry works as well as stored pixels. Returns the fused boxes,
    their WBF scores and, per fused box, how many readers have a box overlapping it at ``iou_thr``.
    """
    from ensemble_boxes import weighted_boxes_fusion

    readers = sorted(r for r, b in boxes_by_reader.items() if b)
    if not readers:
        return [], [], []
    scale = max(max(max(b) for b in boxes_by_reader[r]) for r in readers) or 1.0
    box_lists = [np.asarray(boxes_by_reader[r], dtype=np.float64) / scale for r in readers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # WBF warns on boxes touching 0 / 1 after scaling
        fused, scores, _ = weighted_boxes_fusion(
            [b.tolist() for b in box_lists], [[1.0] * len(b) for b in box_lists], [[0] * len(b) for b in box_lists],
            weights=None, iou_thr=iou_thr, skip_box_thr=skip_box_thr, conf_type="avg",
        )
    out_boxes = (np.asarray(fused, dtype=np.float64).reshape(-1, 4) * scale).tolist()
    order = sorted(range(len(out_boxes)), key=lambda i: (out_boxes[i][0], out_boxes[i][1], out_boxes[i][2]))
    out_boxes = [out_boxes[i] for i in order]
    out_scores = [float(scores[i]) for i in order]
    support = [
        sum(1 for b in box_lists if b.size and float(_iou(np.asarray(fb) / scale, b).max()) >= iou_thr)
        for fb in out_boxes
    ]
    return out_boxes, out_scores, support


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def source_consensus_mask(rles: list[dict[str, Any]]) -> dict[str, Any]:
    """The union of a record's own consensus targets of one label (one per nodule in LIDC)."""
    height, width = rles[0]["size"]
    return M.coco_rle_union(rles, height, width)


def consensus_for_image(votes: ImageVotes, method: ConsensusMethod) -> list[dict[str, Any]]:
    """One row per label some reader marked present, ordered by label."""
    total = votes.readers_total(method)
    marks_by_label: dict[str, list[Mark]] = defaultdict(list)
    for m in votes.marks:
        marks_by_label[m.label].append(m)
    rows = []
    for label in sorted(set(votes.present) | set(marks_by_label)):
        readers = set(votes.present.get(label, ())) | {m.reader for m in marks_by_label.get(label, ())}
        n = len(readers)
        row: dict[str, Any] = {
            "consensus_id": f"{votes.image_id}:{label}", "record_id": votes.image_id,
            "source": votes.source, "split": votes.split, "label": label,
            "readers": sorted(readers), "readers_present": n, "readers_total": total,
            "agreement": n / total if total else None, "method": None, "boxes": None,
            "box_scores": None, "box_support": None, "mask_rle": None, "votes_needed": None,
        }
        if n >= method.min_readers:
            label_marks = marks_by_label.get(label, [])
            if method.method == "wbf":
                by_reader: dict[str, list[tuple[float, ...]]] = defaultdict(list)
                for m in label_marks:
                    if m.box is not None:
                        by_reader[m.reader].append(m.box)
                if by_reader:
                    boxes, scores, support = fuse_boxes(by_reader, method.iou_thr or 0.5, method.skip_box_thr)
                    row.update(method="wbf", boxes=boxes, box_scores=scores, box_support=support)
            elif votes.consensus_masks.get(label):
                row.update(method="mask_vote", mask_rle=source_consensus_mask(votes.consensus_masks[label]))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- agreement statistics


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an N x k matrix: row i counts how many of n raters put subject i in category j.

    Every row must sum to the same n >= 2. Returns nan when chance agreement is 1 (one category only).
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(axis=1)
    if counts.ndim != 2 or counts.shape[0] == 0 or not np.all(n == n[0]) or n[0] < 2:
        raise ValueError("fleiss_kappa needs a non-empty N x k matrix whose rows share one rater count >= 2")
    raters = n[0]
    p_j = counts.sum(axis=0) / counts.sum()
    p_i = ((counts * counts).sum(axis=1) - raters) / (raters * (raters - 1))
    p_bar, p_e = p_i.mean(), float((p_j * p_j).sum())
    return float("nan") if p_e >= 1.0 else float((p_bar - p_e) / (1.0 - p_e))


class AgreementStats:
    """Per (source, label): how many readers of each image marked the label, for kappa and agreement.

    Only images whose reader count is the source's most common one enter (Fleiss' kappa needs a
    fixed number of raters); the count of images left out is reported.
    """

    def __init__(self) -> None:
        # (source, label) -> readers_total -> histogram of "readers who marked it" (index = count)
        self._hist: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(dict)

    def add(self, votes: ImageVotes, method: ConsensusMethod | None = None) -> None:
        total = votes.readers_total(method)
        if total < 2:
            return
        for label in votes.known | set(votes.present):
            k = len(votes.present.get(label, ()))
            hist = self._hist[(votes.source, label)].setdefault(total, [0] * (total + 1))
            hist[min(k, total)] += 1

    def results(self) -> list[dict[str, Any]]:
        out = []
        for (source, label), by_total in sorted(self._hist.items()):
            raters = max(by_total, key=lambda t: (sum(by_total[t]), t))
            hist = by_total[raters]
            images = sum(hist)
            counts = np.array([[k, raters - k] for k in range(raters + 1)], dtype=np.float64)
            weights = np.asarray(hist, dtype=np.float64)
            matrix = np.repeat(counts, hist, axis=0)
            pairs = raters * (raters - 1)
            observed = float((weights * ((counts * counts).sum(axis=1) - raters) / pairs).sum() / images)
            out.append({
                "source": source, "label": label, "raters": raters, "images": images,
                "images_other_rater_counts": sum(sum(h) for t, h in by_total.items() if t != raters),
                "images_any_reader": images - hist[0],
                "images_majority": sum(hist[k] for k in range(raters + 1) if 2 * k > raters),
                "images_at_least_2": sum(hist[2:]),
                "images_unanimous_present": hist[raters],
                "percent_agreement": 100.0 * observed,  # mean pairwise agreement (Fleiss' P-bar)
                "fleiss_kappa": fleiss_kappa(matrix) if images else float("nan"),
            })
        return out


def consensus_rows(
    votes: Iterable[ImageVotes],
    methods: dict[tuple[str, str], ConsensusMethod] | None = None,
    stats: AgreementStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream consensus rows (``schemas.views.CONSENSUS_SCHEMA``); feeds ``stats`` on the way."""
    methods = methods or consensus_methods()
    for v in votes:
        method = method_for(methods, v.source, v.split)
        if method is None:
            continue
        if stats is not None:
            stats.add(v, method)
        yield from consensus_for_image(v, method)
