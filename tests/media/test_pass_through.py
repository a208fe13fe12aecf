"""Conforming PNGs are stored as they are (target 3 of issue 12): same pixels as a re-encode,
ancillary chunks dropped, and a reduced thumbnail available without a full decode."""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import pytest

from shardsmith.media.dicom import MediaError
from shardsmith.media.raster import decode_png, encode_png, pass_through_png, read_raster, thumbnail


def _phantom(h: int, w: int, dtype=np.uint8, period: float = 7.0) -> np.ndarray:
    top = 255 if dtype == np.uint8 else 65535
    y, x = np.mgrid[0:h, 0:w]
    return ((np.sin(x / period) * np.cos(y / (period * 1.6)) + 1) / 2 * top).astype(dtype)


def _with_text_chunk(png: bytes) -> bytes:
    body = b"Comment\x00patient Jane Doe"
    chunk = len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")
    return png[:33] + chunk + png[33:]  # after the signature (8) and IHDR (25)


def _write(tmp_path, name: str, arr: np.ndarray, text: bool = False):
    ok, buf = cv2.imencode(".png", arr)
    data = _with_text_chunk(buf.tobytes()) if text else buf.tobytes()
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_conforming_png_is_stored_as_is_without_text_chunks(tmp_path):
    arr = _phantom(96, 120)
    path = _write(tmp_path, "a.png", arr, text=True)
    stored = pass_through_png(path, 1024, 8)
    assert stored is not None
    assert b"tEXt" not in stored.encoded.png and b"Jane" not in stored.encoded.png
    assert (stored.encoded.height, stored.encoded.width, stored.encoded.scale_x) == (96, 120, 1.0)
    assert np.array_equal(decode_png(stored.encoded.png), arr)
    # the same pixels as decoding and re-encoding it
    assert np.array_equal(decode_png(encode_png(read_raster(path), 1024, 8).png), arr)
    assert stored.intensity == "raster_8bit" and stored.identifiers == {}


@pytest.mark.parametrize("case", ["colour", "too_large", "other_depth", "jpeg"])
def test_non_conforming_images_are_decoded(tmp_path, case):
    if case == "colour":
        path = _write(tmp_path, "c.png", np.dstack([_phantom(32, 32)] * 3))
    elif case == "too_large":
        path = _write(tmp_path, "l.png", _phantom(80, 40))
    elif case == "other_depth":
        path = _write(tmp_path, "d.png", _phantom(32, 32, np.uint16))
    else:
        path = tmp_path / "j.jpg"
        path.write_bytes(cv2.imencode(".jpg", _phantom(32, 32))[1].tobytes())
    assert pass_through_png(path, 64, 8) is None


def test_cut_png_is_a_media_error(tmp_path):
    path = _write(tmp_path, "t.png", _phantom(64, 64))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(MediaError) as err:
        pass_through_png(path, 1024, 8)
    assert err.value.reason == "truncated"


def test_thumbnail_matches_for_passed_through_and_decoded(tmp_path):
    path = _write(tmp_path, "big.png", _phantom(512, 384, period=40.0))  # radiograph-smooth
    stored = pass_through_png(path, 1024, 8)
    small_a = thumbnail(stored, 64)
    small_b = thumbnail(read_raster(path), 64)
    assert small_a.shape == small_b.shape == (64, 48) and small_a.dtype == np.uint8
    assert np.abs(small_a.astype(int) - small_b.astype(int)).mean() < 3


def test_corrupt_png_data_is_a_media_error(tmp_path):
    path = _write(tmp_path, "c.png", _phantom(64, 64))
    data = bytearray(path.read_bytes())
    data[50] ^= 0xFF  # one flipped byte inside the image data: chunk lengths and IEND intact
    path.write_bytes(bytes(data))
    with pytest.raises(MediaError) as err:
        pass_through_png(path, 1024, 8)
    assert err.value.reason == "decode_failed"
