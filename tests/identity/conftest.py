"""Generated radiograph-like images for the identity tests: shared chest anatomy, varied per seed.

All images share the layout a chest film has (body, two dark lungs, bright mediastinum and heart,
ribs), so their low-frequency DCT hashes are close to each other, as real chest X-rays are (median
pairwise distance 26 of 64 bits, 0.1% of pairs within 10); what differs per seed is geometry, rib
pattern, smooth tissue texture, exposure and noise.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean smooth random field: coarse noise upsampled with bicubic interpolation."""
    coarse = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    """A soft-edged version of a boolean mask: organ boundaries on films fade over several mm."""
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)


def radiograph_like(seed: int, size: int = 256, bits: int = 8) -> np.ndarray:
    """A chest-radiograph-like uint8/uint16 image (bright = dense), deterministic in ``seed``.

    Varies what varies between real films: patient size and position, a small tilt, lung and
    heart shape, lung height, rib spacing and curvature, tissue texture, exposure and noise.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    tilt = np.deg2rad(rng.normal(0, 3))
    xr = 0.5 + (xx - 0.5) * np.cos(tilt) - (yy - 0.5) * np.sin(tilt)
    yr = 0.5 + (xx - 0.5) * np.sin(tilt) + (yy - 0.5) * np.cos(tilt)
    xx, yy = xr, yr
    edge = size * rng.uniform(0.012, 0.03)
    img = np.full((size, size), rng.uniform(0.02, 0.12), np.float32)
    bx, by = 0.5 + rng.normal(0, 0.04), 0.55 + rng.normal(0, 0.05)
    bw, bh = rng.uniform(0.36, 0.52), rng.uniform(0.42, 0.62)
    body = _soft(((xx - bx) / bw) ** 2 + ((yy - by) / bh) ** 2 <= 1, edge)
    img += body * (rng.uniform(0.4, 0.65) + rng.uniform(0.0, 0.25) * yy)
    lungs = np.zeros_like(img)
    for side in (-1, 1):
        cx = bx + side * bw * rng.uniform(0.38, 0.52)
        cy = by - bh * rng.uniform(0.05, 0.3)
        rx, ry = bw * rng.uniform(0.25, 0.38), bh * rng.uniform(0.4, 0.6)
        lungs = np.maximum(lungs, _soft(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1, edge))
    img -= lungs * rng.uniform(0.25, 0.45) * (1.0 - 0.3 * yy)
    hx, hy = bx + bw * rng.uniform(0.0, 0.25), by + bh * rng.uniform(0.0, 0.25)
    heart = _soft(((xx - hx) / (bw * rng.uniform(0.25, 0.4))) ** 2
                  + ((yy - hy) / (bh * rng.uniform(0.15, 0.3))) ** 2 <= 1, edge)
    img += heart * lungs * rng.uniform(0.15, 0.35)
    mediastinum = _soft((np.abs(xx - bx) <= bw * rng.uniform(0.08, 0.16)) & (yy >= by - bh * 0.85), edge)
    img += mediastinum * body * rng.uniform(0.1, 0.3)
    # Ribs: curved bright bands across the lungs, spacing and curvature vary per image.
    ribs = np.zeros_like(img)
    spacing, curve, phase = rng.uniform(0.05, 0.08), rng.uniform(0.4, 1.5), rng.uniform(0, 1)
    for side in (-1, 1):
        rel = (xx - bx) * side
        band = np.sin(2 * np.pi * ((yy - curve * (rel - 0.15) ** 2) / spacing + phase))
        ribs += np.clip(band, 0, 1) * (rel > 0.02)
    img += lungs * ribs * rng.uniform(0.05, 0.14)
    img += body * rng.uniform(0.03, 0.08) * _smooth_field(rng, size, int(rng.integers(4, 10)))
    img += lungs * rng.uniform(0.02, 0.05) * _smooth_field(rng, size, int(rng.integers(24, 64)))
    img = cv2.GaussianBlur(img, (0, 0), size / 256 * rng.uniform(0.6, 1.5))
    img += rng.normal(0, rng.uniform(0.004, 0.015), img.shape).astype(np.float32)
    img = np.clip(img, 0, 1) ** rng.uniform(0.75, 1.35)
    top = 2**bits - 1
    return np.clip(np.rint(img * top), 0, top).astype(np.uint8 if bits == 8 else np.uint16)


@pytest.fixture(scope="session")
def make_radiograph():
    """The generator above, for tests: ``make_radiograph(seed, size=256, bits=8)``."""
    return radiograph_like
