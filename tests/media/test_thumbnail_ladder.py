"""A PNG's thumbnail skips the reduced decodes its header proves too small, with the same result as
trying every reduction in turn (the fingerprint must not change)."""

from __future__ import annotations

import cv2
import numpy as np

from shardsmith.media import raster


def _png(h: int, w: int, seed: int, depth16: bool) -> bytes:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 65535, (h, w)).astype(np.uint16) if depth16 else rng.integers(0, 255, (h, w)).astype(np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


def test_same_thumbnails_as_the_whole_ladder(monkeypatch):
    cases = [(64, 64, 128), (50, 300, 64), (1024, 1024, 128)]
    for side in (64, 128):  # sizes around each reduction's boundary, where rounding decides
        cases += [(side * f + d, side * f // 2 + 3, side) for f in (2, 4, 8) for d in range(-2 * f, 2 * f + 1, 3)]
    pngs = [(_png(h, w, k, depth16=k % 4 == 0), side) for k, (h, w, side) in enumerate(cases)]
    fast = [raster.thumbnail_bytes(b, side) for b, side in pngs]
    monkeypatch.setattr(raster, "_png_longest_side", lambda data: None)  # every reduction tried
    for (b, side), got in zip(pngs, fast, strict=True):
        want = raster.thumbnail_bytes(b, side)
        assert got.shape == want.shape and np.array_equal(got, want), (got.shape, side)


def test_reads_the_size_from_the_header():
    assert raster._png_longest_side(_png(30, 70, 0, False)) == 70
    assert raster._png_longest_side(b"\xff\xd8\xff\xe0 a jpeg") is None
