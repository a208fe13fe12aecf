"""Shared record building for 2D radiographs (DICOM or PNG/JPEG): decode, store, place targets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shardsmith.config import Settings
from shardsmith.pseudonym import stable_id
from shardsmith.schemas.records import MEDIA_EXTENSIONS
from shardsmith.sources.medical.base import (
    CatalogEntry,
    LabelledItem,
    MedicalSource,
    RecordError,
    SourceTarget,
)

# A stored-as-is PNG is fingerprinted from a reduced decode this many pixels on its long side.
FINGERPRINT_DECODE_SIDE = 128

if TYPE_CHECKING:  # media (cv2, pydicom) loads only when pixels are decoded, not for label stats
    import numpy as np

    from shardsmith.media.dicom import DecodedImage
    from shardsmith.media.raster import EncodedImage, PassThroughImage

DICOM_SUFFIXES = {".dcm", ".dicom", ""}
BOX_TOLERANCE_PX = 2.0  # source boxes may touch the border by rounding; beyond this they are wrong


def decode_any(path: Path, data: bytes | None = None) -> DecodedImage:
    """DICOM by suffix (VinDr uses ``.dicom``), else a raster image; MediaError on failure.
    ``data``: the file's bytes, when the caller has read them (messages still name ``path``)."""
    from shardsmith.media.dicom import decode_dicom
    from shardsmith.media.raster import read_raster

    if path.suffix.lower() in DICOM_SUFFIXES:
        return decode_dicom(path if data is None else data, name=str(path))
    return read_raster(path, data)


def read_and_hash(path: Path) -> tuple[bytes, str]:
    """A raw file's bytes and their sha256: the worker that decodes a file reads it once and hashes
    those bytes, so no other process reads it (the catalog judged it by size and mtime)."""
    from shardsmith.hashing import sha256_bytes

    try:
        data = path.read_bytes()
    except OSError as exc:  # the decoders' own reason and wording for a file that cannot be read
        raise RecordError("unreadable", f"{path}: cannot read file ({exc.__class__.__name__}: {exc})") from exc
    return data, sha256_bytes(data)


def _space(geometry: dict[str, Any], native_w: int, native_h: int) -> tuple[float, float]:
    space = geometry.get("space")
    return (float(space[0]), float(space[1])) if space else (float(native_w), float(native_h))


def render_target(
    target: SourceTarget, enc: EncodedImage, target_id: str
) -> dict[str, Any]:
    """Place one source-geometry target on the stored image: box corners in stored pixels, COCO RLE."""
    from shardsmith.media import masks as M

    g = target.geometry
    kind = g["type"]
    nw, nh = enc.native_width, enc.native_height
    box: list[float] | None = None
    mask = None
    if kind in ("box_xyxy", "box_xywh"):
        coords = [float(c) for c in g["coords"]]
        if kind == "box_xywh":
            coords = M.xywh_to_xyxy(coords)
        sw, sh = _space(g, nw, nh)
        x0, y0, x1, y1 = coords
        if not (x1 > x0 and y1 > y0):
            raise RecordError("box_degenerate", f"box {coords} of {target.source_label!r} has no area")
        tol = BOX_TOLERANCE_PX
        if x0 < -tol or y0 < -tol or x1 > sw + tol or y1 > sh + tol:
            raise RecordError(
                "box_outside_image",
                f"box {coords} of {target.source_label!r} lies outside the {sw:g}x{sh:g} image",
            )
        box = M.clip_box_xyxy(M.scale_box_xyxy(coords, enc.width / sw, enc.height / sh), enc.width, enc.height)
    elif kind == "siim_rle":
        h, w = g.get("size") or (nh, nw)
        try:
            native = M.siim_rle_decode(g["rle"], int(h), int(w))
        except M.MaskError as e:
            raise RecordError(e.reason, f"{target.source_label}: {e}") from e
        mask = M.resize_mask(native, enc.height, enc.width)
    elif kind == "polygon":
        sw, sh = _space(g, nw, nh)
        tol = BOX_TOLERANCE_PX
        outside = [p for p in g["points"] if not (-tol <= float(p[0]) <= sw + tol and -tol <= float(p[1]) <= sh + tol)]
        if outside:  # rasterising would clip it silently into a smaller, wrong mask
            raise RecordError(
                "polygon_outside_image",
                f"polygon of {target.source_label!r} has {len(outside)} point(s) outside the {sw:g}x{sh:g} "
                f"image, e.g. {outside[0]}",
            )
        pts = [[float(x) * enc.width / sw, float(y) * enc.height / sh] for x, y in g["points"]]
        mask = M.polygon_to_mask(pts, enc.height, enc.width)
    elif kind == "coco_rle":
        mask = M.resize_mask(M.coco_rle_decode(g["rle"]), enc.height, enc.width)
    else:
        raise RecordError("unsupported_geometry", f"geometry type {kind!r} is not supported here")

    rle = None
    if mask is not None:
        if not mask.any():
            raise RecordError("mask_empty", f"{target.source_label}: mask is empty after decoding")
        rle = M.coco_rle_encode(mask)
        area = float(M.coco_rle_area(rle))
        box = M.mask_bbox_xyxy(mask)
        if g.get("box"):  # an annotated box beside the mask (ChestX-Det) wins over the mask's extent
            sw, sh = _space(g, nw, nh)
            box = M.clip_box_xyxy(M.scale_box_xyxy([float(c) for c in g["box"]], enc.width / sw,
                                                   enc.height / sh), enc.width, enc.height)
    else:
        area = float((box[2] - box[0]) * (box[3] - box[1]))
    return {
        "target_id": target_id,
        "label": target.label,
        "kind": target.kind,
        "box_xyxy": [float(v) for v in box] if box else None,
        "mask_rle": rle,
        "area_px": area,
        "reader": target.reader,
        "source_geometry": target.source_geometry,
        "text": target.text,
    }


def measured_pixels(img: DecodedImage | PassThroughImage, enc: EncodedImage) -> np.ndarray:
    """What the blank check and the fingerprint look at: the stored array, or for a stored-as-is PNG
    a reduced decode (``FINGERPRINT_DECODE_SIDE``; no full-size array is made for it)."""
    from shardsmith.media.raster import thumbnail

    return enc.pixels if enc.pixels is not None else thumbnail(img, FINGERPRINT_DECODE_SIDE)


def stored_identity(img: DecodedImage | PassThroughImage, enc: EncodedImage) -> bytes:
    """The fingerprint of the stored pixels (identity across sources, issue 13), after refusing a
    blank frame (reason ``blank_image``, issue 21: every constant frame has the same fingerprint).

    Runs inside the item's guard: whatever the reduced decode or the hashing raises becomes this
    item's quarantine row (``decode_failed`` from the decoder, else ``fingerprint_failed``), never a
    failure of the source.
    """
    from shardsmith.identity.fingerprint import fingerprint_pixels
    from shardsmith.media.dicom import MediaError
    from shardsmith.media.raster import BLANK_SPREAD_LEVELS, pixel_spread

    try:
        pixels = measured_pixels(img, enc)
        spread = pixel_spread(pixels)
        fingerprint = fingerprint_pixels(pixels).to_bytes() if spread >= BLANK_SPREAD_LEVELS else None
    except MediaError as e:
        raise RecordError(e.reason, f"reduced decode of the stored image failed: {e}") from e
    except Exception as e:  # one item's pixels must never fail the whole source
        raise RecordError("fingerprint_failed", f"fingerprint of the stored pixels failed "
                                                f"({e.__class__.__name__}: {e})") from e
    if fingerprint is None:
        raise RecordError("blank_image", f"the stored pixels are (near-)constant: robust range {spread:.2f} of "
                                         f"255 levels, under {BLANK_SPREAD_LEVELS:g} (media.raster.pixel_spread)")
    return fingerprint


class CxrSource(MedicalSource):
    """A chest X-ray source: one record per image."""

    default_modality = "DX"
    hashes_while_reading = True  # build_records hashes the bytes it decodes (read_and_hash)

    def build_records(self, entry: CatalogEntry, root: Path, settings: Settings) -> Iterator[dict]:
        from shardsmith.media.dicom import MediaError
        from shardsmith.media.jpeg import pass_through_jpeg
        from shardsmith.media.raster import PassThroughImage, encode_png, pass_through_png

        path = root / entry.raw_path
        side, depth = settings.image.max_side, settings.image.bit_depth
        data = None
        if not entry.raw_sha256:  # the catalog left the digest to the reader: this process
            data, entry.raw_sha256 = read_and_hash(path)
        try:
            # A PNG already in the stored form (NIH, ChestX-Det) is copied after a header check, and
            # a greyscale JPEG (CheXpert, MS-CXR) is kept as it came: neither is decoded and
            # re-encoded; ``img.thumbnail()`` still gives a small (reduced) decoded copy.
            img = (pass_through_png(path, side, depth, data) or pass_through_jpeg(path, side, depth, data)
                   or decode_any(path, data))
        except MediaError as e:
            raise RecordError(e.reason, str(e)) from e
        if not settings.allow_burned_in:
            if img.meta.get("burned_in_annotation"):
                raise RecordError("burned_in_annotation", "DICOM flags burned-in annotation (PHI risk)")
            raw = img.meta.get("burned_in_annotation_raw")
            if img.meta.get("burned_in_annotation") is None and raw is not None:
                raise RecordError("burned_in_annotation_unreadable",
                                  f"BurnedInAnnotation is {raw!r}, neither YES nor NO: cannot rule out burned-in PHI")
        if isinstance(img, PassThroughImage):
            enc = img.encoded
        else:
            enc = encode_png(img, side, depth)
        fingerprint = stored_identity(img, enc)
        item = entry.item
        # Header ids fill in what the label file lacks; record_base pseudonymises them.
        item.patient_raw = item.patient_raw or img.identifiers.get("PatientID") or None
        item.study_raw = item.study_raw or img.identifiers.get("StudyInstanceUID") or None
        rec = self.record_base(entry, split_seed=settings.split_seed)
        rec.update(self._header_fields(item, img.meta))
        rec["image"] = {"bytes": enc.png, "path": f"{rec['record_id']}.{MEDIA_EXTENSIONS[enc.media_type]}"}
        rec["media_type"] = enc.media_type
        rec["fingerprint"] = fingerprint
        rec["height"], rec["width"] = enc.height, enc.width
        spacing = img.meta.get("pixel_spacing_mm")
        rec["pixel_spacing_mm"] = (
            [float(spacing[0]) / enc.scale_y, float(spacing[1]) / enc.scale_x] if spacing else None
        )
        rec["intensity"] = img.intensity
        rec["targets"] = [
            render_target(t, enc, stable_id(rec["record_id"], i)) for i, t in enumerate(item.targets)
        ]
        yield rec

    def _header_fields(self, item: LabelledItem, meta: dict) -> dict:
        """Labels first, whitelisted header fields second: the label file is the authority."""
        return {
            "modality": item.modality or meta.get("modality") or self.default_modality,
            "body_part": item.body_part or "chest",
            "view": item.view or meta.get("view"),
            "sex": item.sex or meta.get("sex"),
            "age_band": item.age_band or meta.get("age_band"),
        }
