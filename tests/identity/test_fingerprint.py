"""Fingerprint: layout, invariances that must be exact, and robustness to re-release transforms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shardsmith.identity.fingerprint import (
    FINGERPRINT_SIZE,
    Fingerprint,
    FingerprintError,
    fingerprint_pixels,
)


def _ham(a: Fingerprint, b: Fingerprint) -> int:
    return bin(a.phash ^ b.phash).count("1")


def test_round_trip_and_fixed_size(make_radiograph):
    fp = fingerprint_pixels(make_radiograph(1, 256))
    data = fp.to_bytes()
    assert len(data) == FINGERPRINT_SIZE
    assert Fingerprint.from_bytes(data) == fp
    assert 0 <= fp.phash < 2**64
    assert fp.thumb_array().shape == (32, 32)
    with pytest.raises(FingerprintError):
        Fingerprint.from_bytes(data[:-1])
    with pytest.raises(FingerprintError):
        Fingerprint.from_bytes(b"XX" + data[2:])


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.uint8), np.zeros((0, 5), np.uint8),
                                 np.zeros((8, 8), np.float32), [[1, 2], [3, 4]]])
def test_rejects_what_is_not_a_2d_8_or_16_bit_image(bad):
    with pytest.raises(FingerprintError):
        fingerprint_pixels(bad)


def test_bit_depth_and_monotonic_contrast_leave_the_hash_unchanged(make_radiograph):
    img = make_radiograph(2, 256)
    base = fingerprint_pixels(img)
    as16 = fingerprint_pixels(img.astype(np.uint16) * 257)
    windowed16 = fingerprint_pixels(img.astype(np.uint16) * 16 + 300)
    gamma = fingerprint_pixels(np.clip(255 * (img / 255.0) ** 0.7, 0, 255).astype(np.uint8))
    assert base.phash == as16.phash == windowed16.phash
    assert _ham(base, gamma) <= 2
    # The exact key is about stored pixels: a different dtype is a different stored image.
    assert base.exact != as16.exact
    assert fingerprint_pixels(img.copy()).exact == base.exact


def test_re_release_transforms_stay_within_the_candidate_radius(make_radiograph):
    img = make_radiograph(3, 512)
    base = fingerprint_pixels(img)
    h, w = img.shape
    jpeg = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_UNCHANGED)
    variants = {
        "upscale": cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_CUBIC),
        "downscale": cv2.resize(img, (200, 200), interpolation=cv2.INTER_AREA),
        "jpeg80": jpeg,
        "crop2": img[int(h * 0.02):h - int(h * 0.02), int(w * 0.02):w - int(w * 0.02)],
        "border3": cv2.copyMakeBorder(img, 15, 15, 15, 15, cv2.BORDER_CONSTANT, value=0),
    }
    for name, v in variants.items():
        assert _ham(base, fingerprint_pixels(v)) <= 8, name
