"""A PNG stored as it is must carry image data that really inflates (issue 21, point 8): chunk CRCs
only prove the bytes arrived as written, so a damaged deflate body with recomputed CRCs used to pass
``pass_through_png`` and fail later, in the fingerprint step, for the whole source."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from shardsmith.media.dicom import MediaError
from shardsmith.media.raster import decode_png, pass_through_png, read_raster

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with a correct CRC, whatever the body holds."""
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def png(arr: np.ndarray, *, interlace: bool = False, deflated: bytes | None = None, filters: int = 0,
        idat_parts: int = 1) -> bytes:
    """A greyscale PNG written by hand: scanlines with filter type ``filters`` (0 = None), deflated
    (or ``deflated`` as the body), split over ``idat_parts`` IDAT chunks, every CRC correct."""
    h, w = arr.shape
    depth = 8 if arr.dtype == np.uint8 else 16
    big = arr.astype(">u2") if depth == 16 else arr
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = b"".join(bytes([filters]) + big[y, x0::dx].tobytes()
                   for x0, y0, dx, dy in passes if x0 < w for y in range(y0, h, dy))
    body = zlib.compress(raw) if deflated is None else deflated
    cut = np.linspace(0, len(body), idat_parts + 1).astype(int)
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([depth, 0, 0, 0, int(interlace)])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + b"".join(chunk(b"IDAT", body[a:b]) for a, b in zip(cut[:-1], cut[1:], strict=True))
            + chunk(b"IEND", b""))


def scanlines(arr: np.ndarray) -> bytes:
    """The rows of an 8-bit image, each after filter type 0: what the IDAT stream must inflate to."""
    return b"".join(b"\x00" + row.tobytes() for row in arr)


def phantom(h: int = 48, w: int = 40, dtype=np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    y, x = np.mgrid[0:h, 0:w]
    return ((np.sin(x / 5.0) * np.cos(y / 7.0) + 1) / 2 * top).astype(dtype)


def write(tmp_path: Path, data: bytes, name: str = "x.png") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path: Path) -> str:
    with pytest.raises(MediaError) as err:
        pass_through_png(path, 1024, 8)
    assert err.value.reason == "decode_failed"
    return str(err.value)


def test_hand_written_png_is_stored_as_it_is(tmp_path):
    arr = phantom()
    stored = pass_through_png(write(tmp_path, png(arr, idat_parts=3)), 1024, 8)
    assert stored is not None and np.array_equal(decode_png(stored.encoded.png), arr)


@pytest.mark.parametrize("where", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_corrupt_deflate_body_with_correct_crcs_is_refused(tmp_path, where):
    arr = phantom(96, 80)
    body = bytearray(zlib.compress(scanlines(arr)))
    body[int(len(body) * where)] ^= 0xFF
    path = write(tmp_path, png(arr, deflated=bytes(body), idat_parts=2))
    assert "IDAT" in refused(path)
    with pytest.raises(MediaError):  # the decoder agrees: the file is damaged, not merely unusual
        read_raster(path)


def test_cut_deflate_stream_is_refused(tmp_path):
    arr = phantom()
    data = png(arr, deflated=zlib.compress(scanlines(arr))[:-40])
    assert "ends early" in refused(write(tmp_path, data))


def test_stream_shorter_than_the_header_is_refused(tmp_path):
    arr = phantom()
    short = zlib.compress(scanlines(arr[:-3]))  # a complete zlib stream, three rows short
    assert "ends early" in refused(write(tmp_path, png(arr, deflated=short)))


def test_a_zlib_bomb_stops_at_the_header_size(tmp_path):
    arr = phantom(8, 8)
    bomb = zlib.compress(bytes(64 * 1024 * 1024))  # 64 MiB of zeros for an 8x8 image: inflated no further
    assert "more than the 72 bytes" in refused(write(tmp_path, png(arr, deflated=bomb)))


def test_invalid_scanline_filter_is_refused(tmp_path):
    assert "filter type" in refused(write(tmp_path, png(phantom(), filters=7)))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_interlaced_and_16_bit_pngs_inflate_to_their_adam7_size(tmp_path, dtype):
    arr = phantom(37, 29, dtype)  # odd sizes: some Adam7 passes are short
    path = write(tmp_path, png(arr, interlace=True))
    assert np.array_equal(cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED), arr)
    stored = pass_through_png(path, 1024, 8 if dtype == np.uint8 else 16)
    assert stored is not None and np.array_equal(decode_png(stored.encoded.png), arr)


def test_bytes_after_the_deflate_stream_mean_decode_and_re_encode(tmp_path):
    arr = phantom()
    path = write(tmp_path, png(arr, deflated=zlib.compress(scanlines(arr)) + b"junk"))
    assert pass_through_png(path, 1024, 8) is None  # not stored with the junk ...
    assert np.array_equal(read_raster(path).pixels, arr)  # ... but libpng reads it, so it is decoded


def test_real_nih_pngs_still_pass_through(real_samples):
    for path in sorted((real_samples / "cxr-images" / "nih").glob("*.png")):
        stored = pass_through_png(path, 1024, 8)
        assert stored is not None, path
        assert np.array_equal(decode_png(stored.encoded.png), read_raster(path).pixels.astype(np.uint8))
