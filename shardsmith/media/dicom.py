"""Decode single-frame grayscale DICOM radiographs into display-oriented float images.

The order follows the standard display pipeline: stored values -> modality LUT (rescale) ->
VOI LUT or window -> MONOCHROME1 inversion, so that every stored image reads bright = dense
whatever the modality wrote. Compressed transfer syntaxes are decoded by pydicom's pixel plugins
(pylibjpeg for JPEG/JPEG-LS/JPEG 2000, native RLE).

Privacy: only a short whitelist of header fields (``meta``) leaves this module; the four raw
identifiers come back separately (``identifiers``) so that the caller pseudonymises them. No other
header value (names, dates, institutions, descriptions) is ever returned.

Every failure raises ``MediaError`` with a short machine ``reason`` and a message naming the file,
so a source adapter can quarantine the file and count reasons.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi, apply_voi_lut, get_decoder

from shardsmith.errors import ShardsmithError
from shardsmith.schemas.demographics import age_band

__all__ = [
    "DecodedImage",
    "MediaError",
    "UnsupportedImageError",
    "UnsupportedTransferSyntaxError",
    "META_KEYS",
    "IDENTIFIER_KEYS",
    "decode_dicom",
    "read_dicom_header",
]

META_KEYS = (
    "modality",
    "view",
    "body_part",
    "pixel_spacing_mm",
    "sex",
    "age_band",
    "photometric",
    "bits_stored",
    "rows",
    "columns",
    "transfer_syntax",
    "burned_in_annotation",
    "burned_in_annotation_raw",
)
IDENTIFIER_KEYS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

Source = str | Path | bytes | bytearray | memoryview


class MediaError(ShardsmithError):
    """A media file could not be used; ``reason`` is a short machine code for quarantine tables.

    Reasons used here: empty_file, unreadable, not_dicom, bad_header, truncated, no_pixel_data,
    unsupported_transfer_syntax, unsupported_image, decode_failed (raster adds unsupported_format).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)


class UnsupportedImageError(MediaError):
    """Multi-frame, colour or otherwise non-grayscale-2D images (not an error in the file itself)."""

    def __init__(self, message: str, reason: str = "unsupported_image") -> None:
        super().__init__(reason, message)


class UnsupportedTransferSyntaxError(MediaError):
    """No installed pixel plugin can decode this transfer syntax."""

    def __init__(self, message: str, reason: str = "unsupported_transfer_syntax") -> None:
        super().__init__(reason, message)


@dataclass
class DecodedImage:
    """A 2D grayscale image in display orientation plus the range it should be displayed from.

    ``pixels`` is float32, bright = dense. ``lo``/``hi`` are the values that map to black/white
    (window output range, VOI LUT output range, or min/max when the file has no VOI information);
    pixels may lie outside [lo, hi] only when a percentile fallback was chosen, and encoders clip.
    """

    pixels: np.ndarray
    lo: float
    hi: float
    intensity: str
    meta: dict[str, Any] = field(default_factory=dict)
    identifiers: dict[str, str | None] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


# --------------------------------------------------------------------------- reading


def _name(source: Source, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    return "<bytes>"


def _load_bytes(source: Source, name: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise MediaError(
                "unreadable", f"{name}: cannot read file ({exc.__class__.__name__}: {exc})"
            ) from exc
    if not data:
        raise MediaError("empty_file", f"{name}: file is empty (0 bytes)")
    return data


def _read_dataset(fileobj: Any, name: str, *, stop_before_pixels: bool) -> Dataset:
    try:
        ds = pydicom.dcmread(fileobj, force=False, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        raise MediaError("not_dicom", f"{name}: not a DICOM file (no 'DICM' preamble / file meta)") from exc
    except EOFError as exc:
        raise MediaError("truncated", f"{name}: file ends inside the DICOM header ({exc})") from exc
    except OSError as exc:
        raise MediaError("unreadable", f"{name}: cannot read file ({exc.__class__.__name__}: {exc})") from exc
    except Exception as exc:  # pydicom raises many types on malformed headers
        raise MediaError(
            "bad_header", f"{name}: cannot parse DICOM header ({exc.__class__.__name__}: {exc})"
        ) from exc
    if len(ds) == 0:
        # pydicom stops silently at EOF; an image file with no data set at all was cut short.
        raise MediaError(
            "truncated", f"{name}: DICOM file meta present but the data set is empty or cut short"
        )
    _check_last_element(ds, name)
    return ds


def _check_last_element(ds: Dataset, name: str) -> None:
    """pydicom keeps a short read as a short value; a last element shorter than declared means EOF hit."""
    last_tag = max(ds.keys())
    raw = ds.get_item(last_tag)
    if isinstance(raw, RawDataElement) and raw.value is not None and raw.length != 0xFFFFFFFF:
        if isinstance(raw.value, (bytes, bytearray)) and len(raw.value) < raw.length:
            raise MediaError(
                "truncated",
                f"{name}: element {last_tag} declares {raw.length} bytes, file ends after {len(raw.value)}",
            )


# --------------------------------------------------------------------------- header whitelist

_VIEW_CODES = {"PA", "AP", "LL", "RL", "LLD", "RLD", "LLO", "RLO", "LAO", "RAO", "LPO", "RPO"}
_VIEW_ALIASES = {"LATERAL": "LL", "LAT": "LL", "L": "LL", "POSTEROANTERIOR": "PA", "ANTEROPOSTERIOR": "AP"}
_VIEW_IN_DESCRIPTION = re.compile(r"\bview:\s*([A-Za-z]{1,4})\b")
_CODE = re.compile(r"^[A-Z][A-Z0-9 _-]{0,31}$")


def _text(ds: Dataset, keyword: str) -> str | None:
    try:
        value = ds.get(keyword)
    except Exception:
        return None
    if value is None:
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        value = value[0] if len(value) else None
        if value is None:
            return None
    text = str(value).strip()
    return text or None


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else int(value)
    except Exception:
        return None


def _normalise_view(ds: Dataset) -> str | None:
    raw = _text(ds, "ViewPosition")
    if raw is None:
        # SIIM / RSNA conversions leave ViewPosition empty on some files but write "view: PA" here.
        desc = _text(ds, "SeriesDescription") or ""
        match = _VIEW_IN_DESCRIPTION.search(desc)
        raw = match.group(1) if match else None
    if raw is None:
        return None
    token = raw.upper().replace("-", "").replace("_", "").replace(" ", "")
    if token in _VIEW_CODES:
        return token
    return _VIEW_ALIASES.get(token)


def _pixel_spacing(ds: Dataset) -> list[float] | None:
    # PixelSpacing (patient plane) first; CR/DX often only have ImagerPixelSpacing (detector plane).
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            value = ds.get(keyword)
            if value is None or isinstance(value, str) or len(value) != 2:
                continue
            spacing = [float(value[0]), float(value[1])]
        except Exception:
            continue
        if all(math.isfinite(v) and v > 0 for v in spacing):
            return spacing
    return None


def _header_meta(ds: Dataset) -> dict[str, Any]:
    modality = (_text(ds, "Modality") or "").upper()
    body_part = (_text(ds, "BodyPartExamined") or "").upper()
    sex = (_text(ds, "PatientSex") or "").upper()
    burned, burned_raw = _burned_in(ds)
    try:
        tsyntax = ds.file_meta.get("TransferSyntaxUID")
    except Exception:
        tsyntax = None
    return {
        "modality": modality if _CODE.match(modality) else None,
        "view": _normalise_view(ds),
        "body_part": body_part.lower() if _CODE.match(body_part) else None,
        "pixel_spacing_mm": _pixel_spacing(ds),
        "sex": sex if sex in ("M", "F", "O") else None,
        "age_band": age_band(_text(ds, "PatientAge")),
        "photometric": _text(ds, "PhotometricInterpretation"),
        "bits_stored": _int(ds, "BitsStored"),
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "transfer_syntax": str(tsyntax) if tsyntax else None,
        "burned_in_annotation": burned,
        "burned_in_annotation_raw": burned_raw,
    }


def _burned_in(ds: Dataset) -> tuple[bool | None, str | None]:
    """(flag, raw text) of BurnedInAnnotation: case and padding are ignored (``' yes '`` is YES).

    The flag is None when the tag is absent *or* unreadable; the raw text (at most 32 characters, a
    code string, never an identifier) tells the two apart, so a caller can quarantine an odd value
    instead of treating it as "not burned in".
    """
    try:
        value = ds.get("BurnedInAnnotation")
    except Exception:  # noqa: BLE001 - a malformed element: unreadable, not absent
        return None, "<unreadable element>"
    if value is None:
        return None, None
    if isinstance(value, (list, tuple, MultiValue)):
        if len(value) != 1:
            return (None, None) if not len(value) else (None, "\\".join(map(str, value))[:32])
        value = value[0]
    text = (value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)).strip()
    if not text:
        return None, None
    return {"YES": True, "NO": False}.get(text.upper()), text[:32]


def _identifiers(ds: Dataset) -> dict[str, str | None]:
    return {key: _text(ds, key) for key in IDENTIFIER_KEYS}


def read_dicom_header(source: Source, *, name: str | None = None) -> dict[str, Any]:
    """Whitelisted header fields without decoding pixels (catalog scans).

    Returns ``{"meta": {...META_KEYS}, "identifiers": {...IDENTIFIER_KEYS}, "frames": int,
    "samples_per_pixel": int}``; the last two let a catalog flag unsupported images early.
    """
    label = _name(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise MediaError("empty_file", f"{label}: file is empty (0 bytes)")
        ds = _read_dataset(io.BytesIO(bytes(source)), label, stop_before_pixels=True)
    else:
        try:
            size = Path(source).stat().st_size
        except OSError as exc:
            raise MediaError(
                "unreadable", f"{label}: cannot read file ({exc.__class__.__name__}: {exc})"
            ) from exc
        if size == 0:
            raise MediaError("empty_file", f"{label}: file is empty (0 bytes)")
        ds = _read_dataset(str(source), label, stop_before_pixels=True)
    return {
        "meta": _header_meta(ds),
        "identifiers": _identifiers(ds),
        "frames": _int(ds, "NumberOfFrames") or 1,
        "samples_per_pixel": _int(ds, "SamplesPerPixel") or 1,
    }


# --------------------------------------------------------------------------- pixels

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_TAG_BYTES = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010) little / big endian


def _check_supported(ds: Dataset, data: bytes, name: str) -> None:
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        if any(tag in data for tag in _PIXEL_TAG_BYTES):
            # pydicom drops an encapsulated Pixel Data element that hits EOF before its delimiter.
            raise MediaError("truncated", f"{name}: Pixel Data element present but cut short")
        raise MediaError("no_pixel_data", f"{name}: DICOM file has no Pixel Data element")
    frames = _int(ds, "NumberOfFrames") or 1
    if frames > 1:
        raise UnsupportedImageError(f"{name}: multi-frame DICOM ({frames} frames); only single 2D images")
    samples = _int(ds, "SamplesPerPixel") or 1
    photometric = (_text(ds, "PhotometricInterpretation") or "").upper()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedImageError(
            f"{name}: colour or non-grayscale image (SamplesPerPixel={samples}, "
            f"PhotometricInterpretation={photometric or 'missing'}); only MONOCHROME1/2 are supported"
        )
    if not _int(ds, "Rows") or not _int(ds, "Columns"):
        raise MediaError("bad_header", f"{name}: Rows/Columns missing or zero")
    tsyntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
    if tsyntax is None:
        raise MediaError("bad_header", f"{name}: file meta has no TransferSyntaxUID")
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError as exc:
        raise UnsupportedTransferSyntaxError(
            f"{name}: no pixel decoder for {tsyntax.name} ({tsyntax})"
        ) from exc
    if not decoder.is_available:
        raise UnsupportedTransferSyntaxError(
            f"{name}: {tsyntax.name} ({tsyntax}) needs a pixel plugin that is not installed "
            "(pylibjpeg-libjpeg / pylibjpeg-openjpeg / gdcm)"
        )


def _stored_pixels(ds: Dataset, name: str) -> np.ndarray:
    try:
        arr = ds.pixel_array
    except ValueError as exc:
        if "less than expected" in str(exc) or "truncat" in str(exc).lower():
            raise MediaError(
                "truncated", f"{name}: pixel data shorter than Rows x Columns x bits ({exc})"
            ) from exc
        raise MediaError("decode_failed", f"{name}: pixel decoding failed ({exc})") from exc
    except (RuntimeError, NotImplementedError) as exc:
        if "plugin" in str(exc).lower() or "decoder" in str(exc).lower():
            raise UnsupportedTransferSyntaxError(f"{name}: {exc}") from exc
        raise MediaError("decode_failed", f"{name}: pixel decoding failed ({exc})") from exc
    except Exception as exc:
        raise MediaError(
            "decode_failed", f"{name}: pixel decoding failed ({exc.__class__.__name__}: {exc})"
        ) from exc
    if arr.ndim != 2:
        raise UnsupportedImageError(f"{name}: decoded pixel array has shape {arr.shape}, expected 2D")
    # pydicom 3 already drops bits above BitsStored (legacy overlays) and sign-extends signed data.
    return arr


def _window_values(ds: Dataset) -> tuple[float, float] | None:
    """First (default) window center/width, or None when absent or unusable."""
    try:
        center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
        if center in (None, "") or width in (None, ""):
            return None
        if isinstance(center, MultiValue):
            center = center[0]
        if isinstance(width, MultiValue):
            width = width[0]
        c, w = float(center), float(width)
    except Exception:
        return None
    if not (math.isfinite(c) and math.isfinite(w)):
        return None
    func = (_text(ds, "VOILUTFunction") or "LINEAR").upper()
    if (func == "LINEAR" and w < 1) or w <= 0:
        return None
    return c, w


def _has_voi_lut(ds: Dataset) -> bool:
    try:
        seq = ds.get("VOILUTSequence")
        return bool(seq) and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None
    except Exception:
        return False


def _window_output_range(ds: Dataset) -> tuple[float, float]:
    """The [y_min, y_max] pydicom's windowing maps onto (mirrors apply_windowing)."""
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        y_min, y_max = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.get("PixelRepresentation", 0)) == 0:
        y_min, y_max = 0.0, float(2**bits - 1)
    else:
        y_min, y_max = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        y_min, y_max = y_min * float(slope) + float(intercept), y_max * float(slope) + float(intercept)
    return y_min, y_max


def _fast_linear_window(stored: np.ndarray, ds: Dataset, window: tuple[float, float] | None) -> np.ndarray | None:
    """Rescale + LINEAR window in float32, for the common radiograph case; None when not applicable.

    Same mapping as pydicom's ``apply_modality_lut`` + ``apply_windowing`` (DICOM PS3.3 C.11.2.1.2.1:
    values at or below ``c - 0.5 - (w - 1) / 2`` go to y_min, above ``c - 0.5 + (w - 1) / 2`` to y_max,
    linear in between), but in float32 on one buffer instead of several float64 passes: decoding a
    2-3k px radiograph spends most of its time there. Anything unusual (LUT sequences, SIGMOID or
    LINEAR_EXACT functions, width <= 1) goes through pydicom.
    """
    if window is None or ds.get("ModalityLUTSequence") or _has_voi_lut(ds):
        return None
    if (_text(ds, "VOILUTFunction") or "LINEAR").upper() != "LINEAR":
        return None
    center, width = window
    if width <= 1:
        return None
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    y_min, y_max = _window_output_range(ds)
    x = stored.astype(np.float32)
    if (slope, intercept) != (1.0, 0.0):
        x *= np.float32(slope)
        x += np.float32(intercept)
    # ((x - (c - 0.5)) / (w - 1) + 0.5), clipped to [0, 1], scaled to the output range
    x -= np.float32(center - 0.5 - (width - 1) / 2)
    x *= np.float32(1.0 / (width - 1))
    np.clip(x, 0.0, 1.0, out=x)
    x *= np.float32(y_max - y_min)
    x += np.float32(y_min)
    return x


def _fmt(value: float) -> str:
    return f"{value:g}"


def decode_dicom(
    source: Source,
    *,
    name: str | None = None,
    fallback: Literal["minmax", "percentile"] = "minmax",
) -> DecodedImage:
    """Decode a single-frame grayscale DICOM into display orientation (bright = dense).

    Steps: stored pixels -> ``apply_modality_lut`` -> ``apply_voi_lut`` (the file's VOI LUT, else
    its first window) -> invert MONOCHROME1. ``lo``/``hi`` are the VOI output range. When the file has
    no usable VOI information: unsigned <=8-bit data without a modality transform keeps its nominal
    range 0..2**bits-1 (already display data); otherwise ``fallback="minmax"`` (default) uses the
    image's own min..max, which loses nothing; ``"percentile"`` uses the 0.5th..99.5th percentiles,
    better contrast when collimator edges or burned-in text dominate, at the price of clipping the
    extremes. ``name`` labels bytes input in error messages.
    """
    label = _name(source, name)
    data = _load_bytes(source, label)
    ds = _read_dataset(io.BytesIO(data), label, stop_before_pixels=False)
    _check_supported(ds, data, label)
    meta = _header_meta(ds)
    identifiers = _identifiers(ds)
    stored = _stored_pixels(ds, label)
    rows, columns = stored.shape
    if (meta["rows"], meta["columns"]) != (rows, columns):
        meta["rows"], meta["columns"] = rows, columns

    steps: list[str] = []
    window = _window_values(ds)
    fast = _fast_linear_window(stored, ds, window)
    try:
        values = stored if fast is not None else apply_modality_lut(stored, ds)
    except Exception as exc:
        raise MediaError("decode_failed", f"{label}: modality LUT failed ({exc})") from exc
    if ds.get("ModalityLUTSequence"):
        steps.append("modality_lut(lut)")
    elif ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        if (slope, intercept) != (1.0, 0.0):
            steps.append(f"modality_lut(slope={_fmt(slope)},intercept={_fmt(intercept)})")

    try:
        if fast is not None:
            out = fast
            lo, hi = _window_output_range(ds)
            steps.append(f"voi_window(c={_fmt(window[0])},w={_fmt(window[1])})")
        elif _has_voi_lut(ds):
            int_values = values if values.dtype.kind in "iu" else np.rint(values).astype(np.int64)
            out = apply_voi_lut(int_values, ds, index=0, prefer_lut=True)
            descriptor = ds.VOILUTSequence[0].LUTDescriptor
            first, entries = int(descriptor[1]), int(descriptor[0]) or 2**16
            # The LUT's own output range (not the nominal bit depth, which real files get wrong).
            probe = apply_voi(np.arange(first, first + entries, dtype=np.int64), ds, index=0)
            lo, hi = float(probe.min()), float(probe.max())
            steps.append("voi_lut")
        elif window is not None:
            out = apply_voi_lut(values, ds, index=0, prefer_lut=False)
            lo, hi = _window_output_range(ds)
            func = (_text(ds, "VOILUTFunction") or "LINEAR").upper()
            kind = "voi_window" if func == "LINEAR" else f"voi_window_{func.lower()}"
            steps.append(f"{kind}(c={_fmt(window[0])},w={_fmt(window[1])})")
        else:
            out = values
            bits = meta["bits_stored"] or 0
            if 0 < bits <= 8 and not steps and out.dtype.kind == "u":
                # 8-bit files without VOI are already display data (SIIM): keep their nominal range so
                # the values round-trip exactly into an 8-bit PNG instead of being stretched.
                lo, hi = 0.0, float(2**bits - 1)
                steps.append(f"nominal(0..{2**bits - 1})")
            elif fallback == "percentile":
                lo, hi = (float(v) for v in np.percentile(out, (0.5, 99.5)))
                steps.append(f"percentile(0.5-99.5:{_fmt(lo)}..{_fmt(hi)})")
            else:
                lo, hi = float(out.min()), float(out.max())
                steps.append(f"minmax({_fmt(lo)}..{_fmt(hi)})")
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(
            "decode_failed", f"{label}: VOI LUT / window failed ({exc.__class__.__name__}: {exc})"
        ) from exc

    pixels = np.asarray(out, dtype=np.float32)
    if lo > hi:
        # A negative rescale slope makes the window output run from y_min (high) down to y_max.
        pixels = np.float32(lo + hi) - pixels
        lo, hi = hi, lo
    if hi == lo:
        hi = lo + 1.0  # constant image: keep the mapping defined
    if meta["photometric"] == "MONOCHROME1":
        pixels = np.float32(lo + hi) - pixels
        steps.append("invert_monochrome1")
    if not np.isfinite(pixels).all():
        raise MediaError("decode_failed", f"{label}: decoded pixels contain NaN or infinity")
    return DecodedImage(
        pixels=np.ascontiguousarray(pixels),
        lo=float(lo),
        hi=float(hi),
        intensity="+".join(steps) if steps else "identity",
        meta=meta,
        identifiers=identifiers,
    )
