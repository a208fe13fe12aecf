"""Mask and box geometry: SIIM-ACR RLE, COCO RLE, polygons, box conversions.

Masks are 2D bool arrays indexed ``mask[y, x]`` in image orientation. Boxes are absolute corner
pixels ``[x_min, y_min, x_max, y_max]`` with exclusive maxima (a one-pixel box at (x, y) is
``[x, y, x+1, y+1]``), matching the record schema's ``box_xyxy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from shardsmith.errors import ShardsmithError

__all__ = [
    "MaskError",
    "siim_rle_decode",
    "siim_rle_encode",
    "coco_rle_encode",
    "coco_rle_decode",
    "coco_rle_area",
    "mask_bbox_xyxy",
    "polygon_to_mask",
    "resize_mask",
    "scale_box_xyxy",
    "xywh_to_xyxy",
    "clip_box_xyxy",
    "box_inside",
    "box_to_mask",
    "box_to_coco_rle",
    "coco_rle_union",
    "coco_rle_bbox_xyxy",
]


class MaskError(ShardsmithError):
    """A label geometry is unusable; ``reason`` is a short machine code for quarantine tables."""


def _check_size(height: int, width: int) -> None:
    if int(height) <= 0 or int(width) <= 0:
        raise MaskError("bad_size", f"mask size must be positive, got {height}x{width}")


def _as_mask(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise MaskError("bad_shape", f"mask must be 2D, got shape {arr.shape}")
    return arr.astype(bool, copy=False)


# --------------------------------------------------------------------------- SIIM-ACR RLE


def siim_rle_decode(rle: str, height: int, width: int) -> np.ndarray:
    """Decode SIIM-ACR relative RLE into a bool mask[y, x].

    The string is (gap, length) pairs over a column-major buffer (flat index = x*H + y): the first
    gap is the absolute 0-based offset, later gaps count background pixels since the previous run.
    ``""``/``"-1"``/``None`` (any surrounding whitespace) is an empty mask. Runs past the image end raise
    ``rle_out_of_bounds``; odd counts, non-integers or negatives raise ``rle_malformed``.
    """
    _check_size(height, width)
    if rle is None:
        rle = ""
    if not isinstance(rle, str):
        raise MaskError("rle_malformed", f"SIIM RLE must be a string, got {type(rle).__name__}")
    text = rle.strip()
    n_pixels = height * width
    if text in ("", "-1"):
        return np.zeros((height, width), dtype=bool)
    tokens = text.split()
    if len(tokens) % 2:
        raise MaskError("rle_malformed", f"SIIM RLE has an odd number of values ({len(tokens)})")
    if not all(t.isdigit() and t.isascii() for t in tokens):
        bad = next(t for t in tokens if not (t.isdigit() and t.isascii()))
        raise MaskError("rle_malformed", f"SIIM RLE value {bad!r} is not a non-negative integer")
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except OverflowError as exc:
        raise MaskError("rle_malformed", "SIIM RLE value too large") from exc
    gaps, lengths = values[0::2], values[1::2]
    starts = np.cumsum(gaps) + np.cumsum(lengths) - lengths
    ends = starts + lengths
    if int(ends[-1]) > n_pixels:
        raise MaskError(
            "rle_out_of_bounds",
            f"SIIM RLE run ends at pixel {int(ends[-1])}, past the {height}x{width} image ({n_pixels} px)",
        )
    flat = np.zeros(n_pixels, dtype=bool)
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        flat[start:end] = True  # a few hundred runs per mask: slicing beats vectorised tricks
    return np.ascontiguousarray(flat.reshape((width, height)).T)


def siim_rle_encode(mask: np.ndarray) -> str:
    """Encode a bool mask[y, x] as SIIM-ACR relative column-major RLE; ``"-1"`` when empty."""
    arr = _as_mask(mask)
    flat = arr.T.ravel().astype(np.int8)  # column-major: x-major, y fastest
    edges = np.diff(np.concatenate(([0], flat, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    if starts.size == 0:
        return "-1"
    prev_ends = np.concatenate(([0], ends[:-1]))
    pairs = np.empty(starts.size * 2, dtype=np.int64)
    pairs[0::2] = starts - prev_ends
    pairs[1::2] = ends - starts
    return " ".join(map(str, pairs.tolist()))


# --------------------------------------------------------------------------- COCO RLE


def coco_rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE ``{"size": [h, w], "counts": str}`` (JSON/Parquet friendly)."""
    arr = _as_mask(mask)
    rle = coco_mask.encode(np.asfortranarray(arr.astype(np.uint8)))
    counts = rle["counts"]
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else str(counts),
    }


def _to_coco_native(rle: dict[str, Any]) -> dict[str, Any]:
    try:
        size = [int(rle["size"][0]), int(rle["size"][1])]
        counts = rle["counts"]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise MaskError("coco_rle_malformed", f"COCO RLE needs 'size' [h, w] and 'counts' ({exc})") from exc
    if size[0] < 0 or size[1] < 0:
        raise MaskError("coco_rle_malformed", f"COCO RLE size must be non-negative, got {size}")
    if isinstance(counts, str):
        return {"size": size, "counts": counts.encode("ascii")}
    if isinstance(counts, bytes):
        return {"size": size, "counts": counts}
    if isinstance(counts, (list, tuple)):
        # Uncompressed RLE (list of ints): check the total so pycocotools is not handed garbage.
        if (
            any((not isinstance(c, (int, np.integer))) or c < 0 for c in counts)
            or sum(counts) != size[0] * size[1]
        ):
            raise MaskError(
                "coco_rle_malformed", "uncompressed COCO RLE counts must be non-negative and sum to h*w"
            )
        return coco_mask.frPyObjects({"size": size, "counts": list(counts)}, size[0], size[1])
    raise MaskError("coco_rle_malformed", f"COCO RLE counts has unsupported type {type(counts).__name__}")


def coco_rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (compressed str/bytes or uncompressed list counts) into a bool mask[y, x]."""
    native = _to_coco_native(rle)
    try:
        decoded = coco_mask.decode(native)
    except Exception as exc:
        raise MaskError("coco_rle_malformed", f"COCO RLE could not be decoded ({exc})") from exc
    return np.ascontiguousarray(decoded.astype(bool))


def coco_rle_area(rle: dict[str, Any]) -> float:
    """Foreground pixel count of a COCO RLE, without decoding the mask."""
    return float(coco_mask.area(_to_coco_native(rle)))


def mask_bbox_xyxy(mask: np.ndarray) -> list[float] | None:
    """Tight box of the foreground as absolute corners, maxima exclusive; None for an empty mask."""
    arr = _as_mask(mask)
    cols = np.flatnonzero(arr.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(arr.any(axis=1))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


# --------------------------------------------------------------------------- polygons and resizing


def polygon_to_mask(points: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Fill one polygon given as [[x, y], ...] in the pixel space of (height, width).

    Vertices are rounded to the nearest pixel and the polygon is filled including its outline
    (OpenCV ``fillPoly``). Fewer than 3 vertices or non-finite values raise ``polygon_malformed``.
    """
    _check_size(height, width)
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MaskError("polygon_malformed", f"polygon points must be [[x, y], ...] numbers ({exc})") from exc
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 3:
        raise MaskError("polygon_malformed", f"polygon needs >= 3 [x, y] points, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise MaskError("polygon_malformed", "polygon has non-finite coordinates")
    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(canvas, [np.floor(pts + 0.5).astype(np.int32)], 1)
    return canvas.astype(bool)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize with pixel-centre alignment (``INTER_NEAREST_EXACT``)."""
    _check_size(height, width)
    arr = _as_mask(mask)
    if arr.shape == (height, width):
        return arr.copy()
    out = cv2.resize(arr.astype(np.uint8), (int(width), int(height)), interpolation=cv2.INTER_NEAREST_EXACT)
    return out.astype(bool)


# --------------------------------------------------------------------------- boxes


def scale_box_xyxy(box: Sequence[float], sx: float, sy: float) -> list[float]:
    """Scale corner box coordinates, e.g. native -> stored pixels with EncodedImage.scale_x/scale_y."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0 * sx, y0 * sy, x1 * sx, y1 * sy]


def xywh_to_xyxy(box: Sequence[float]) -> list[float]:
    """[x, y, w, h] (top-left plus size: NIH, RSNA, MS-CXR) -> [x_min, y_min, x_max, y_max]."""
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def clip_box_xyxy(box: Sequence[float], width: float, height: float) -> list[float]:
    """Clip corners into [0, width] x [0, height]; may return a degenerate box, check ``box_inside``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return [
        min(max(x0, 0.0), float(width)),
        min(max(y0, 0.0), float(height)),
        min(max(x1, 0.0), float(width)),
        min(max(y1, 0.0), float(height)),
    ]


def box_inside(box: Sequence[float], width: float, height: float, tol: float = 1e-6) -> bool:
    """True when the box has positive area and lies within the image (``tol`` absorbs float scaling)."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        return False
    if not all(np.isfinite([x0, y0, x1, y1])):
        return False
    return -tol <= x0 < x1 <= width + tol and -tol <= y0 < y1 <= height + tol


def _box_pixels(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """Column/row ranges [c0, c1) x [r0, r1) of the pixels whose centres lie inside a corner box."""
    x0, y0, x1, y1 = (float(v) for v in box)
    c0, c1 = max(int(np.ceil(x0 - 0.5)), 0), min(int(np.ceil(x1 - 0.5)), int(width))
    r0, r1 = max(int(np.ceil(y0 - 0.5)), 0), min(int(np.ceil(y1 - 0.5)), int(height))
    return c0, r0, max(c1, c0), max(r1, r0)


def box_to_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """Fill a corner box (maxima exclusive) as the pixels whose centres lie inside it, clipped to the image.

    Integer boxes fill exactly ``(x1 - x0) * (y1 - y0)`` pixels; fractional ones never grow by a pixel.
    """
    _check_size(height, width)
    c0, r0, c1, r1 = _box_pixels(box, height, width)
    out = np.zeros((int(height), int(width)), dtype=bool)
    out[r0:r1, c0:c1] = True
    return out


def _from_native(native: dict[str, Any]) -> dict[str, Any]:
    counts = native["counts"]
    return {"size": [int(native["size"][0]), int(native["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else str(counts)}


def box_to_coco_rle(box: Sequence[float], height: int, width: int) -> dict[str, Any]:
    """COCO RLE of ``box_to_mask(box, height, width)``, built without a dense mask."""
    _check_size(height, width)
    c0, r0, c1, r1 = _box_pixels(box, height, width)
    bbox = np.array([[c0, r0, c1 - c0, r1 - r0]], dtype=np.float64)
    return _from_native(coco_mask.frPyObjects(bbox, int(height), int(width))[0])


def coco_rle_union(rles: Sequence[dict[str, Any]], height: int, width: int) -> dict[str, Any]:
    """Pixelwise OR of COCO RLEs of one (height, width) image, merged run by run (no dense mask)."""
    _check_size(height, width)
    natives = [_to_coco_native(r) for r in rles]
    bad = [n["size"] for n in natives if list(n["size"]) != [int(height), int(width)]]
    if bad:
        raise MaskError("coco_rle_size", f"COCO RLE of size {bad[0]} in a union over {height}x{width}")
    if not natives:
        return coco_rle_encode(np.zeros((int(height), int(width)), dtype=bool))
    return _from_native(coco_mask.merge(natives, intersect=0) if len(natives) > 1 else natives[0])


def coco_rle_bbox_xyxy(rle: dict[str, Any]) -> list[float] | None:
    """Tight box of a COCO RLE's foreground (as ``mask_bbox_xyxy``) without decoding; None when empty."""
    native = _to_coco_native(rle)
    if coco_mask.area(native) == 0:
        return None
    x, y, w, h = (float(v) for v in coco_mask.toBbox(native))
    return [x, y, x + w, y + h]
