"""The blank-frame threshold (issue 21, point 4), measured where it matters: no real radiograph and
no demo image may trip it, and constant frames (any size, depth, value, with noise or a small
marker) must. The margins printed here are the ones ``media.raster.pixel_spread`` documents."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from shardsmith.config import ImageOptions
from shardsmith.media.raster import (
    BLANK_SPREAD_LEVELS,
    PassThroughImage,
    encode_png,
    pass_through_png,
    pixel_spread,
)
from shardsmith.sources.medical.cxr import decode_any, measured_pixels

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}
# The lowest spread measured on real and demo images; the threshold must stay this far below it.
REQUIRED_MARGIN = 20.0


def stored_pixels(path: Path, bit_depth: int = 8) -> np.ndarray:
    """What the records step measures (``cxr.measured_pixels``) for the image at ``path``."""
    max_side = ImageOptions().max_side
    img = pass_through_png(path, max_side, bit_depth) or decode_any(path)
    enc = img.encoded if isinstance(img, PassThroughImage) else encode_png(img, max_side, bit_depth)
    return measured_pixels(img, enc)


def images_under(root: Path, tmp: Path) -> list[Path]:
    """Every image file under ``root``, PNGs inside zip archives (ChestX-Det) extracted to ``tmp``."""
    found = [p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    for archive in sorted(root.rglob("*.zip")):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                    out = tmp / archive.stem / Path(name).name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(zf.read(name))
                    found.append(out)
    return found


def test_no_real_radiograph_is_blank(real_samples, tmp_path):
    paths = images_under(real_samples / "cxr-images", tmp_path)
    assert len(paths) >= 4, paths  # two NIH PNGs, the SIIM DICOM and its MONOCHROME1 variant
    spreads = {f"{p.name}@{bits}": pixel_spread(stored_pixels(p, bits)) for p in paths for bits in (8, 16)}
    low = min(spreads.values())
    assert low >= 216 - 1, spreads  # the documented measurement
    assert low / BLANK_SPREAD_LEVELS >= REQUIRED_MARGIN, spreads


def test_no_demo_radiograph_is_blank(tmp_path):
    from shardsmith.demo import cxr_core, cxr_more

    raw = tmp_path / "raw"
    cxr_core.write_demo(raw)
    cxr_more.write_demo(raw)
    paths = images_under(raw, tmp_path / "unzipped")
    assert len(paths) >= 25, paths
    spreads = {str(p.relative_to(tmp_path)): pixel_spread(stored_pixels(p)) for p in paths}
    assert min(spreads.values()) >= 202 - 1, sorted(spreads.items(), key=lambda kv: kv[1])[:3]
    assert min(spreads.values()) / BLANK_SPREAD_LEVELS >= REQUIRED_MARGIN


@pytest.mark.parametrize(("shape", "dtype", "value"), [
    ((64, 64), np.uint8, 0), ((1024, 1024), np.uint8, 255), ((300, 517), np.uint16, 65535),
    ((97, 33), np.uint8, 128), ((1, 1), np.uint16, 7),
])
def test_constant_frames_have_no_spread(shape, dtype, value):
    assert pixel_spread(np.full(shape, value, dtype)) == 0.0


def test_noise_and_a_small_marker_do_not_make_a_frame_an_image():
    rng = np.random.default_rng(3)
    noisy = np.clip(rng.normal(100, 3, (1024, 1024)), 0, 255).astype(np.uint8)
    assert pixel_spread(noisy) <= 1.0  # one level: the reduced copy is rounded to integers
    marked = np.zeros((512, 512), np.uint8)
    marked[40:70, 40:70] = 255  # an "L" marker's worth of pixels on an empty frame
    assert pixel_spread(marked) < BLANK_SPREAD_LEVELS


def test_spread_is_in_levels_of_255_whatever_the_depth():
    ramp = np.linspace(0, 1, 256 * 256).reshape(256, 256)
    s8 = pixel_spread(np.rint(ramp * 255).astype(np.uint8))
    s16 = pixel_spread(np.rint(ramp * 65535).astype(np.uint16))
    assert abs(s8 - s16) < 1.0 and 235 < s8 < 245  # P2..P98 of a full ramp: 96% of 255


def test_spread_refuses_what_is_not_a_stored_image():
    with pytest.raises(ValueError):
        pixel_spread(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError):
        pixel_spread(np.zeros((0, 4), np.uint8))
