"""Mask and box geometry: SIIM relative RLE, COCO RLE, polygons, boxes."""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from shardsmith.media.masks import (
    MaskError,
    box_inside,
    clip_box_xyxy,
    coco_rle_area,
    coco_rle_decode,
    coco_rle_encode,
    mask_bbox_xyxy,
    polygon_to_mask,
    resize_mask,
    scale_box_xyxy,
    siim_rle_decode,
    siim_rle_encode,
    xywh_to_xyxy,
)


def _reference_rle2mask(rle: str, width: int, height: int) -> np.ndarray:
    """The official SIIM ``rle2mask`` loop as the reference describes it, then ``.T`` to mask[y, x]."""
    mask = np.zeros(width * height, dtype=np.uint8)
    array = [int(x) for x in rle.split()]
    current = 0
    for start, length in zip(array[0::2], array[1::2], strict=True):
        current += start
        mask[current : current + length] = 255
        current += length
    return mask.reshape(width, height).T > 0


# ------------------------------------------------------------------ SIIM RLE


def test_siim_column_major_orientation() -> None:
    # 4 rows x 3 columns; column-major flat index = x*H + y, so offset 5 is (x=1, y=1).
    mask = siim_rle_decode("5 2", height=4, width=3)
    expected = np.zeros((4, 3), bool)
    expected[1, 1] = expected[2, 1] = True
    np.testing.assert_array_equal(mask, expected)
    # Relative starts: the second gap counts from the end of the first run (index 2 -> 2+3=5 ... 7).
    mask = siim_rle_decode("0 2 3 2", height=4, width=3)
    assert mask[:, 0].tolist() == [True, True, False, False]
    assert mask[:, 1].tolist() == [False, True, True, False]
    assert siim_rle_encode(expected) == "5 2"


@pytest.mark.parametrize("empty", ["", "-1", " -1", "  -1  ", None])
def test_siim_empty(empty: str | None) -> None:
    assert not siim_rle_decode(empty, 8, 6).any()
    assert siim_rle_encode(np.zeros((8, 6), bool)) == "-1"


def test_siim_round_trip_random() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 40, size=2))
        mask = rng.random((h, w)) < rng.random()
        rle = siim_rle_encode(mask)
        np.testing.assert_array_equal(siim_rle_decode(rle, h, w), mask)
        if rle != "-1":
            np.testing.assert_array_equal(_reference_rle2mask(rle, w, h), mask)
    full = np.ones((5, 7), bool)  # a run that reaches the very last pixel
    assert siim_rle_encode(full) == "0 35"
    np.testing.assert_array_equal(siim_rle_decode("0 35", 5, 7), full)


def test_siim_out_of_bounds_and_malformed() -> None:
    with pytest.raises(MaskError) as info:
        siim_rle_decode("10 3", 4, 3)
    assert info.value.reason == "rle_out_of_bounds"
    with pytest.raises(MaskError) as info:
        siim_rle_decode("0 5 4 4", 4, 3)
    assert info.value.reason == "rle_out_of_bounds"
    for bad in ("5", "1.5 2", "3 -2", "a b", "1 2 3"):
        with pytest.raises(MaskError) as info:
            siim_rle_decode(bad, 4, 3)
        assert info.value.reason == "rle_malformed", bad


def test_siim_real_rows_are_apical_and_bilateral() -> None:
    root = os.environ.get("SHARDSMITH_REAL_SAMPLES")
    if not root:
        pytest.skip("SHARDSMITH_REAL_SAMPLES not set: real SIIM train-rle.csv unavailable")
    path = Path(root) / "cxr-labels" / "siim-pneumothorax-train-rle.csv.gz"
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader)]
        column = header.index("EncodedPixels")
        positives = []
        for row in reader:
            if row[column].strip() != "-1":
                positives.append(row[column])
            if len(positives) == 200:
                break
    ys = np.arange(1024, dtype=np.float64)
    centroids = []
    for rle in positives:
        mask = siim_rle_decode(rle, 1024, 1024)
        area = mask.sum()
        assert area > 0
        centroids.append((mask.sum(axis=0) @ ys / area, mask.sum(axis=1) @ ys / area))
    cx, cy = np.array(centroids).T
    assert (cy < 512).mean() > 0.6  # pneumothorax collects apically: mostly upper half
    assert min((cx < 512).mean(), (cx >= 512).mean()) > 0.2  # both lungs
    # Round trip on real strings: the canonical encoding re-decodes to the same mask.
    for rle in positives[:20]:
        mask = siim_rle_decode(rle, 1024, 1024)
        np.testing.assert_array_equal(siim_rle_decode(siim_rle_encode(mask), 1024, 1024), mask)


# ------------------------------------------------------------------ COCO RLE and boxes


def test_coco_round_trip_and_area() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(1, 50, size=2))
        mask = rng.random((h, w)) < 0.3
        rle = coco_rle_encode(mask)
        assert rle["size"] == [h, w] and isinstance(rle["counts"], str)
        np.testing.assert_array_equal(coco_rle_decode(rle), mask)
        assert coco_rle_area(rle) == float(mask.sum())
    uncompressed = {"size": [2, 3], "counts": [1, 2, 3]}  # column-major: 1 off, 2 on, 3 off
    np.testing.assert_array_equal(coco_rle_decode(uncompressed), [[False, True, False], [True, False, False]])
    for bad in ({"counts": "abc"}, {"size": [2, 3], "counts": [1, 2]}, {"size": [2, 3], "counts": 5}):
        with pytest.raises(MaskError):
            coco_rle_decode(bad)


def test_mask_bbox() -> None:
    mask = np.zeros((10, 12), bool)
    assert mask_bbox_xyxy(mask) is None
    mask[3, 5] = True
    assert mask_bbox_xyxy(mask) == [5.0, 3.0, 6.0, 4.0]
    mask[7, 9] = True
    assert mask_bbox_xyxy(mask) == [5.0, 3.0, 10.0, 8.0]


def test_polygon_to_mask() -> None:
    rect = polygon_to_mask([[10, 10], [30, 10], [30, 20], [10, 20]], 40, 50)
    assert rect.shape == (40, 50) and rect.dtype == bool
    assert rect.sum() == 21 * 11  # outline pixels included
    assert mask_bbox_xyxy(rect) == [10.0, 10.0, 31.0, 21.0]
    tri = polygon_to_mask([[0, 0], [99, 0], [0, 99]], 100, 100)
    assert abs(tri.sum() - 0.5 * 99 * 99) / (0.5 * 99 * 99) < 0.05
    assert tri[5, 5] and not tri[90, 90]  # x, y orientation: lower-right corner empty
    with pytest.raises(MaskError) as info:
        polygon_to_mask([[0, 0], [5, 5]], 10, 10)
    assert info.value.reason == "polygon_malformed"


def test_resize_mask_nearest() -> None:
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:4] = True
    up = resize_mask(mask, 8, 12)
    assert up.shape == (8, 12) and up.dtype == bool and up.sum() == 16
    assert mask_bbox_xyxy(up) == [4.0, 2.0, 8.0, 6.0]
    np.testing.assert_array_equal(resize_mask(up, 4, 6), mask)


def test_box_helpers() -> None:
    # An NIH box (xywh in 1024-px space) onto the 512-px PNG actually present.
    box = xywh_to_xyxy([225.08, 547.02, 86.78, 79.19])
    assert box == pytest.approx([225.08, 547.02, 311.86, 626.21])
    small = scale_box_xyxy(box, 0.5, 0.5)
    assert small == pytest.approx([112.54, 273.51, 155.93, 313.105])
    assert box_inside(small, 512, 512)
    assert not box_inside([10, 10, 10, 20], 100, 100)  # zero width
    assert not box_inside([-5, 0, 20, 20], 100, 100)
    assert box_inside([0, 0, 100.0000001, 100], 100, 100)  # float noise tolerated
    assert clip_box_xyxy([-5, 3, 120, 90], 100, 80) == [0.0, 3.0, 100.0, 80.0]
    assert not box_inside(clip_box_xyxy([120, 3, 130, 9], 100, 80), 100, 80)
