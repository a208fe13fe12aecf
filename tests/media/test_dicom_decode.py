"""DICOM decoding: real SIIM files (when SHARDSMITH_REAL_SAMPLES is set) and generated fixtures."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from shardsmith.demo.dicom_fixtures import chest_phantom, make_cxr_dicom, write_png
from shardsmith.media.dicom import (
    IDENTIFIER_KEYS,
    META_KEYS,
    MediaError,
    UnsupportedImageError,
    age_band,
    decode_dicom,
    read_dicom_header,
)

SIIM_NAME = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"


@pytest.fixture(scope="module")
def real_samples() -> Path:
    root = os.environ.get("SHARDSMITH_REAL_SAMPLES")
    if not root:
        pytest.skip("SHARDSMITH_REAL_SAMPLES not set: real SIIM DICOM files unavailable")
    return Path(root)


def _bands(pixels: np.ndarray) -> tuple[float, float, float]:
    """Mean of the central (mediastinum) band and the two lateral (lung) bands, mid-height."""
    h, w = pixels.shape
    rows = slice(int(0.3 * h), int(0.7 * h))
    centre = float(pixels[rows, int(0.46 * w) : int(0.54 * w)].mean())
    left = float(pixels[rows, int(0.2 * w) : int(0.38 * w)].mean())
    right = float(pixels[rows, int(0.62 * w) : int(0.8 * w)].mean())
    return centre, left, right


def _display(img) -> np.ndarray:
    return (img.pixels - img.lo) / (img.hi - img.lo)


def _expected_window(x: np.ndarray, center: float, width: float, y_min: float, y_max: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR window, written out independently of pydicom."""
    c, w = center - 0.5, width - 1
    out = ((x - c) / w + 0.5) * (y_max - y_min) + y_min
    out = np.where(x <= c - w / 2, y_min, out)
    return np.where(x > c + w / 2, y_max, out)


# ------------------------------------------------------------------ real files


def test_real_siim_jpeg_baseline(real_samples: Path) -> None:
    path = real_samples / "cxr-images" / "siim" / SIIM_NAME
    img = decode_dicom(path)
    assert img.pixels.shape == (1024, 1024)
    assert img.pixels.dtype == np.float32
    assert np.isfinite(img.pixels).all()
    assert (img.lo, img.hi) == (0.0, 255.0)
    centre, left, right = _bands(img.pixels)
    assert left < centre - 30 and right < centre - 30, (centre, left, right)
    # 8-bit data without VOI keeps its values: the decoded image equals the JPEG-decoded stored values.
    np.testing.assert_array_equal(img.pixels, pydicom.dcmread(path).pixel_array.astype(np.float32))
    assert img.meta == {
        "modality": "CR",
        "view": "PA",
        "body_part": "chest",
        "pixel_spacing_mm": [0.168, 0.168],
        "sex": "M",
        "age_band": "60-69",  # PatientAge is a bare "62" in this file
        "photometric": "MONOCHROME2",
        "bits_stored": 8,
        "rows": 1024,
        "columns": 1024,
        "transfer_syntax": "1.2.840.10008.1.2.4.50",
        "burned_in_annotation": None,
        "burned_in_annotation_raw": None,
    }
    assert img.identifiers["SOPInstanceUID"] == path.stem
    assert img.identifiers["PatientID"] == "16d7f894-55d7-4d95-8957-d18987f0e981"
    assert not any(v and v in repr(img.meta) for v in img.identifiers.values())


def test_real_monochrome1_twin_is_inverted(real_samples: Path, tmp_path: Path) -> None:
    original = decode_dicom(real_samples / "cxr-images" / "siim" / SIIM_NAME)
    # Fake_MONOHR1.dcm holds byte-identical pixel data with only the tag changed to MONOCHROME1,
    # so the correct display is the exact negative of the original (lungs now bright).
    twin = decode_dicom(real_samples / "cxr-images" / "Fake_MONOHR1.dcm")
    assert twin.meta["photometric"] == "MONOCHROME1"
    assert twin.intensity.endswith("invert_monochrome1")
    assert np.corrcoef(_display(original).ravel(), _display(twin).ravel())[0, 1] < -0.99
    np.testing.assert_array_equal(twin.pixels, original.lo + original.hi - original.pixels)
    # A MONOCHROME1 file that stores the inverted values (as a real MONOCHROME1 modality would)
    # must display like the original.
    stored_like_mono1 = make_cxr_dicom(
        tmp_path / "mono1.dcm",
        bits_stored=8,
        photometric="MONOCHROME1",
        pixels=original.pixels.astype(np.uint8),
    )
    again = decode_dicom(stored_like_mono1)
    assert np.corrcoef(_display(original).ravel(), _display(again).ravel())[0, 1] > 0.99
    centre, left, right = _bands(again.pixels)
    assert left < centre and right < centre


def test_real_header_matches_decode(real_samples: Path) -> None:
    path = real_samples / "cxr-images" / "siim" / SIIM_NAME
    header = read_dicom_header(path)
    img = decode_dicom(path)
    assert header["meta"] == img.meta
    assert header["identifiers"] == img.identifiers
    assert (header["frames"], header["samples_per_pixel"]) == (1, 1)
    assert read_dicom_header(path.read_bytes())["meta"] == img.meta


# ------------------------------------------------------------------ generated fixtures


def test_non_square_12bit_rescale_window(tmp_path: Path) -> None:
    pixels = chest_phantom(300, 220, 12)
    path = make_cxr_dicom(
        tmp_path / "a.dcm",
        rows=300,
        columns=220,
        bits_stored=12,
        pixels=pixels,
        rescale=(2.0, -100.0),
        window=(3000.0, 4000.0),
    )
    img = decode_dicom(path)
    assert img.pixels.shape == (300, 220)
    y_min, y_max = 0 * 2 - 100, 4095 * 2 - 100
    assert (img.lo, img.hi) == (y_min, y_max)
    assert img.intensity == "modality_lut(slope=2,intercept=-100)+voi_window(c=3000,w=4000)"
    expected = _expected_window(pixels.astype(np.float64) * 2 - 100, 3000.0, 4000.0, y_min, y_max)
    np.testing.assert_allclose(img.pixels, expected, rtol=0, atol=0.01)
    centre, left, right = _bands(img.pixels)
    assert left < centre and right < centre
    assert img.meta["rows"] == 300 and img.meta["columns"] == 220 and img.meta["bits_stored"] == 12


def test_monochrome1_displays_like_monochrome2(tmp_path: Path) -> None:
    pixels = chest_phantom(128, 96, 12)
    m2 = decode_dicom(make_cxr_dicom(tmp_path / "m2.dcm", pixels=pixels))
    m1 = decode_dicom(make_cxr_dicom(tmp_path / "m1.dcm", pixels=pixels, photometric="MONOCHROME1"))
    assert m1.intensity.endswith("+invert_monochrome1")
    np.testing.assert_allclose(_display(m1), _display(m2), atol=1e-6)
    # With a window the inversion must come after windowing: a MONOCHROME1 window sits at the
    # mirrored center; inverting before windowing would give a different image.
    m2w = decode_dicom(make_cxr_dicom(tmp_path / "m2w.dcm", pixels=pixels, window=(1200, 1500)))
    m1w = decode_dicom(
        make_cxr_dicom(
            tmp_path / "m1w.dcm", pixels=pixels, photometric="MONOCHROME1", window=(4095 - 1200 + 1, 1500)
        )
    )
    assert np.corrcoef(_display(m1w).ravel(), _display(m2w).ravel())[0, 1] > 0.99
    assert np.abs(_display(m1w) - _display(m2w)).mean() < 0.01


def test_rle_lossless_equals_uncompressed(tmp_path: Path) -> None:
    plain = decode_dicom(make_cxr_dicom(tmp_path / "p.dcm", rows=200, columns=150, window=(2000, 3000)))
    rle_path = make_cxr_dicom(
        tmp_path / "r.dcm", rows=200, columns=150, transfer_syntax="rle", window=(2000, 3000)
    )
    rle = decode_dicom(rle_path)
    assert rle.meta["transfer_syntax"] == "1.2.840.10008.1.2.5"
    np.testing.assert_array_equal(rle.pixels, plain.pixels)


def test_jpeg_baseline_fixture(tmp_path: Path) -> None:
    pixels = chest_phantom(180, 240, 8)
    img = decode_dicom(
        make_cxr_dicom(tmp_path / "j.dcm", bits_stored=8, pixels=pixels, transfer_syntax="jpeg_baseline")
    )
    assert img.pixels.shape == (180, 240)
    assert img.meta["transfer_syntax"] == "1.2.840.10008.1.2.4.50"
    assert np.abs(img.pixels - pixels).mean() < 3  # lossy, quality 95


def test_signed_and_16bit(tmp_path: Path) -> None:
    pixels = chest_phantom(64, 80, 12)
    signed = decode_dicom(make_cxr_dicom(tmp_path / "s.dcm", pixels=pixels, signed=True))
    np.testing.assert_array_equal(signed.pixels, pixels.astype(np.float32) - 2048)
    assert signed.lo == float(pixels.min()) - 2048 and signed.hi == float(pixels.max()) - 2048
    p16 = chest_phantom(64, 80, 16)
    full = decode_dicom(make_cxr_dicom(tmp_path / "16.dcm", pixels=p16, bits_stored=16))
    np.testing.assert_array_equal(full.pixels, p16.astype(np.float32))
    assert full.intensity.startswith("minmax(")
    pct = decode_dicom(tmp_path / "16.dcm", fallback="percentile")
    assert full.lo < pct.lo < pct.hi < full.hi


def test_voi_lut_sequence_uses_lut_output_range(tmp_path: Path) -> None:
    path = make_cxr_dicom(tmp_path / "v.dcm", rows=32, columns=40, bits_stored=12)
    ds = pydicom.dcmread(path)
    item = Dataset()
    # Descriptor claims 16-bit output, the data is 8-bit: a common real-world inconsistency.
    item.add_new(0x00283002, "US", [4096, 0, 16])
    item.add_new(0x00283006, "US", (np.arange(4096) // 16).tolist())
    ds.VOILUTSequence = Sequence([item])
    ds.save_as(path)
    img = decode_dicom(path)
    assert img.intensity == "voi_lut"
    assert (img.lo, img.hi) == (0.0, 255.0)
    np.testing.assert_array_equal(img.pixels, (ds.pixel_array // 16).astype(np.float32))


def test_whitelist_only(tmp_path: Path) -> None:
    path = make_cxr_dicom(
        tmp_path / "w.dcm",
        patient_id="PAT-SECRET-42",
        patient_name="DOE^JANE",
        sex="F",
        age="095Y",
        view="LATERAL",
        burned_in=True,
        extra_identifiers={
            "AccessionNumber": "ACC-777",
            "InstitutionName": "St Elsewhere",
            "PatientBirthDate": "19300101",
            "ReferringPhysicianName": "HOUSE^GREGORY",
        },
    )
    img = decode_dicom(path)
    assert tuple(img.meta) == META_KEYS
    assert tuple(img.identifiers) == IDENTIFIER_KEYS
    assert img.identifiers["PatientID"] == "PAT-SECRET-42"
    assert img.meta["sex"] == "F" and img.meta["age_band"] == "90+" and img.meta["view"] == "LL"
    assert img.meta["burned_in_annotation"] is True
    blob = repr(img.meta) + repr(img.intensity)
    for secret in ("PAT-SECRET-42", "DOE", "ACC-777", "Elsewhere", "19300101", "HOUSE"):
        assert secret not in blob
    assert not any(secret in repr(img.identifiers) for secret in ("DOE", "ACC-777", "Elsewhere", "HOUSE"))


@pytest.mark.parametrize(
    ("raw", "band"),
    [
        ("045Y", "40-49"),
        ("62", "60-69"),
        ("006M", "0-9"),
        ("089Y", "80-89"),
        ("095Y", "90+"),
        ("010D", "0-9"),
        (None, None),
        ("", None),
        ("abc", None),
    ],
)
def test_age_band(raw: str | None, band: str | None) -> None:
    assert age_band(raw) == band


def test_fixture_is_deterministic_and_bytes_input(tmp_path: Path) -> None:
    a = make_cxr_dicom(tmp_path / "x" / "same.dcm", transfer_syntax="rle")
    b = make_cxr_dicom(tmp_path / "y" / "same.dcm", transfer_syntax="rle")
    assert a.read_bytes() == b.read_bytes()
    np.testing.assert_array_equal(decode_dicom(a.read_bytes()).pixels, decode_dicom(a).pixels)


# ------------------------------------------------------------------ failures


def _reason(source, **kwargs) -> str:
    with pytest.raises(MediaError) as info:
        decode_dicom(source, **kwargs)
    return info.value.reason


def test_png_named_dicom(tmp_path: Path) -> None:
    png = write_png(tmp_path / "image.png", chest_phantom(32, 32, 8).astype(np.uint8))
    target = png.rename(tmp_path / "x.dicom")
    with pytest.raises(MediaError) as info:
        decode_dicom(target)
    assert info.value.reason == "not_dicom" and "x.dicom" in str(info.value)
    with pytest.raises(MediaError) as info:
        read_dicom_header(target)
    assert info.value.reason == "not_dicom"


def test_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "empty.dcm").write_bytes(b"")
    assert _reason(tmp_path / "empty.dcm") == "empty_file"
    assert _reason(b"") == "empty_file"
    assert _reason(tmp_path / "nope.dcm") == "unreadable"
    with pytest.raises(MediaError) as info:
        read_dicom_header(tmp_path / "empty.dcm")
    assert info.value.reason == "empty_file"


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_truncated_native_encapsulated_and_header(tmp_path: Path) -> None:
    native = make_cxr_dicom(tmp_path / "n.dcm", rows=100, columns=80).read_bytes()
    assert _reason(native[: int(len(native) * 0.6)], name="n.dcm") == "truncated"
    jpeg = make_cxr_dicom(tmp_path / "j.dcm", bits_stored=8, transfer_syntax="jpeg_baseline").read_bytes()
    assert _reason(jpeg[: int(len(jpeg) * 0.8)]) == "truncated"
    # Cut inside a header value (the patient name): pydicom keeps the short value silently.
    cut = native.index(b"DEMO^PATIENT") + 4
    assert _reason(native[:cut]) == "truncated"


def test_no_pixel_data(tmp_path: Path) -> None:
    path = make_cxr_dicom(tmp_path / "np.dcm", omit_pixel_data=True)
    with pytest.raises(MediaError) as info:
        decode_dicom(path)
    assert info.value.reason == "no_pixel_data" and "np.dcm" in str(info.value)
    assert read_dicom_header(path)["meta"]["rows"] == 256  # the header alone still reads


def test_unsupported_images(tmp_path: Path) -> None:
    path = make_cxr_dicom(tmp_path / "mf.dcm", rows=16, columns=16)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(tmp_path / "multi.dcm")
    with pytest.raises(UnsupportedImageError, match="multi-frame"):
        decode_dicom(tmp_path / "multi.dcm")

    ds = pydicom.dcmread(path)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = np.zeros((16, 16, 3), np.uint8).tobytes()
    ds.save_as(tmp_path / "rgb.dcm")
    assert _reason(tmp_path / "rgb.dcm") == "unsupported_image"

    ds = pydicom.dcmread(make_cxr_dicom(tmp_path / "j.dcm", bits_stored=8, transfer_syntax="jpeg_baseline"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no pixel decoder exists
    ds.save_as(tmp_path / "mpeg.dcm")
    assert _reason(tmp_path / "mpeg.dcm") == "unsupported_transfer_syntax"


def test_media_error_pickles_with_reason() -> None:
    err = pickle.loads(pickle.dumps(MediaError("truncated", "x.dcm: cut")))
    assert err.reason == "truncated" and str(err) == "x.dcm: cut"
    err2 = pickle.loads(pickle.dumps(UnsupportedImageError("y.dcm: colour")))
    assert isinstance(err2, UnsupportedImageError) and err2.reason == "unsupported_image"
