"""The float32 rescale + LINEAR window fast path maps pixels exactly as pydicom's float64 path."""

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from shardsmith.demo.dicom_fixtures import make_cxr_dicom
from shardsmith.media.dicom import decode_dicom


@pytest.mark.parametrize(
    ("bits", "window", "rescale", "signed", "photometric"),
    [
        (12, (2048, 3600), (1.0, -1024.0), False, "MONOCHROME2"),
        (12, (1000, 800), None, False, "MONOCHROME1"),
        (14, (8000, 12000), (2.0, -100.0), False, "MONOCHROME2"),
        (16, (0, 30000), (1.0, 0.0), True, "MONOCHROME2"),
        (12, (300, 2), None, False, "MONOCHROME2"),  # narrow window: nearly binary
    ],
)
def test_fast_window_matches_pydicom(tmp_path, bits, window, rescale, signed, photometric):
    path = make_cxr_dicom(tmp_path / "x.dcm", rows=64, columns=48, bits_stored=bits, window=window,
                          rescale=rescale, signed=signed, photometric=photometric)
    ds = pydicom.dcmread(path)
    ref = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds, index=0, prefer_lut=False)
    img = decode_dicom(path)
    if photometric == "MONOCHROME1":
        ref = (img.lo + img.hi) - ref
    span = img.hi - img.lo
    np.testing.assert_allclose(img.pixels, ref, rtol=0, atol=span * 1e-6)
    assert "voi_window(c=" in img.intensity
