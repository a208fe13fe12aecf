"""JPEGs kept as they come: a conforming JPEG is stored byte for byte, never decoded and re-encoded.

A radiograph shipped as JPEG (CheXpert, MS-CXR / MIMIC-CXR-JPG, any JPEG source) already carries
its compression artefacts; re-encoding it as PNG made files 3-5x larger and cost a full decode and
an encode per image for no gain. The marker structure is walked here (C speed for the entropy-coded
data: one regular-expression search per scan), so a cut or malformed file is refused as a decode
would refuse it, and the pixels are only decoded reduced, in the DCT domain, for the fingerprint
(``PassThroughImage.thumbnail``).

Stored as is when greyscale (one component), 8-bit, a Huffman-coded frame (baseline, extended or
progressive: every decoder reads them) and within ``image.max_side``, and only for an 8-bit
release. Segments that may carry identifiers or capture details (EXIF/XMP ``APP1``, other
application segments, comments) are dropped, and so is anything after the end-of-image marker: a
JPEG without them (what a dataset's own converter writes: JFIF only) is published byte-identical.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from shardsmith.media.dicom import META_KEYS, MediaError

if TYPE_CHECKING:  # raster imports OpenCV; it is loaded when a JPEG is actually kept
    from shardsmith.media.raster import PassThroughImage

_SOI = b"\xff\xd8"
_EOI = 0xD9
_SOS = 0xDA
# Frames every JPEG decoder reads: baseline, extended sequential and progressive Huffman (SOF0-2).
_SOF_KEPT = {0xC0, 0xC1, 0xC2}
# Every other start-of-frame marker (lossless, hierarchical, arithmetic): decoded and re-encoded.
_SOF_OTHER = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Segments kept in a stored JPEG: tables, restart interval, JFIF (APP0) and Adobe (APP14, which says
# how colour is transformed); all other APPn and COM can hold identifiers, dates or device details.
_KEEP = {0xC4, 0xCC, 0xDB, 0xDD, 0xE0, 0xEE} | _SOF_KEPT
_STANDALONE = {0x01} | set(range(0xD0, 0xD8))  # TEM and RST0-7 carry no length
# The end of a scan's entropy-coded data: a marker other than a stuffed 0x00 or a restart marker.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

JPEG_MEDIA_TYPE = "image/jpeg"


def _walk(data: bytes, name: str) -> tuple[bytearray, tuple[int, int, int, int, int]]:
    """The kept segments and (marker, precision, height, width, components) of the frame header."""
    if not data.startswith(_SOI):
        raise MediaError("unsupported_format", f"{name}: not a JPEG file (no start-of-image marker)")
    out, pos, n, frame = bytearray(_SOI), 2, len(data), None
    while True:
        if pos + 2 > n:
            raise MediaError("truncated", f"{name}: JPEG has no end-of-image marker (file cut short)")
        if data[pos] != 0xFF:
            raise MediaError("decode_failed", f"{name}: JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == _EOI:
            out += data[pos:pos + 2]
            break
        if marker in _STANDALONE:
            out += data[pos:pos + 2]
            pos += 2
            continue
        if pos + 4 > n:
            raise MediaError("truncated", f"{name}: JPEG segment header runs past the end of the file")
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if end > n or end < pos + 4:
            raise MediaError("truncated", f"{name}: JPEG segment 0x{marker:02X} runs past the end of the file")
        if marker in _SOF_KEPT or marker in _SOF_OTHER:
            if end - pos < 10:
                raise MediaError("decode_failed", f"{name}: JPEG frame header is too short")
            frame = (marker, data[pos + 4], int.from_bytes(data[pos + 5:pos + 7], "big"),
                     int.from_bytes(data[pos + 7:pos + 9], "big"), data[pos + 9])
        if marker == _SOS:
            if frame is None:
                raise MediaError("decode_failed", f"{name}: JPEG scan before any frame header")
            hit = _SCAN_END.search(data, end)
            if hit is None:
                raise MediaError("truncated", f"{name}: JPEG has no end-of-image marker (file cut short)")
            out += data[pos:hit.start()]
            pos = hit.start()
            continue
        if marker in _KEEP:
            out += data[pos:end]
        pos = end
    if frame is None:
        raise MediaError("decode_failed", f"{name}: JPEG has no frame header")
    return out, frame


def pass_through_jpeg(path: str | Path, max_side: int, bit_depth: int,
                      data: bytes | None = None) -> PassThroughImage | None:
    """The JPEG at ``path`` as it is stored, when it conforms (see the module docstring); None when it
    must be decoded and re-encoded (not a ``.jpg``/``.jpeg``, colour, 12-bit, lossless or arithmetic,
    larger than ``max_side``, a 16-bit release). A cut or malformed marker structure raises MediaError.
    ``data``: the file's bytes, when the caller has read them."""
    from shardsmith.media.raster import EncodedImage, PassThroughImage, _load

    if Path(path).suffix.lower() not in (".jpg", ".jpeg") or bit_depth != 8:
        return None
    data, name = _load(path, data)
    if not data.startswith(_SOI):
        return None  # read_raster gives the precise reason
    out, (marker, precision, height, width, components) = _walk(data, name)
    if height == 0 or width == 0:
        raise MediaError("decode_failed", f"{name}: JPEG frame header gives a {width}x{height} image")
    if marker not in _SOF_KEPT or precision != 8 or components != 1:
        return None
    if max_side > 0 and max(width, height) > max_side:
        return None
    meta = dict.fromkeys(META_KEYS)
    meta.update(photometric="MONOCHROME2", bits_stored=8, rows=height, columns=width)
    enc = EncodedImage(png=bytes(out), height=height, width=width, scale_y=1.0, scale_x=1.0,
                       native_height=height, native_width=width, media_type=JPEG_MEDIA_TYPE)
    return PassThroughImage(enc, 8, meta, {}, "raster_8bit")
