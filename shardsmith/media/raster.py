"""PNG/JPEG reading and the deterministic PNG encoder used for every stored image.

OpenCV does the decode, resize and encode: it is several times faster than Pillow for 16-bit data
and, with fixed parameters, writes the same bytes for the same array (no timestamps, no text
chunks), which the byte-identical release guarantee depends on.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from shardsmith.media.dicom import META_KEYS, DecodedImage, MediaError

__all__ = ["EncodedImage", "PassThroughImage", "read_raster", "encode_png", "decode_png", "pass_through_png",
           "thumbnail", "thumbnail_bytes", "PNG_COMPRESSION", "pixel_spread", "BLANK_SPREAD_LEVELS"]

# zlib level 3: ~the size of level 6 on radiographs at a third of the time (hot path).
PNG_COMPRESSION = 3
# 8-bit radiographs: zlib's run-length strategy on top of PNG's row filters is both faster (~30%) and
# smaller (~15%) than the default strategy on real NIH/SIIM images (their filtered rows are runs of
# near-equal residues, where LZ77 matching finds little); 16-bit keeps the default, which RLE loses
# to on size. Bench numbers in bench/RESULTS.md. Fixed parameters keep output byte-deterministic.
_PNG_PARAMS = {
    8: [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE],
    16: [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION, cv2.IMWRITE_PNG_STRATEGY,
         cv2.IMWRITE_PNG_STRATEGY_DEFAULT],
}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"


@dataclass
class EncodedImage:
    """A stored PNG plus the geometry needed to map native coordinates onto it.

    ``scale_y``/``scale_x`` are stored/native: multiply a native box by them to get stored pixels.
    """

    png: bytes
    height: int
    width: int
    scale_y: float
    scale_x: float
    native_height: int
    native_width: int
    # The stored pixels themselves (the array the PNG encodes): the perceptual fingerprint is taken
    # from them inside the records step, so nothing is decoded twice.
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)
    # What ``png`` holds: a PNG, or a JPEG stored as it came (``media.jpeg``); records carry it.
    media_type: str = "image/png"


def _load(source: str | Path | bytes | bytearray | memoryview, data: bytes | None = None) -> tuple[bytes, str]:
    """(bytes, name for messages) of ``source``; ``data``: the file's bytes already read by the
    caller (who hashed them), so the file is not read twice."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "<bytes>"
    elif data is not None:
        name = str(source)
    else:
        name = str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise MediaError(
                "unreadable", f"{name}: cannot read file ({exc.__class__.__name__}: {exc})"
            ) from exc
    if not data:
        raise MediaError("empty_file", f"{name}: file is empty (0 bytes)")
    return data, name


def _imdecode(data: bytes, name: str) -> np.ndarray:
    if data.startswith(_PNG_SIGNATURE):
        # libpng errors out on a cut file, but check the end marker so the reason is precise.
        if _PNG_IEND not in data[-4096:]:
            raise MediaError("truncated", f"{name}: PNG has no IEND chunk (file cut short)")
    elif data.startswith(_JPEG_SOI):
        # libjpeg "decodes" a cut JPEG by padding it with grey: only the EOI marker tells.
        if _JPEG_EOI not in data[-4096:]:
            raise MediaError("truncated", f"{name}: JPEG has no EOI marker (file cut short)")
    else:
        raise MediaError("unsupported_format", f"{name}: not a PNG or JPEG file (unknown signature)")
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise MediaError("decode_failed", f"{name}: image data is corrupt (OpenCV could not decode it)")
    return arr


def read_raster(source: str | Path | bytes | bytearray | memoryview, data: bytes | None = None) -> DecodedImage:
    """Read a PNG/JPEG as a 2D grayscale DecodedImage (lo/hi = the full range of its bit depth);
    ``data``: the bytes of the file ``source`` names, when the caller has read them.

    Colour or grey+alpha images keep the first channel in RGB order (R), as TorchXRayVision does
    for the few RGBA NIH PNGs; for grayscale stored as colour all channels are equal anyway.
    """
    data, name = _load(source, data)
    arr = _imdecode(data, name)
    if arr.ndim == 3:
        # OpenCV returns BGR(A); channel 2 is R, i.e. channel 0 of the RGB(A) array.
        arr = arr[:, :, 2] if arr.shape[2] >= 3 else arr[:, :, 0]
    if arr.ndim != 2 or arr.size == 0:
        raise MediaError("unsupported_image", f"{name}: decoded array has shape {arr.shape}, expected 2D")
    if arr.dtype == np.uint8:
        lo, hi, bits, intensity = 0.0, 255.0, 8, "raster_8bit"
    elif arr.dtype == np.uint16:
        lo, hi, bits, intensity = 0.0, 65535.0, 16, "raster_16bit"
    else:
        raise MediaError("unsupported_image", f"{name}: pixel type {arr.dtype} is not 8- or 16-bit unsigned")
    meta = dict.fromkeys(META_KEYS)
    meta.update(
        photometric="MONOCHROME2", bits_stored=bits, rows=int(arr.shape[0]), columns=int(arr.shape[1])
    )
    return DecodedImage(
        pixels=arr.astype(np.float32),
        lo=lo,
        hi=hi,
        intensity=intensity,
        meta=meta,
        identifiers={},
    )


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def target_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """Stored (height, width): the native size, or scaled so the longest side equals ``max_side``."""
    if max_side <= 0 or max(height, width) <= max_side:
        return height, width
    factor = max_side / max(height, width)
    return max(1, _round_half_up(height * factor)), max(1, _round_half_up(width * factor))


def encode_png(img: DecodedImage, max_side: int, bit_depth: int) -> EncodedImage:
    """Map [lo, hi] linearly onto [0, 2**bit_depth - 1] (clipped), downsize if needed, encode PNG.

    Resizing uses area interpolation on the float image before quantisation (one rounding step),
    only when the longest side exceeds ``max_side``; ``max_side=0`` keeps the native size. Sizes
    are rounded half-up per axis, so ``scale_y`` and ``scale_x`` can differ slightly.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if max_side < 0:
        raise ValueError(f"max_side must be >= 0, got {max_side}")
    pixels = img.pixels
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"encode_png needs a non-empty 2D image, got shape {pixels.shape}")
    if not (math.isfinite(img.lo) and math.isfinite(img.hi)) or img.hi <= img.lo:
        raise ValueError(f"invalid display range lo={img.lo}, hi={img.hi}")
    native_h, native_w = int(pixels.shape[0]), int(pixels.shape[1])
    height, width = target_size(native_h, native_w, max_side)
    work = pixels if pixels.dtype == np.float32 else pixels.astype(np.float32)
    if (height, width) != (native_h, native_w):
        work = cv2.resize(work, (width, height), interpolation=cv2.INTER_AREA)
    top = float(2**bit_depth - 1)
    scale = top / (img.hi - img.lo)
    # (x - lo) * scale + 0.5, clipped, then truncated: round-half-up without a temporary per step.
    mapped = cv2.addWeighted(work, scale, work, 0.0, 0.5 - img.lo * scale)
    np.clip(mapped, 0.0, top + 0.49, out=mapped)
    out = mapped.astype(np.uint8 if bit_depth == 8 else np.uint16)
    ok, buf = cv2.imencode(".png", out, _PNG_PARAMS[bit_depth])
    if not ok:
        raise MediaError("encode_failed", f"PNG encoding failed for a {height}x{width} image")
    return EncodedImage(
        png=buf.tobytes(),
        height=height,
        width=width,
        scale_y=height / native_h,
        scale_x=width / native_w,
        native_height=native_h,
        native_width=native_w,
        pixels=out,
    )


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes to the stored array (uint8 or uint16, channels untouched) for loaders/tests."""
    if not data:
        raise MediaError("empty_file", "<bytes>: PNG data is empty")
    if not bytes(data[:8]) == _PNG_SIGNATURE:
        raise MediaError("unsupported_format", "<bytes>: not PNG data (bad signature)")
    return _imdecode(bytes(data), "<bytes>")


# --------------------------------------------------------------------------- pass-through
# A PNG that already is what encode_png would write (grayscale, the configured bit depth, no side
# over max_side) is stored as it is: its chunks are checked and copied, the pixels never decoded.
# Only the chunks that carry the image are kept (IHDR, IDAT, IEND): text and time chunks could
# carry identifiers or make the bytes depend on when the file was written.
_PNG_KEEP = {b"IHDR", b"IDAT", b"IEND"}
_PNG_GREY = 0  # IHDR colour type: greyscale without alpha
# Adam7 passes (x0, y0, dx, dy), PNG spec 8.2: an interlaced image's scanlines come pass by pass.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_INTERLACE_PASSES = {0: ((0, 0, 1, 1),), 1: _ADAM7}  # IHDR interlace method -> passes
_PNG_FILTER_TYPES = 5  # a scanline starts with its filter type, 0..4 (None, Sub, Up, Average, Paeth)
# cv2 reduced decodes: (factor, flag); libpng/libjpeg scale while decoding (JPEG in the DCT domain).
_REDUCED = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
            (2, cv2.IMREAD_REDUCED_GRAYSCALE_2), (1, cv2.IMREAD_GRAYSCALE))


@dataclass
class PassThroughImage:
    """A conforming PNG stored byte for byte (ancillary chunks dropped), with what a record needs
    from a decode: ``encoded`` (the stored image and its geometry, scale 1), ``meta``,
    ``identifiers`` and ``intensity``; ``thumbnail`` decodes a small copy on demand."""

    encoded: EncodedImage
    bit_depth: int
    meta: dict
    identifiers: dict
    intensity: str

    def thumbnail(self, max_side: int = 64) -> np.ndarray:
        """A uint8 greyscale copy no larger than about ``2 * max_side`` (reduced decode, no full-size
        array for JPEG; for PNG libpng still inflates every row but never holds the full image
        float), then area-resized to ``max_side``: enough for a perceptual fingerprint."""
        enc = self.encoded
        return thumbnail_bytes(enc.png, max_side, longest=max(enc.height, enc.width))


def _png_longest_side(data: bytes) -> int | None:
    """The longer side from a PNG's IHDR chunk (None for anything else)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return max(int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))


def thumbnail_bytes(data: bytes, max_side: int = 64, longest: int | None = None) -> np.ndarray:
    """Small uint8 greyscale copy of PNG/JPEG bytes via OpenCV's reduced decode. ``longest`` (the
    image's longer side, read from a PNG's header when not given) skips reductions that would come
    out too small: a JPEG, whose size the caller knows, is decoded once."""
    side = max(1, max_side)
    buf = np.frombuffer(data, dtype=np.uint8)
    arr = None
    longest = longest or _png_longest_side(data)
    for factor, flag in _REDUCED:
        # A reduction that certainly comes out under ``side`` (its size rounded up, with a pixel to
        # spare) is not decoded: a small PNG used to be decoded four times (1/8, 1/4, 1/2, whole).
        if factor > 1 and longest is not None and -(-longest // factor) < side - 1:
            continue
        arr = cv2.imdecode(buf, flag)
        if arr is None:
            raise MediaError("decode_failed", "<bytes>: image data is corrupt (OpenCV could not decode it)")
        if factor == 1 or max(arr.shape[:2]) >= side:
            break
    if arr.dtype != np.uint8:
        arr = (arr >> 8).astype(np.uint8)
    h, w = arr.shape[:2]
    if max(h, w) > side:
        th, tw = target_size(h, w, side)
        arr = cv2.resize(arr, (tw, th), interpolation=cv2.INTER_AREA)
    return arr


def thumbnail(img: DecodedImage | PassThroughImage, max_side: int = 64) -> np.ndarray:
    """The small uint8 copy of a decoded or passed-through image, the same way for both: what a
    per-record perceptual fingerprint is computed from."""
    if isinstance(img, PassThroughImage):
        return img.thumbnail(max_side)
    h, w = img.pixels.shape
    th, tw = target_size(h, w, max_side)
    small = cv2.resize(img.pixels, (tw, th), interpolation=cv2.INTER_AREA) if (th, tw) != (h, w) else img.pixels
    scale = 255.0 / (img.hi - img.lo)
    return np.clip((small - img.lo) * scale + 0.5, 0, 255.49).astype(np.uint8)


def _scanlines(width: int, height: int, depth: int, interlace: int) -> list[tuple[int, int]]:
    """(rows, bytes per row without the filter byte) of each pass that holds pixels (greyscale)."""
    out = []
    for x0, y0, dx, dy in _INTERLACE_PASSES[interlace]:
        cols, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if cols > 0 and rows > 0:
            out.append((rows, -(-cols * depth // 8)))
    return out


class _IdatInflater:
    """Inflates the IDAT stream chunk by chunk, never to more than ``expected + 1`` bytes (a zlib bomb
    stops there), so a body whose chunk CRCs are right but whose deflate data is broken is caught
    here, before the file is stored as it is (the CRCs only prove the bytes were written as sent)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.inflater = zlib.decompressobj()
        self.parts: list[bytes] = []
        self.size = 0
        self.trailing = False  # IDAT bytes after the end of the deflate stream

    def feed(self, data: bytes, name: str) -> None:
        if self.inflater.eof:
            self.trailing = self.trailing or bool(data)
            return
        if self.size > self.expected:
            return
        try:
            out = self.inflater.decompress(data, self.expected + 1 - self.size)
        except zlib.error as exc:
            raise MediaError("decode_failed", f"{name}: PNG image data (IDAT) is corrupt ({exc})") from exc
        self.parts.append(out)
        self.size += len(out)

    def rows(self, name: str) -> bytes | None:
        """The inflated scanlines; None when bytes follow the complete deflate stream (libpng ignores
        them, so the file is decoded and re-encoded rather than stored with them)."""
        if self.size > self.expected:  # a damaged stream often inflates past the header's size first
            raise MediaError("decode_failed", f"{name}: PNG image data (IDAT) inflates to more than the "
                                              f"{self.expected} bytes its header needs (a damaged deflate stream)")
        if not self.inflater.eof or self.size < self.expected:
            raise MediaError("decode_failed", f"{name}: PNG image data (IDAT) ends early: {self.size} of "
                                              f"{self.expected} bytes inflate (a cut or damaged deflate stream)")
        if self.inflater.unused_data or self.trailing:
            return None
        return b"".join(self.parts)


def _check_filters(raw: bytes, passes: list[tuple[int, int]], name: str) -> None:
    """Every scanline's filter type is 0..4: libpng refuses any other ("bad adaptive filter value")."""
    buf, pos = np.frombuffer(raw, dtype=np.uint8), 0
    for rows, rowbytes in passes:
        stride = rowbytes + 1
        if int(buf[pos:pos + rows * stride:stride].max()) >= _PNG_FILTER_TYPES:
            raise MediaError("decode_failed", f"{name}: PNG image data (IDAT) has an invalid scanline filter type")
        pos += rows * stride


# --------------------------------------------------------------------------- blank frames
# A (near-)constant stored image shows nothing, and its fingerprint is the same whatever its size,
# source or patient (the rank thumbnail of equal values is their position): identity would call all
# such frames one radiograph. The records step quarantines them (reason ``blank_image``).
BLANK_SIDE = 64  # the spread is measured on an area-reduced copy, longer side at most this
BLANK_PERCENTILES = (2.0, 98.0)  # a marker or label under 2% of the frame does not make it an image
BLANK_SPREAD_LEVELS = 8.0  # below this robust range, in levels of 255, a stored image is blank


def pixel_spread(pixels: np.ndarray) -> float:
    """Robust dynamic range of stored pixels, in levels of 255 whatever their depth: the 98th minus
    the 2nd percentile of an area-reduced copy (longer side <= ``BLANK_SIDE``), so detector noise
    averages out and a small marker on an empty frame is ignored.

    Measured (``tests/media/test_blank.py``): the real samples in ``../shared/real/cxr-images`` (two
    NIH PNGs, the SIIM DICOM and its MONOCHROME1 variant) spread 216-232 levels at 8 and 16 bits, the
    29 demo radiographs (every 2-D source) 202-228; a constant frame 0, a constant frame with Gaussian
    noise sigma 3 under 1. ``BLANK_SPREAD_LEVELS`` (8) is 25x below the lowest of them."""
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"pixel_spread needs a non-empty 2D array, got shape {pixels.shape}")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"pixel_spread needs uint8 or uint16 pixels, got {pixels.dtype}")
    h, w = pixels.shape
    th, tw = target_size(h, w, BLANK_SIDE)
    small = cv2.resize(pixels, (tw, th), interpolation=cv2.INTER_AREA) if (th, tw) != (h, w) else pixels
    lo, hi = np.percentile(small, BLANK_PERCENTILES)
    return float(hi - lo) * 255.0 / float(np.iinfo(pixels.dtype).max)


def pass_through_png(path: str | Path, max_side: int, bit_depth: int,
                     data: bytes | None = None) -> PassThroughImage | None:
    """The PNG at ``path`` as it would be stored, when it already conforms (greyscale, ``bit_depth``
    bits, longest side within ``max_side``); None when it must be decoded and re-encoded (not a
    PNG, colour, another depth, too large, bytes after the image data's deflate stream). A cut or corrupt
    chunk structure raises MediaError, and so does image data that does not inflate to exactly the
    scanlines the header promises (height * (1 + row bytes) per pass) with valid filter types.
    ``data``: the file's bytes, when the caller has read them."""
    if Path(path).suffix.lower() != ".png":
        return None
    data, name = _load(path, data)
    if not data.startswith(_PNG_SIGNATURE):
        return None  # read_raster gives the precise reason
    out = bytearray(_PNG_SIGNATURE)
    pos, n, header = 8, len(data), None
    passes: list[tuple[int, int]] = []
    inflater = _IdatInflater(0)
    while pos + 12 <= n:
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > n:
            raise MediaError("truncated", f"{name}: PNG chunk {kind!r} runs past the end of the file")
        if header is None:
            if kind != b"IHDR" or length != 13:
                raise MediaError("decode_failed", f"{name}: PNG does not start with an IHDR chunk")
            header = data[pos + 8:pos + 21]
            width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
            depth, colour = header[8], header[9]
            if colour != _PNG_GREY or depth != bit_depth or width == 0 or height == 0:
                return None
            if max_side > 0 and max(width, height) > max_side:
                return None
            if header[10] != 0 or header[11] != 0 or header[12] not in _INTERLACE_PASSES:
                raise MediaError("decode_failed", f"{name}: PNG header has an unknown compression, filter or "
                                                  f"interlace method ({header[10]}, {header[11]}, {header[12]})")
            passes = _scanlines(width, height, depth, header[12])
            inflater = _IdatInflater(sum(rows * (rowbytes + 1) for rows, rowbytes in passes))
        if not kind.isalpha() or (kind not in _PNG_KEEP and kind[0] & 0x20 == 0 and kind != b"PLTE"):
            # an unknown *critical* chunk (upper-case first letter) or a damaged type: a decoder
            # must refuse the file, so pass-through must too
            raise MediaError("decode_failed", f"{name}: PNG has an invalid or unknown critical chunk {kind!r}")
        if kind in _PNG_KEEP:
            # Each kept chunk's CRC is checked (zlib, C speed): a damaged file must be quarantined as
            # a decode would have, not stored as it is.
            crc = int.from_bytes(data[end - 4:end], "big")
            if zlib.crc32(data[pos + 4:end - 4]) != crc:
                raise MediaError("decode_failed", f"{name}: PNG chunk {kind.decode(errors='replace')!r} is "
                                                  "corrupt (CRC mismatch)")
            out += data[pos:end]
            if kind == b"IDAT":
                inflater.feed(data[pos + 8:end - 4], name)
        pos = end
        if kind == b"IEND":
            break
    else:
        raise MediaError("truncated", f"{name}: PNG has no IEND chunk (file cut short)")
    if header is None:
        raise MediaError("truncated", f"{name}: PNG has no IHDR chunk")
    if b"IDAT" not in out:
        raise MediaError("decode_failed", f"{name}: PNG has no image data (IDAT) chunk")
    raw = inflater.rows(name)  # a real inflate: a broken body is refused as a decode would refuse it
    if raw is None:
        return None
    _check_filters(raw, passes, name)
    meta = dict.fromkeys(META_KEYS)
    meta.update(photometric="MONOCHROME2", bits_stored=bit_depth, rows=height, columns=width)
    enc = EncodedImage(png=bytes(out), height=height, width=width, scale_y=1.0, scale_x=1.0,
                       native_height=height, native_width=width)
    return PassThroughImage(enc, bit_depth, meta, {}, f"raster_{bit_depth}bit")
