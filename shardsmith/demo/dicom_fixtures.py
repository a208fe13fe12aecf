"""Generators for small, valid chest-X-ray DICOM and PNG files (tests and ``make demo``).

Fixtures are built by code rather than committed as blobs, so each test states the geometry,
bit depth, photometric interpretation and transfer syntax it exercises. Output is deterministic:
the same arguments always give the same bytes (fixed seed, fixed UIDs derived from the arguments,
no timestamps), which keeps release digests in the demo reproducible.

The synthetic image (``chest_phantom``) is a crude radiograph in display orientation
(bright = dense): dark air around a bright body ellipse, two dark lung fields and a bright
mediastinum/spine band between them. In normalised image coordinates the lung fields lie in
x in [0.15, 0.45]·W (image left) and [0.55, 0.85]·W (image right), y in [0.2, 0.8]·H, and the
mediastinum in x in [0.45, 0.55]·W, so orientation tests can check where the lungs ended up.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)

__all__ = ["chest_phantom", "make_cxr_dicom", "write_png", "SOP_CLASS_UIDS"]

TransferSyntaxName = Literal["explicit_little", "implicit_little", "jpeg_baseline", "rle"]

SOP_CLASS_UIDS = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
}

_TRANSFER_SYNTAXES = {
    "explicit_little": ExplicitVRLittleEndian,
    "implicit_little": ImplicitVRLittleEndian,
    "jpeg_baseline": JPEGBaseline8Bit,
    "rle": RLELossless,
}


def chest_phantom(rows: int, columns: int, bits_stored: int = 12, seed: int = 0) -> np.ndarray:
    """A deterministic chest-like uint16 image in display orientation, values within ``bits_stored``.

    Layout (normalised coordinates): body ellipse, lungs at x [0.15, 0.45] and [0.55, 0.85],
    y [0.2, 0.8]; mediastinum band x [0.45, 0.55]. Lungs are darker than the mediastinum.
    """
    if rows < 1 or columns < 1:
        raise ValueError(f"rows and columns must be positive, got {rows}x{columns}")
    if not 1 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must be in 1..16, got {bits_stored}")
    yy = (np.arange(rows, dtype=np.float64)[:, None] + 0.5) / rows
    xx = (np.arange(columns, dtype=np.float64)[None, :] + 0.5) / columns
    rng = np.random.default_rng(seed)
    # seed 0 is the reference anatomy; every other seed is another patient's (body, lungs, heart vary)
    j = (lambda lo, hi: rng.uniform(lo, hi)) if seed else (lambda lo, hi: (lo + hi) / 2)
    img = np.full((rows, columns), 0.06)
    body = ((xx - 0.5) / j(0.42, 0.52)) ** 2 + ((yy - 0.55) / j(0.47, 0.57)) ** 2 <= 1.0
    img[body] = 0.62
    # Soft-tissue gradient: denser towards the abdomen, as on a real PA film.
    img += body * 0.10 * yy
    for cx in (j(0.26, 0.34), j(0.66, 0.74)):
        ry, cy = j(0.25, 0.35), j(0.45, 0.55)
        lung = ((xx - cx) / j(0.12, 0.18)) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
        img[lung] = 0.22 + 0.05 * yy[np.nonzero(lung)[0], 0]
    mediastinum = (np.abs(xx - j(0.47, 0.53)) <= j(0.035, 0.075)) & (yy >= 0.12) & body
    img[mediastinum] = 0.85
    if seed:
        # Each seed is another patient: soft blobs of different density at seeded places, so two
        # seeds are different radiographs to a perceptual hash, not the same film with new noise.
        for _ in range(6):
            cy, cx = rng.uniform(0.2, 0.85), rng.uniform(0.15, 0.85)
            sy, sx = rng.uniform(0.05, 0.16, size=2)
            img += rng.uniform(-0.18, 0.18) * np.exp(-(((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))
    img += rng.normal(0.0, 0.01, size=img.shape)
    max_value = 2**bits_stored - 1
    return np.clip(np.rint(img * max_value), 0, max_value).astype(np.uint16)


def make_cxr_dicom(
    path: str | Path,
    *,
    rows: int = 256,
    columns: int = 256,
    bits_stored: int = 12,
    photometric: Literal["MONOCHROME1", "MONOCHROME2"] = "MONOCHROME2",
    transfer_syntax: TransferSyntaxName = "explicit_little",
    pixels: np.ndarray | None = None,
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    patient_id: str = "DEMO-0001",
    patient_name: str = "DEMO^PATIENT",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    view: str | None = "PA",
    sex: str | None = "M",
    age: str | None = "045Y",
    modality: Literal["CR", "DX"] = "DX",
    body_part: str | None = "CHEST",
    pixel_spacing: tuple[float, float] | None = (0.143, 0.143),
    signed: bool = False,
    extra_identifiers: dict[str, str] | None = None,
    burned_in: bool | None = None,
    omit_pixel_data: bool = False,
    seed: int = 0,
) -> Path:
    """Write a single-frame grayscale CR/DX DICOM file and return its path.

    ``pixels`` are display-oriented values (bright = dense) in stored-value units within
    ``bits_stored``; their shape overrides rows/columns. ``None`` synthesises ``chest_phantom``.
    For MONOCHROME1 the stored values are the inverse (``2**bits_stored - 1 - pixels``), as a
    MONOCHROME1 modality would write them.
    ``signed`` stores ``pixels - 2**(bits_stored-1)`` with PixelRepresentation 1. ``window`` is
    (center, width) and ``rescale`` (slope, intercept), written as tags only: the stored values do
    not change. ``jpeg_baseline`` needs ``bits_stored == 8`` and is lossy (Pillow, quality 95).
    """
    path = Path(path)
    if transfer_syntax not in _TRANSFER_SYNTAXES:
        raise ValueError(
            f"unknown transfer_syntax {transfer_syntax!r}; use one of {sorted(_TRANSFER_SYNTAXES)}"
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    if transfer_syntax == "jpeg_baseline" and (bits_stored != 8 or signed):
        raise ValueError("jpeg_baseline fixtures must be unsigned 8-bit (bits_stored=8)")
    max_value = 2**bits_stored - 1
    if pixels is None:
        display = chest_phantom(rows, columns, bits_stored, seed=seed).astype(np.int64)
    else:
        display = np.asarray(pixels)
        if display.ndim != 2:
            raise ValueError(f"pixels must be 2D, got shape {display.shape}")
        if display.min() < 0 or display.max() > max_value:
            raise ValueError(f"pixels must lie in [0, {max_value}] for bits_stored={bits_stored}")
        display = display.astype(np.int64)
        rows, columns = display.shape
    stored = max_value - display if photometric == "MONOCHROME1" else display
    if signed:
        stored = stored - 2 ** (bits_stored - 1)
    bits_allocated = 8 if bits_stored <= 8 else 16
    dtype = {(8, False): "u1", (8, True): "i1", (16, False): "<u2", (16, True): "<i2"}[
        (bits_allocated, signed)
    ]

    study_uid = study_uid or generate_uid(entropy_srcs=[patient_id, "study"])
    series_uid = series_uid or generate_uid(entropy_srcs=[study_uid, "series"])
    sop_uid = sop_uid or generate_uid(entropy_srcs=[series_uid, "sop", path.stem])
    sop_class = SOP_CLASS_UIDS[modality]

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = (
        ExplicitVRLittleEndian if transfer_syntax == "rle" else _TRANSFER_SYNTAXES[transfer_syntax]
    )
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "SHARDSMITH_FIX"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20200101"
    ds.Modality = modality
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    if sex is not None:
        ds.PatientSex = sex
    if age is not None:
        ds.PatientAge = age
    if body_part is not None:
        ds.BodyPartExamined = body_part
    if view is not None:
        ds.ViewPosition = view
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    if burned_in is not None:
        ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    for keyword, value in (extra_identifiers or {}).items():
        setattr(ds, keyword, value)

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = rows
    ds.Columns = columns
    if pixel_spacing is not None:
        ds.PixelSpacing = [f"{pixel_spacing[0]:g}", f"{pixel_spacing[1]:g}"]
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if rescale is not None:
        ds.RescaleSlope = f"{rescale[0]:g}"
        ds.RescaleIntercept = f"{rescale[1]:g}"
        ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter = f"{window[0]:g}"
        ds.WindowWidth = f"{window[1]:g}"

    if not omit_pixel_data:
        raw = np.ascontiguousarray(stored.astype(dtype))
        if transfer_syntax == "jpeg_baseline":
            buf = io.BytesIO()
            Image.fromarray(raw.astype(np.uint8)).save(buf, format="JPEG", quality=95, optimize=False)
            ds.PixelData = encapsulate([buf.getvalue()])
            ds["PixelData"].VR = "OB"
            ds["PixelData"].is_undefined_length = True
            ds.LossyImageCompression = "01"
            ds.LossyImageCompressionMethod = "ISO_10918_1"
        else:
            ds.PixelData = raw.tobytes()
            ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"
            if transfer_syntax == "rle":
                ds.compress(RLELossless, generate_instance_uid=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_png(path: str | Path, array: np.ndarray) -> Path:
    """Write a 2D uint8 or uint16 array as a grayscale PNG with fixed settings (same array, same bytes)."""
    arr = np.asarray(array)
    if arr.ndim != 2 or arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png needs a 2D uint8/uint16 array, got {arr.dtype} {arr.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError(f"PNG encoding failed for {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())
    return path
