"""JPEGs kept as they come (issue 24 target 5): a conforming greyscale JPEG is stored byte for byte,
identifying segments dropped, a broken one refused, the fingerprint taken from one reduced decode."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shardsmith.config import Settings
from shardsmith.demo.cxr_more import write_chexpert
from shardsmith.media import raster
from shardsmith.media.dicom import MediaError
from shardsmith.media.jpeg import pass_through_jpeg
from shardsmith.sources.medical.chexpert import CheXpert
from shardsmith.sources.medical.cxr import stored_identity
from shardsmith.staging.runner import run_source


def _phantom(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(h * w)
    smooth = (np.sin(x / 9.0) * np.cos(y / 13.0) + 1) * 110 + 20
    return np.clip(smooth + rng.normal(0, 4, (h, w)), 0, 255).astype(np.uint8)


def _jpeg(arr: np.ndarray, *flags: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, 90, *flags])
    assert ok
    return buf.tobytes()


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_jfif_jpeg_is_stored_byte_identical(tmp_path):
    raw = _jpeg(_phantom(256, 320))
    stored = pass_through_jpeg(_write(tmp_path, "a.jpg", raw), 1024, 8)
    assert stored is not None
    enc = stored.encoded
    assert enc.png == raw and enc.media_type == "image/jpeg"
    assert (enc.height, enc.width, enc.scale_x, enc.scale_y) == (256, 320, 1.0, 1.0)
    assert stored.intensity == "raster_8bit" and stored.identifiers == {}


def test_progressive_and_restart_interval_jpegs_are_kept(tmp_path):
    arr = _phantom(200, 150)
    for i, flags in enumerate([(cv2.IMWRITE_JPEG_PROGRESSIVE, 1), (cv2.IMWRITE_JPEG_RST_INTERVAL, 4)]):
        raw = _jpeg(arr, *flags)
        stored = pass_through_jpeg(_write(tmp_path, f"p{i}.jpg", raw), 1024, 8)
        assert stored is not None and stored.encoded.png == raw


def test_identifying_segments_and_trailing_bytes_are_dropped(tmp_path):
    arr = _phantom(128, 96)
    raw = _jpeg(arr)
    exif = _segment(0xE1, b"Exif\x00\x00PatientName=DOE^JANE")
    comment = _segment(0xFE, b"patient 00012345 Jane Doe")
    tagged = raw[:2] + exif + raw[2:-2] + comment + raw[-2:] + b"MRN 00012345"
    stored = pass_through_jpeg(_write(tmp_path, "t.jpg", tagged), 1024, 8)
    assert stored is not None
    assert b"DOE" not in stored.encoded.png and b"00012345" not in stored.encoded.png
    assert stored.encoded.png == raw  # exactly the JPEG without those segments
    decode = cv2.imdecode(np.frombuffer(stored.encoded.png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decode, cv2.imdecode(np.frombuffer(tagged, np.uint8), cv2.IMREAD_UNCHANGED))


@pytest.mark.parametrize("case", ["colour", "too_large", "sixteen_bit_release", "png_suffix"])
def test_jpegs_that_do_not_conform_are_decoded_and_re_encoded(tmp_path, case):
    arr = _phantom(64, 48)
    name, side, depth = "c.jpg", 64, 8
    data = _jpeg(arr)
    if case == "colour":
        data = _jpeg(np.dstack([arr, arr // 2, arr]))
    elif case == "too_large":
        side = 32
    elif case == "sixteen_bit_release":
        depth = 16
    else:
        name = "c.png"
    assert pass_through_jpeg(_write(tmp_path, name, data), side, depth) is None


@pytest.mark.parametrize("cut", [lambda d: d[:-2], lambda d: d[: len(d) // 2], lambda d: d[:300]])
def test_a_cut_jpeg_is_refused(tmp_path, cut):
    data = cut(_jpeg(_phantom(128, 128)))
    with pytest.raises(MediaError) as err:
        pass_through_jpeg(_write(tmp_path, "cut.jpg", data), 1024, 8)
    assert err.value.reason == "truncated"


def test_the_fingerprint_comes_from_one_reduced_decode(tmp_path, monkeypatch):
    stored = pass_through_jpeg(_write(tmp_path, "f.jpg", _jpeg(_phantom(320, 390))), 1024, 8)
    flags: list[int] = []
    real = cv2.imdecode

    def spy(buf, flag):
        flags.append(flag)
        return real(buf, flag)

    monkeypatch.setattr(raster.cv2, "imdecode", spy)
    assert len(stored_identity(stored, stored.encoded)) > 0
    # 390 px to a 128 px fingerprint: one decode at 1/2 scale in the DCT domain, no full-size array
    assert flags == [cv2.IMREAD_REDUCED_GRAYSCALE_2]


def test_chexpert_records_keep_the_jpegs_and_a_cut_one_is_quarantined(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-jpeg")
    settings = Settings(home=tmp_path)
    raw = settings.raw_dir("chexpert")
    write_chexpert(raw)
    images = sorted(raw.rglob("*.jpg"))
    cut = images[0]
    cut.write_bytes(cut.read_bytes()[:-600])
    counts = run_source(settings, CheXpert())
    assert (counts.records, counts.quarantined) == (len(images) - 1, 1)
    assert counts.reasons == {"truncated": 1}
    import pyarrow.parquet as pq

    rows = pq.read_table(settings.staging_dir("chexpert") / "records.parquet").to_pylist()
    for row in rows:
        source = raw / "CheXpert-v1.0-small" / f"{row['native_id']}.jpg"
        assert row["media_type"] == "image/jpeg" and row["image"]["path"].endswith(".jpg")
        assert row["image"]["bytes"] == source.read_bytes()
