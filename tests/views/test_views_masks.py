"""The run-length geometry the grounding view relies on agrees with dense masks."""

from __future__ import annotations

import numpy as np
import pytest

from shardsmith.media import masks as M


def _random_box(rng: np.random.Generator, h: int, w: int) -> list[float]:
    x0, y0 = rng.uniform(-5, w), rng.uniform(-5, h)
    return [x0, y0, x0 + rng.uniform(0, w / 2), y0 + rng.uniform(0, h / 2)]


def test_box_rle_equals_the_dense_fill() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        h, w = int(rng.integers(3, 90)), int(rng.integers(3, 90))
        box = _random_box(rng, h, w)
        if rng.random() < 0.5:
            box = [float(round(v)) for v in box]
        dense = M.box_to_mask(box, h, w)
        assert np.array_equal(M.coco_rle_decode(M.box_to_coco_rle(box, h, w)), dense)


def test_integer_box_fills_exactly_its_area() -> None:
    assert M.box_to_mask([2, 3, 7, 5], 10, 10).sum() == 10
    assert M.coco_rle_area(M.box_to_coco_rle([2, 3, 7, 5], 10, 10)) == 10


def test_union_and_bbox_agree_with_dense_operations() -> None:
    rng = np.random.default_rng(11)
    for _ in range(50):
        h, w = int(rng.integers(5, 60)), int(rng.integers(5, 60))
        masks = [rng.random((h, w)) < rng.uniform(0, 0.2) for _ in range(int(rng.integers(1, 4)))]
        union = M.coco_rle_union([M.coco_rle_encode(m) for m in masks], h, w)
        dense = np.logical_or.reduce(masks)
        assert np.array_equal(M.coco_rle_decode(union), dense)
        assert M.coco_rle_bbox_xyxy(union) == M.mask_bbox_xyxy(dense)
    with pytest.raises(M.MaskError):
        M.coco_rle_union([M.coco_rle_encode(np.ones((4, 4), bool))], 4, 5)
    assert M.coco_rle_area(M.coco_rle_union([], 4, 5)) == 0
