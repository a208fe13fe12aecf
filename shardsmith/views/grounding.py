"""The ``grounding`` view: one row per (image record, present finding with regions).

Grounding benchmarks score a model's attention or similarity map against the annotated region of
each finding, and report results by region size (small lesions are where models fail). A row holds
the union of that finding's boxes and masks as one COCO RLE over the stored image, its area
fraction and size bin, the readers who drew it and a phrase to prompt with.

Which rows exist:

* a label the source states ``present`` whose own targets (or its children's) have a box or mask;
* each ancestor of such a label (``nodule`` -> ``nodule_or_mass``) as a ``derived`` row over the
  union of its present children's regions, unless the source states that ancestor absent or
  uncertain (a roll-up never contradicts the source).

A target whose label the findings do not state present is not grounded: a region without a
stated finding would assert more than the source does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shardsmith.media import masks as M
from shardsmith.schemas.vocabulary import Vocabulary, load_vocabulary
from shardsmith.views._common import (
    Rows,
    SizeBin,
    display_name,
    iter_rows,
    present_labels,
    region_targets,
    size_bin,
    size_bins,
    synonyms_table,
)


def _image_size(record: dict[str, Any], targets: list[dict[str, Any]]) -> tuple[int, int]:
    h, w = record.get("height"), record.get("width")
    if h and w:
        return int(h), int(w)
    for t in targets:  # a record without its size still has it in every mask RLE
        if t.get("mask_rle"):
            size = t["mask_rle"]["size"]
            return int(size[0]), int(size[1])
    raise ValueError(f"record {record.get('record_id')!r} has targets but no height/width")


def _target_rle(target: dict[str, Any], h: int, w: int) -> dict[str, Any]:
    if target.get("mask_rle"):
        size = [int(v) for v in target["mask_rle"]["size"]]
        if size != [h, w]:
            raise ValueError(f"target {target.get('target_id')!r}: mask is {size}, the image is {[h, w]}")
        return target["mask_rle"]
    return M.box_to_coco_rle(target["box_xyxy"], h, w)


def _target_box(target: dict[str, Any]) -> list[float] | None:
    if target.get("box_xyxy"):
        return [float(v) for v in target["box_xyxy"]]
    return M.coco_rle_bbox_xyxy(target["mask_rle"])


def grounding_for_record(
    record: dict[str, Any],
    vocab: Vocabulary | None = None,
    bins: tuple[SizeBin, ...] | None = None,
) -> list[dict[str, Any]]:
    """The grounding rows of one record, ordered by label."""
    vocab = vocab or load_vocabulary()
    targets = region_targets(record)
    if not targets:
        return []
    present = present_labels(record)
    stated = {f["label"]: f.get("status") for f in record.get("findings") or () if f.get("label")}
    grounded = [t for t in targets if t.get("label") in present]
    if not grounded:
        return []
    # label -> targets it covers: its own plus those of its present descendants
    covers: dict[str, list[int]] = {}
    for i, t in enumerate(grounded):
        label = t["label"]
        chain = [label] + (vocab.ancestors(label) if label in vocab.canonical else [])
        for lab in chain:
            if lab != label and stated.get(lab) in ("absent", "uncertain"):
                break  # the source says otherwise about the parent: stop rolling up
            covers.setdefault(lab, []).append(i)
    h, w = _image_size(record, grounded)
    rles = [_target_rle(t, h, w) for t in grounded]
    boxes_of = [_target_box(t) for t in grounded]
    synonyms = synonyms_table(vocab)
    rows = []
    for label in sorted(covers):
        idx = covers[label]
        union = M.coco_rle_union([rles[i] for i in idx], h, w)  # run-length merge: no dense mask
        boxes = [boxes_of[i] for i in idx if boxes_of[i] is not None]
        area = M.coco_rle_area(union)
        fraction = area / float(h * w)
        derived = label not in present
        own_phrases = [] if derived else list(dict.fromkeys(  # a child's phrase describes the child
            grounded[i]["text"].strip() for i in idx
            if grounded[i]["label"] == label and (grounded[i].get("text") or "").strip()
        ))
        rows.append({
            "grounding_id": f"{record['record_id']}:{label}",
            "record_id": record["record_id"],
            "source": record["source"],
            "split": record["split"],
            "label": label,
            "derived": derived,
            "target_ids": [grounded[i].get("target_id") for i in idx],
            "boxes": boxes,
            "mask_rle": union,
            "area_px": area,
            "area_fraction": fraction,
            "size_bin": size_bin(fraction, bins),
            "readers": sorted({grounded[i]["reader"] for i in idx if grounded[i].get("reader")}),
            "phrase": "; ".join(own_phrases) if own_phrases else display_name(label, vocab),
            "phrase_source": "source" if own_phrases else "vocabulary",
            "synonyms": list(synonyms.get(label, ())),
            "sex": record.get("sex"),
            "age_band": record.get("age_band"),
            "height": h,
            "width": w,
        })
    return rows


def grounding_rows(records: Rows, vocab: Vocabulary | None = None) -> Iterator[dict[str, Any]]:
    """Stream grounding rows (``schemas.views.GROUNDING_SCHEMA``) over record rows."""
    vocab = vocab or load_vocabulary()
    bins = size_bins()
    for record in iter_rows(records):
        yield from grounding_for_record(record, vocab, bins)
