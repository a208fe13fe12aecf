"""Perceptual fingerprint of a stored radiograph: 64-bit DCT hash, 32x32 rank thumbnail, exact key.

Computed from pixels that are already decoded (the records step has them in memory before PNG
encoding), so fingerprinting never decodes an image a second time.

Why not ``imagehash``: its ``phash`` is the same idea (32x32 thumbnail -> DCT -> 8x8 low
frequencies -> compare to the median), but it takes PIL images (a 16-bit radiograph would first have
to be squeezed into 8 bits by hand: PIL's ``convert("L")`` clips ``I;16`` rather than scaling it),
resizes with PIL (slower than OpenCV on 1024-px arrays), and offers none of the steps that make a
hash survive a re-release: a centre crop (borders, small crops), and rank normalisation (windowing,
contrast and bit-depth changes). With those steps written here, the hash itself is four lines on
OpenCV's DCT, so the dependency would buy nothing.

Steps, all on small arrays after one area downsample by an integer factor to ~128 px:
1. centre crop ``CROP_FRACTION`` of each side (sub-pixel): small borders and crops of a few percent
   then move the content relative to the window by about a thumbnail pixel, not by a border;
2. area-resize to 32x32 float;
3. replace values by their ranks (histogram equalisation of the thumbnail): any monotonic
   intensity change (window, gamma, 8 vs 16 bit, MONOCHROME handling already done by the decoder)
   leaves the ranks unchanged, up to the averaging done by resizing;
4. DCT; bit i = the i-th lowest-frequency AC coefficient is above the median of the 64 used
   (classic pHash, without the DC term that ranks make constant);
5. thumbnail: the 32x32 rank image itself, scaled to 0..255 uint8 (1 KiB). Grouping compares two
   thumbnails by correlation under small scale/shift alignments (``groups.verify_pairs``): at 16x16
   a 2% crop and two different chest films with the same layout were not separable.

Limits (measured on generated films, tests/identity): re-encoding, resizing, windowing, gamma and
8/16-bit change the hash by 0-4 bits; a 2% crop per side 2-10 bits (95% <= 8); a 3% one-sided crop
(a shift) 8 on average, up to 16: the DCT hash is shift-sensitive, so such copies are found only when
their hashes land within the search radius. Inverted copies (a MONOCHROME1 tag on MONOCHROME2 data)
are not matched. Cost: ~1 ms per 1024-px 8-bit image (0.6 ms of it the SHA-256), ~3-4% of the
records step's decode + PNG encode (bench/dupes.py --records-step).

The exact key is the SHA-256 of the array's dtype, shape and bytes: identical stored pixels from two
sources (e.g. a PNG copied under another name) are exact duplicates whatever their containers.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "Fingerprint",
    "FingerprintError",
    "fingerprint_pixels",
    "FINGERPRINT_VERSION",
    "FINGERPRINT_SIZE",
    "THUMB_SIDE",
    "CROP_FRACTION",
    "BLANK",
]

FINGERPRINT_VERSION = 1
HASH_SIDE = 32  # DCT input side (pHash's 32x32)
THUMB_SIDE = 32  # verification thumbnail: the 32x32 rank image, 1 KiB per record
CROP_FRACTION = 0.06  # cut from each side before hashing: borders and crops up to ~3% stay inside
_PRE_SIDE = 128  # first downsample in the native dtype (cheap), then float for the rest

# Layout of to_bytes(): magic, version, thumb side, phash (big-endian uint64), sha256, thumbnail.
_MAGIC = b"SF"
_HEADER = struct.Struct(">2sBBQ32s")
FINGERPRINT_SIZE = _HEADER.size + THUMB_SIDE * THUMB_SIDE


def _ac_order(count: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of the ``count`` lowest-frequency AC coefficients, in zigzag order (by u+v, then u)."""
    cells = sorted((u + v, u, v) for u in range(HASH_SIDE) for v in range(HASH_SIDE) if u + v > 0)[:count]
    return np.array([c[1] for c in cells]), np.array([c[2] for c in cells])


_AC_U, _AC_V = _ac_order()


class FingerprintError(ValueError):
    """The array cannot be fingerprinted (not 2D, empty, or not 8/16-bit unsigned)."""


@dataclass(frozen=True)
class Fingerprint:
    """One image's identity: ``phash`` (uint64 as int), ``thumb`` (THUMB_SIDE**2 bytes), ``exact`` (sha256)."""


    phash: int
    thumb: bytes
    exact: bytes

    def to_bytes(self) -> bytes:
        """The records ``fingerprint`` column value (fixed size FINGERPRINT_SIZE)."""
        return _HEADER.pack(_MAGIC, FINGERPRINT_VERSION, THUMB_SIDE, self.phash, self.exact) + self.thumb

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        if len(data) != FINGERPRINT_SIZE:
            raise FingerprintError(f"fingerprint has {len(data)} bytes, expected {FINGERPRINT_SIZE}")
        magic, version, side, phash, exact = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != FINGERPRINT_VERSION or side != THUMB_SIDE:
            raise FingerprintError(f"unknown fingerprint layout (magic={magic!r}, version={version}, side={side})")
        return cls(phash=phash, thumb=bytes(data[_HEADER.size:]), exact=exact)

    def thumb_array(self) -> np.ndarray:
        return np.frombuffer(self.thumb, dtype=np.uint8).reshape(THUMB_SIDE, THUMB_SIDE)


def exact_key(arr: np.ndarray) -> bytes:
    """SHA-256 over dtype, shape and pixel bytes (C order)."""
    h = hashlib.sha256(f"{arr.dtype.str}|{arr.shape[0]}x{arr.shape[1]}|".encode())
    h.update(np.ascontiguousarray(arr).data)
    return h.digest()


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 as float32 (ties broken by position: thumbnails are area means, ties are rare)."""
    flat = values.ravel()
    out = np.empty(flat.size, dtype=np.float32)
    out[np.argsort(flat, kind="stable")] = np.arange(flat.size, dtype=np.float32)
    return out.reshape(values.shape)


def _hash_input(arr: np.ndarray) -> np.ndarray:
    """Centre crop, area-resized to HASH_SIDE x HASH_SIDE float32.

    Large images are first area-downsampled by an integer factor (OpenCV's fast path; cutting the
    few rows/columns that do not divide evenly, half on each side), then cropped and resized in float.
    """
    h, w = arr.shape
    k = max(1, min(h, w) // _PRE_SIDE)
    if k > 1:
        ch, cw = h - h % k, w - w % k
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        arr = cv2.resize(arr[y0:y0 + ch, x0:x0 + cw], (cw // k, ch // k), interpolation=cv2.INTER_AREA)
        h, w = arr.shape
    pre = arr.astype(np.float32)
    dy, dx = h * CROP_FRACTION, w * CROP_FRACTION
    if h - 2 * dy < 4 or w - 2 * dx < 4:  # tiny images: no crop
        dy = dx = 0.0
    # Sub-pixel crop: sample the crop window onto a 4x grid with bilinear weights, then area-reduce.
    side = HASH_SIDE * 4
    mx = np.array([[(w - 2 * dx) / side, 0, dx + 0.5 * (w - 2 * dx) / side - 0.5],
                   [0, (h - 2 * dy) / side, dy + 0.5 * (h - 2 * dy) / side - 0.5]], np.float32)
    grid = cv2.warpAffine(pre, mx, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(grid, (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA)


def _blank_fingerprint() -> Fingerprint:
    """The fingerprint every constant image gets, whatever its size, depth or value: equal values
    rank by position, so the thumbnail is the raster-order ramp and the hash is fixed (only the exact
    key differs with size and value). Grouping must never link on it (``groups``, issue 21)."""
    fp = fingerprint_pixels(np.zeros((HASH_SIDE, HASH_SIDE), np.uint8))
    return Fingerprint(phash=fp.phash, thumb=fp.thumb, exact=b"")


def fingerprint_pixels(arr: np.ndarray) -> Fingerprint:
    """Fingerprint a decoded 2D uint8/uint16 image (display orientation, any size).

    Pass the stored pixels (after windowing and resizing, before PNG encoding) so that the exact key
    means "same stored image".
    """
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.size == 0:
        raise FingerprintError(f"need a non-empty 2D array, got {getattr(arr, 'shape', type(arr))}")
    if arr.dtype not in (np.uint8, np.uint16):
        raise FingerprintError(f"need uint8 or uint16 pixels, got {arr.dtype}")
    exact = exact_key(arr)
    small = _hash_input(arr)
    ranked = _ranks(small)
    coeffs = cv2.dct(ranked - ranked.mean())[_AC_U, _AC_V]
    bits = coeffs > np.median(coeffs)
    phash = int.from_bytes(np.packbits(bits).tobytes(), "big")
    thumb = (ranked * (255.0 / (HASH_SIDE * HASH_SIDE - 1)) + 0.5).astype(np.uint8)
    return Fingerprint(phash=phash, thumb=thumb.tobytes(), exact=exact)


BLANK = _blank_fingerprint()  # phash and thumb of any constant image (``exact`` left empty)
