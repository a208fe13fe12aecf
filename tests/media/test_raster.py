"""PNG/JPEG reading and the deterministic PNG encoder."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from shardsmith.demo.dicom_fixtures import chest_phantom, make_cxr_dicom, write_png
from shardsmith.media.dicom import DecodedImage, MediaError, decode_dicom
from shardsmith.media.raster import decode_png, encode_png, read_raster

NIH_PNGS = ("00000001_000.png", "00027426_000.png")


@pytest.fixture(scope="module")
def real_samples() -> Path:
    root = os.environ.get("SHARDSMITH_REAL_SAMPLES")
    if not root:
        pytest.skip("SHARDSMITH_REAL_SAMPLES not set: real NIH PNG files unavailable")
    return Path(root)


def _image(h: int, w: int, lo: float = 0.0, hi: float = 4095.0) -> DecodedImage:
    return DecodedImage(chest_phantom(h, w, 12).astype(np.float32), lo, hi, "test", {}, {})


def _png_bit_depth(png: bytes) -> int:
    assert png[12:16] == b"IHDR"
    return png[24]


# ------------------------------------------------------------------ encode_png


def test_downsize_keeps_aspect_and_scales() -> None:
    enc = encode_png(_image(300, 220), max_side=100, bit_depth=8)
    assert (enc.height, enc.width) == (100, 73)  # 220 * 100 / 300 = 73.3
    assert (enc.native_height, enc.native_width) == (300, 220)
    assert enc.scale_y == pytest.approx(100 / 300) and enc.scale_x == pytest.approx(73 / 220)
    arr = decode_png(enc.png)
    assert arr.shape == (100, 73) and arr.dtype == np.uint8
    wide = encode_png(_image(120, 400), max_side=200, bit_depth=8)
    assert (wide.height, wide.width) == (60, 200)


@pytest.mark.parametrize("max_side", [0, 300, 1024])
def test_no_resize_when_small_enough(max_side: int) -> None:
    enc = encode_png(_image(300, 220), max_side=max_side, bit_depth=8)
    assert (enc.height, enc.width, enc.scale_y, enc.scale_x) == (300, 220, 1.0, 1.0)


def test_sixteen_bit_is_really_sixteen_bit() -> None:
    img = _image(64, 48)
    enc = encode_png(img, max_side=0, bit_depth=16)
    assert _png_bit_depth(enc.png) == 16
    arr = decode_png(enc.png)
    assert arr.dtype == np.uint16 and int(arr.max()) > 255
    expected = np.floor(img.pixels / 4095.0 * 65535 + 0.5)
    np.testing.assert_allclose(arr, expected, atol=1)
    assert _png_bit_depth(encode_png(img, 0, 8).png) == 8
    with pytest.raises(ValueError):
        encode_png(img, 0, 12)


def test_linear_mapping_and_clipping() -> None:
    row = np.array([[-600, -500, 1500, 3500, 3600]], dtype=np.float32)
    enc = encode_png(DecodedImage(row, -500.0, 3500.0, "test", {}, {}), 0, 8)
    np.testing.assert_array_equal(decode_png(enc.png), [[0, 0, 128, 255, 255]])


def test_encoding_is_deterministic(tmp_path: Path) -> None:
    img = decode_dicom(make_cxr_dicom(tmp_path / "d.dcm", rows=300, columns=220, window=(2000, 3000)))
    for side, depth in ((0, 16), (128, 8), (128, 16)):
        first, second = encode_png(img, side, depth), encode_png(img, side, depth)
        assert first.png == second.png
    assert b"tIME" not in first.png and b"tEXt" not in first.png


def test_eight_bit_dicom_round_trips_exactly(tmp_path: Path) -> None:
    pixels = chest_phantom(90, 70, 8).astype(np.uint8)
    img = decode_dicom(make_cxr_dicom(tmp_path / "e.dcm", bits_stored=8, pixels=pixels))
    np.testing.assert_array_equal(decode_png(encode_png(img, 0, 8).png), pixels)


# ------------------------------------------------------------------ read_raster


def test_real_nih_png(real_samples: Path) -> None:
    for name in NIH_PNGS:
        img = read_raster(real_samples / "cxr-images" / "nih" / name)
        assert img.pixels.shape == (512, 512) and img.pixels.dtype == np.float32
        assert (img.lo, img.hi, img.intensity) == (0.0, 255.0, "raster_8bit")
        h, w = img.pixels.shape
        rows = slice(int(0.3 * h), int(0.7 * h))
        centre = img.pixels[rows, int(0.46 * w) : int(0.54 * w)].mean()
        assert img.pixels[rows, int(0.2 * w) : int(0.38 * w)].mean() < centre
        assert img.pixels[rows, int(0.62 * w) : int(0.8 * w)].mean() < centre
        enc = encode_png(img, 256, 8)
        assert (enc.height, enc.width, enc.scale_x) == (256, 256, 0.5)


def test_sixteen_bit_png_and_bytes_input(tmp_path: Path) -> None:
    arr = chest_phantom(40, 30, 16)
    path = write_png(tmp_path / "a.png", arr)
    img = read_raster(path)
    assert (img.lo, img.hi, img.intensity) == (0.0, 65535.0, "raster_16bit")
    np.testing.assert_array_equal(img.pixels, arr.astype(np.float32))
    np.testing.assert_array_equal(read_raster(path.read_bytes()).pixels, img.pixels)
    assert img.meta["bits_stored"] == 16 and img.meta["rows"] == 40 and img.identifiers == {}


def test_rgba_keeps_channel_zero(tmp_path: Path) -> None:
    rgba = np.zeros((8, 9, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 255
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    img = read_raster(buf.getvalue())
    assert img.pixels.shape == (8, 9)
    assert float(img.pixels[0, 0]) == 10.0  # R, channel 0 of the RGBA array


def test_jpeg(tmp_path: Path) -> None:
    arr = chest_phantom(50, 60, 8).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    img = read_raster(buf.getvalue())
    assert img.pixels.shape == (50, 60) and np.abs(img.pixels - arr).mean() < 3


def _raster_reason(data: bytes) -> str:
    with pytest.raises(MediaError) as info:
        read_raster(data)
    return info.value.reason


def test_raster_failures(tmp_path: Path) -> None:
    arr = chest_phantom(64, 64, 8).astype(np.uint8)
    png = cv2.imencode(".png", arr)[1].tobytes()
    jpg = cv2.imencode(".jpg", arr)[1].tobytes()
    assert _raster_reason(png[: len(png) // 2]) == "truncated"
    assert _raster_reason(jpg[: len(jpg) // 2]) == "truncated"
    corrupt = bytearray(png)
    idat = corrupt.index(b"IDAT")
    corrupt[idat + 10 : idat + 40] = bytes(30)
    assert _raster_reason(bytes(corrupt)) == "decode_failed"
    assert _raster_reason(b"") == "empty_file"
    assert _raster_reason(b"GIF89a not an x-ray") == "unsupported_format"
    (tmp_path / "cut.png").write_bytes(png[:100])
    with pytest.raises(MediaError, match="cut.png"):
        read_raster(tmp_path / "cut.png")
    with pytest.raises(MediaError) as info:
        decode_png(jpg)
    assert info.value.reason == "unsupported_format"
