"""Shared machinery for volumetric sources (CT/MR): slice records and volume records.

A subclass lists its cases (``scan``) and loads one case (``load_case``) into native-grid
SimpleITK images plus target definitions; this module does the rest the same way for every
source:

* **Geometry.** Image channels, label map and extra mask layers must share one voxel grid
  (shape, then spacing/origin/direction), else the case is quarantined
  (``label_shape_mismatch`` …). Everything is reoriented to LPS+ (``media.volume``), so slice
  ``z`` of a record is an axial slice with z = 0 the most inferior, anterior at the top and the
  patient's right on the image's left. Slices are cut from the reoriented native grid (no
  resampling, so labels are never interpolated); ``pixel_spacing_mm`` is [row, col] of the
  stored PNG.
* **Slice selection** (``VolumeOptions.slices``): ``labelled+empty`` (default) keeps every slice
  where any label is present plus a deterministic share ``empty_fraction`` of the others
  (a slice is kept when a hash of source, case and slice index falls under the fraction, so
  reruns pick the same slices); ``labelled`` keeps only the former, ``all`` every slice. A case
  where nothing is selected (e.g. an unlabelled test image) keeps its middle slice.
* **Multi-sequence MR** becomes one record per slice *and* sequence (``sequence`` set,
  ``channel_names`` = [that sequence]): stored PNGs stay single-channel grayscale, which every
  loader decodes, and the targets are repeated per sequence. The ``volumes`` table packs all
  sequences as channels instead. ``VolumeOptions.sequences`` restricts the 2D records to some.
* **Intensity.** CT: a named HU window per source/body part (configurable, ``ct_window``).
  MR: robust percentiles of the non-zero voxels, one range per volume and sequence.
* **Level 1 / 2 semantics.** The label volumes segment a fixed set of findings exhaustively,
  so on every slice each of the source's finding labels is ``present`` (voxels on the slice) or
  ``absent``. ``abnormal`` is True when any finding is present; otherwise it stays **None**: a
  slice without tumour in a tumour case (or a slice of an anatomy-only dataset) is not a normal
  study, the datasets never assert normality. ``complete`` is False (only the task's labels
  were drawn). Anatomy labels are targets only, never findings.
* **Targets.** One per label present on the slice and one per derived region (BraTS TC/WT,
  KiTS kidney-and-mass …): COCO RLE over the stored PNG grid, box = tight mask box. A target
  whose mask vanishes when the slice is downsized is dropped (its finding stays present).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from shardsmith.config import Settings, VolumeOptions
from shardsmith.pseudonym import stable_id
from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.schemas.vocabulary import UnknownLabelError
from shardsmith.schemas.volumes import VOLUMES_SCHEMA
from shardsmith.sources.medical.base import (
    CatalogEntry,
    LabelledItem,
    LabelResult,
    MedicalSource,
    RecordError,
    sha256_file,
)

if TYPE_CHECKING:  # SimpleITK/cv2 load only when pixels are decoded, not for label statistics
    import SimpleITK as sitk

    from shardsmith.media.volume import Window
    from shardsmith.media.volume_slabs import SlabVolume

log = logging.getLogger(__name__)



@dataclass
class TargetDef:
    """One target family of a case: a set of label-map values or a binary layer, with its labels."""

    label: str  # canonical
    source_label: str
    vocab_kind: str  # finding | anatomy | derived (from the vocabulary)
    target_kind: str  # abnormality | anatomy
    source_geometry: str
    values: tuple[int, ...] = ()
    layer: str | None = None  # key into LoadedCase.layers instead of label-map values
    reader: str | None = None
    stored_value: bool = False  # a class of the stored label map (listed in label_names)
    slice_target: bool = True  # False: only in the volumes table (its slices are covered by layers)


@dataclass
class LoadedCase:
    """One case on its native voxel grid, as a subclass hands it over."""

    channels: list[sitk.Image | SlabVolume]  # a SlabVolume is read LPS+ (media.volume.read_nifti_slabs)
    channel_names: list[str] | None  # None for single-channel CT
    label: sitk.Image | SlabVolume | None
    defs: list[TargetDef]
    layers: dict[str, sitk.Image] = field(default_factory=dict)
    annotations: dict[str, Any] | None = None
    readers: list[str] | None = None  # everyone who read the case: they all assert "absent" on a slice


@dataclass
class PreparedCase:
    """A case reoriented to LPS+, as numpy arrays [z, y, x], ready to cut into slices."""

    native_id: str
    sha: str
    case: LoadedCase
    canon_channels: list[sitk.Image | SlabVolume]
    canon_label: sitk.Image | SlabVolume | None
    arrays: list[np.ndarray | SlabVolume]  # [z, y, x]; a SlabVolume reads its slices from scratch
    label: np.ndarray | SlabVolume | None
    layers: dict[str, np.ndarray]
    windows: list[Window]
    presence: dict[int, np.ndarray]  # def index -> bool per slice


SLAB_SLICES = 16  # native slices copied into a stored volume at once


def _slabs(arr: np.ndarray, n: int = SLAB_SLICES) -> Iterator[np.ndarray]:
    return (arr[z:z + n] for z in range(0, arr.shape[0], n))


def _hu_int16(slab: np.ndarray) -> np.ndarray:
    """Interpolated HU rounded and clipped to int16; stored integers (the native grid) pass as they are."""
    if slab.dtype.kind in "iu":
        return slab
    return np.clip(np.rint(slab), -32768, 32767)


def npy_from_slabs(shape: tuple[int, ...], dtype: Any, slabs: Iterable[np.ndarray],
                   convert: Callable[[np.ndarray], np.ndarray] | None = None) -> bytearray:
    """The ``.npy`` bytes ``np.save`` writes for an array of ``shape``, filled from ``slabs`` (arrays
    whose first axis runs along the flattened leading axes, in C order) as they come: one buffer of
    the stored size, no stacked copy and no whole-volume temporary."""
    dtype = np.dtype(dtype)
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                "fortran_order": False, "shape": tuple(int(s) for s in shape)})
    offset = head.tell()
    count = math.prod(shape)
    buf = bytearray(offset + count * dtype.itemsize)
    buf[:offset] = head.getvalue()
    flat = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(-1, *shape[-2:])
    pos = 0
    for slab in slabs:
        flat[pos:pos + slab.shape[0]] = convert(slab) if convert else slab
        pos += slab.shape[0]
    if pos != flat.shape[0]:
        raise ValueError(f"slabs held {pos} slices, the volume {flat.shape[0]}")
    return buf


def _keep_empty(fraction: float, *parts: object) -> bool:
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    h = int(hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:12], 16)
    return h / float(16**12) < fraction


class VolumeSource(MedicalSource):
    """A 3D source: many slice records per case plus one row in the ``volumes`` table."""

    default_modality: ClassVar[str] = "CT"
    default_body_part: ClassVar[str | None] = None
    default_ct_window: ClassVar[str] = "soft_tissue"

    def __init__(self, vocabulary=None, options: VolumeOptions | None = None, settings: Settings | None = None):
        super().__init__(vocabulary)
        self.options = options or (settings.volume if settings else VolumeOptions())
        self._prepared: PreparedCase | None = None
        self.scratch_dir: Path | None = None  # where load_case streams volumes (media.volume.read_nifti_slabs)

    def _scratch_in(self, settings: Settings) -> None:
        """Streamed volumes spill into unlinked files beside the source's staging, on the disk the
        build writes to, not in a /tmp that may be memory."""
        self.scratch_dir = settings.layout.source_dir(self.name)
        self.scratch_dir.mkdir(parents=True, exist_ok=True)

    # -- hooks for subclasses ------------------------------------------------------------------
    def scan(self, root: Path) -> tuple[list[LabelledItem], list[dict], list[str]]:
        """Cases on disk (``extra['main']`` = main image relpath, ``extra['files']`` = all files),
        quarantine rows for incomplete cases, and the label/index files read."""
        raise NotImplementedError

    def load_case(self, entry: CatalogEntry, root: Path) -> LoadedCase:
        raise NotImplementedError

    def slice_text(self, prepared: PreparedCase, z: int, present: list[TargetDef]) -> str | None:
        """Optional grounding text for a slice (LIDC: nodule ratings)."""
        return None

    # -- catalog -------------------------------------------------------------------------------
    def detect(self, root: Path) -> bool:
        try:
            items, _, _ = self.scan(root)
        except OSError:
            return False
        return bool(items)

    def read_labels(self, root: Path) -> LabelResult:
        items, quarantine, files = self.scan(root)
        return LabelResult(items=items, quarantine=quarantine, label_files=files,
                           rows_read=len(items) + len(quarantine))

    def find_images(self, root: Path) -> dict[str, Path]:
        items, _, _ = self.scan(root)
        return {it.native_id: root / it.extra["main"] for it in items}

    def _entry(self, item: LabelledItem, path: Path, root: Path, checksum: bool) -> CatalogEntry:
        """A case is several files (sequences, labels, a DICOM series): fingerprint them all."""
        files = sorted(item.extra.get("files") or [str(path.relative_to(root))])
        h = hashlib.sha256()
        size = 0
        for rel in files:
            p = root / rel
            size += p.stat().st_size
            h.update(f"{rel}\0{sha256_file(p) if checksum else ''}\n".encode())
        return CatalogEntry(item=item, raw_path=str(path.relative_to(root)),
                            raw_sha256=h.hexdigest() if checksum else "", size=size)

    def label_defs(self, pairs: list[tuple[int, str]], geometry: str = "label-map") -> list[TargetDef]:
        """Raw label-map classes: (value, source label) -> TargetDef via the vocabulary."""
        out = []
        for value, source_label in pairs:
            m = self.map_label(source_label)
            if m.kind not in ("finding", "anatomy"):
                continue  # background / normal markers are not targets
            out.append(TargetDef(
                label=m.canonical, source_label=source_label, vocab_kind=m.kind,
                target_kind="abnormality" if m.kind == "finding" else "anatomy",
                source_geometry=f"{geometry} value {value}", values=(value,), stored_value=True,
            ))
        return out

    def region_def(self, source_label: str, values: tuple[int, ...], target_kind: str) -> TargetDef:
        m = self.map_label(source_label)
        return TargetDef(
            label=m.canonical, source_label=source_label, vocab_kind=m.kind, target_kind=target_kind,
            source_geometry="label-map values " + "|".join(str(v) for v in values), values=values,
        )

    def quarantine_unknown(self, err: UnknownLabelError, native_id: str, rel: str) -> dict:
        return self.unknown_label_row(err, native_id, rel)

    # -- decoding ------------------------------------------------------------------------------
    def prepare(self, entry: CatalogEntry, root: Path) -> PreparedCase:
        """Load, check and reorient one case (cached: records and volumes reuse it)."""
        key = (entry.item.native_id, entry.raw_sha256)
        if self._prepared is not None and (self._prepared.native_id, self._prepared.sha) == key:
            return self._prepared
        from shardsmith.media import volume as V

        try:
            case = self.load_case(entry, root)
            ref = case.channels[0]
            for i, ch in enumerate(case.channels[1:], start=1):
                V.check_same_grid(ref, ch, "sequence")
                if case.channel_names:
                    log.debug("%s: sequence %s shares the grid", entry.item.native_id, case.channel_names[i])
            if case.label is not None:
                V.check_same_grid(ref, case.label, "label")
            for layer in case.layers.values():
                V.check_same_grid(ref, layer, "label")
            # Reoriented one volume at a time, each replacing its original, so at most one extra
            # copy of one volume exists at once (a full CT is hundreds of MB).
            for i in range(len(case.channels)):
                case.channels[i] = V.to_canonical(case.channels[i])
            canon = case.channels
            if case.label is not None:
                case.label = V.to_canonical(case.label)
            canon_label = case.label
            layers = {}
            for k in list(case.layers):
                layers[k] = _arr(V.to_canonical(case.layers.pop(k))).astype(bool)
        except V.VolumeError as e:
            raise RecordError(e.reason, f"{entry.item.native_id}: {e}") from e
        except RuntimeError as e:  # SimpleITK errors
            raise RecordError("volume_error", f"{entry.item.native_id}: {e}") from e

        # Views of the images' buffers (no copies): the images live in PreparedCase beside them. A
        # streamed volume (SlabVolume) is its own array: slices and slabs are read from its scratch file.
        arrays = [_voxels(c) for c in canon]
        label = _voxels(canon_label) if canon_label is not None else None
        windows = self._windows(entry.item, arrays, case)
        presence = self._presence(case.defs, label, layers, arrays[0].shape[0])
        if label is not None:
            self._check_values(entry.item.native_id, case, label)
        self._prepared = PreparedCase(entry.item.native_id, entry.raw_sha256, case, canon, canon_label,
                                      arrays, label, layers, windows, presence)
        return self._prepared

    @staticmethod
    def _check_values(native_id: str, case: LoadedCase, label: np.ndarray) -> None:
        """A label value the source does not define is an error, never a silently dropped class."""
        known = {0} | {v for d in case.defs if d.stored_value for v in d.values}
        # Slab by slab: a bincount of the whole map would first copy it to int64 (8 bytes a voxel).
        seen = np.zeros(0, dtype=bool)
        for slab in _slabs(label):
            for sl in slab:
                hits = np.bincount(sl.ravel()) > 0
                seen = np.pad(seen, (0, max(0, len(hits) - len(seen))))
                seen[:len(hits)] |= hits
        unknown = sorted(int(v) for v in np.flatnonzero(seen) if int(v) not in known)
        if unknown:
            raise RecordError("unknown_label_value",
                              f"{native_id}: label map holds values {unknown}; the source defines {sorted(known)}")

    def _windows(self, item: LabelledItem, arrays: list[np.ndarray], case: LoadedCase) -> list[Window]:
        from shardsmith.media import volume as V

        modality = item.modality or self.default_modality
        if modality == "CT":
            spec = self.options.ct_window or item.extra.get("ct_window") or self.default_ct_window
            return [V.ct_window(spec)] * len(arrays)
        lo, hi = self.options.mr_percentiles
        names = case.channel_names or [modality] * len(arrays)
        return [V.percentile_window(a, lo, hi, f"{modality} {n}") for a, n in zip(arrays, names, strict=True)]

    @staticmethod
    def _presence(defs: list[TargetDef], label: np.ndarray | None, layers: dict[str, np.ndarray],
                  depth: int) -> dict[int, np.ndarray]:
        """Per target definition, which slices hold any of its voxels (one bincount per slice)."""
        out: dict[int, np.ndarray] = {}
        per_value: np.ndarray | None = None
        if label is not None:
            # a slab at a time (a streamed label map is never whole in memory), widened as values appear
            per_value = np.zeros((depth, 1), dtype=bool)
            for z0, slab in zip(range(0, depth, SLAB_SLICES), _slabs(label), strict=True):
                for z, sl in enumerate(slab, start=z0):
                    hits = np.bincount(sl.ravel()) > 0
                    if len(hits) > per_value.shape[1]:
                        per_value = np.pad(per_value, ((0, 0), (0, len(hits) - per_value.shape[1])))
                    per_value[z, :len(hits)] = hits
        for i, d in enumerate(defs):
            if d.layer is not None:
                arr = layers.get(d.layer)
                out[i] = arr.any(axis=(1, 2)) if arr is not None else np.zeros(depth, dtype=bool)
            elif per_value is not None:
                vals = [v for v in d.values if v < per_value.shape[1]]
                out[i] = per_value[:, vals].any(axis=1) if vals else np.zeros(depth, dtype=bool)
            else:
                out[i] = np.zeros(depth, dtype=bool)
        return out

    def select_slices(self, prepared: PreparedCase) -> list[int]:
        depth = prepared.arrays[0].shape[0]
        if self.options.slices == "all":
            return list(range(depth))
        labelled = np.zeros(depth, dtype=bool)
        for p in prepared.presence.values():
            labelled |= p
        keep = []
        for z in range(depth):
            if labelled[z] or (self.options.slices == "labelled+empty" and _keep_empty(
                    self.options.empty_fraction, self.name, prepared.native_id, z)):
                keep.append(z)
        return keep or [depth // 2]  # every case shows up in the 2D table at least once

    # -- records -------------------------------------------------------------------------------
    def build_records(self, entry: CatalogEntry, root: Path, settings: Settings) -> Iterator[dict]:
        from shardsmith.media import masks as M
        from shardsmith.media.dicom import DecodedImage
        from shardsmith.media.raster import encode_png

        self._scratch_in(settings)
        prep = self.prepare(entry, root)
        item = entry.item
        depth = prep.arrays[0].shape[0]
        sx, sy, _ = prep.canon_channels[0].GetSpacing()
        names = prep.case.channel_names
        wanted = range(len(prep.arrays))
        if names and self.options.sequences:
            allow = {s.lower() for s in self.options.sequences}
            wanted = [i for i, n in enumerate(names) if n.lower() in allow]
        finding_labels = _finding_groups(prep.case.defs)
        rows: list[dict] = []
        for z in self.select_slices(prep):
            present = [i for i, d in enumerate(prep.case.defs) if prep.presence[i][z]]
            present_defs = [prep.case.defs[i] for i in present]
            findings = []
            for label, defs in finding_labels.items():
                hit = [d for d in defs if d in present_defs]
                status = "present" if hit else "absent"
                pool = [d.reader for d in (hit or defs) if d.reader]
                if not hit and prep.case.readers:
                    pool = list(prep.case.readers)
                readers = sorted(set(pool))
                findings.append({"label": label, "source_label": (hit or defs)[0].source_label,
                                 "status": status, "readers": readers})
            abnormal = True if any(f["status"] == "present" for f in findings) else None
            masks = [(prep.case.defs[i], self._slice_mask(prep, prep.case.defs[i], z))
                     for i in present if prep.case.defs[i].slice_target]
            text = self.slice_text(prep, z, present_defs)
            targets_cache: dict[tuple[int, int], list[dict]] = {}
            for c in wanted:
                seq = names[c] if names else None
                rec = self.record_base(entry, z, split_seed=settings.split_seed)
                if seq is not None:
                    rec["record_id"] = stable_id(self.name, item.native_id, z, seq)
                img = DecodedImage(pixels=prep.arrays[c][z].astype(np.float32, copy=False),
                                   lo=prep.windows[c].lo, hi=prep.windows[c].hi,
                                   intensity=prep.windows[c].description)
                enc = encode_png(img, settings.image.max_side, settings.image.bit_depth)
                grid = (enc.height, enc.width)
                if grid not in targets_cache:
                    targets_cache[grid] = self._targets(masks, enc.height, enc.width, M, rec["record_id"])
                rec.update({
                    "modality": item.modality or self.default_modality,
                    "body_part": item.body_part or self.default_body_part,
                    "sequence": seq,
                    "channel_names": [seq] if seq else None,
                    "image": {"bytes": enc.png, "path": f"{rec['record_id']}.png"},
                    "media_type": enc.media_type,
                    "height": enc.height,
                    "width": enc.width,
                    "pixel_spacing_mm": [float(sy) / enc.scale_y, float(sx) / enc.scale_x],
                    "num_slices": depth,
                    "intensity": img.intensity,
                    "abnormal": abnormal,
                    "complete": False,
                    "findings": findings,
                    "targets": [dict(t, target_id=stable_id(rec["record_id"], t["target_id"]))
                                for t in targets_cache[grid]],
                    "text": text or item.text,
                })
                rows.append(rec)
        return iter(rows)

    @staticmethod
    def _slice_mask(prep: PreparedCase, d: TargetDef, z: int) -> np.ndarray:
        if d.layer is not None:
            return prep.layers[d.layer][z]
        assert prep.label is not None
        sl = prep.label[z]
        return sl == d.values[0] if len(d.values) == 1 else np.isin(sl, d.values)

    @staticmethod
    def _targets(masks: list[tuple[TargetDef, np.ndarray]], height: int, width: int, M: Any,
                 record_id: str) -> list[dict]:
        out = []
        for d, mask in masks:
            stored = M.resize_mask(mask, height, width)
            if not stored.any():
                log.debug("%s: %s vanished when the slice was downsized", record_id, d.label)
                continue
            rle = M.coco_rle_encode(stored)
            out.append({
                "target_id": f"{d.label}|{d.reader or ''}|{d.layer or d.source_geometry}",
                "label": d.label,
                "kind": d.target_kind,
                "box_xyxy": M.mask_bbox_xyxy(stored),
                "mask_rle": rle,
                "area_px": float(M.coco_rle_area(rle)),
                "reader": d.reader,
                "source_geometry": d.source_geometry,
            })
        return out

    # -- volumes table -------------------------------------------------------------------------
    def extra_tables(self) -> dict[str, Any]:
        return {"volumes": VOLUMES_SCHEMA} if self.options.write_volumes else {}

    def build_extra(self, table: str, entry: CatalogEntry, root: Path, settings: Settings) -> Iterator[dict]:
        if table != "volumes":
            return super().build_extra(table, entry, root, settings)
        self._scratch_in(settings)
        return iter([self.volume_record(entry, root, settings.split_seed)])

    def volume_record(self, entry: CatalogEntry, root: Path, split_seed: str) -> dict:

        from shardsmith.media import volume as V

        prep = self.prepare(entry, root)
        item = entry.item
        modality = item.modality or self.default_modality
        spacing = self.options.volume_spacing_mm
        channels, label = prep.canon_channels, prep.canon_label
        background = -1024.0 if modality == "CT" else 0.0
        dtype = np.int16 if modality == "CT" else np.float32
        # The stored volumes are written slab by slab into their .npy buffers (issue 24): neither the
        # whole resampled float32 volume nor a stacked copy of it exists, so memory does not grow
        # with the length after resampling.
        if spacing is not None:
            grid = V.grid_image(channels[0], spacing)
            nx, ny, nz = V.resample_grid(channels[0], spacing)[0]
            image_slabs = [V.resample_slabs(c, spacing, label=False, default=background) for c in channels]
            label_slabs = V.resample_slabs(label, spacing, label=True) if label is not None else None
        else:
            grid = channels[0]
            nz, ny, nx = prep.arrays[0].shape
            image_slabs = [_slabs(a) for a in prep.arrays]
            label_slabs = _slabs(prep.label) if label is not None else None
        image_npy = npy_from_slabs((len(channels), nz, ny, nx), dtype, itertools.chain(*image_slabs),
                                   _hu_int16 if modality == "CT" else None)
        label_npy = None
        if label_slabs is not None:
            label_dtype = prep.label.dtype
            label_npy = npy_from_slabs((nz, ny, nx), label_dtype, label_slabs)
        how = "CT HU as int16" if modality == "CT" else f"{modality} scanner units as float32 (no scaling)"
        how += "; linear resampling" if spacing is not None else "; native grid"
        if spacing is not None:
            how += f" to {spacing:g} mm isotropic, labels nearest neighbour"
        base = self.record_base(entry, split_seed=split_seed)
        sx, sy, sz = grid.GetSpacing()
        nsx, nsy, nsz = prep.canon_channels[0].GetSpacing()
        row = {
            "record_id": stable_id(self.name, item.native_id, "volume"),
            "source": self.name,
            "native_id": base["native_id"],
            "patient_id": base["patient_id"],
            "study_id": base["study_id"],
            "split": base["split"],
            "split_source": base["split_source"],
            "split_official": base["split_official"],
            "modality": modality,
            "body_part": item.body_part or self.default_body_part,
            "channel_names": prep.case.channel_names or [modality],
            "shape": [len(channels), nz, ny, nx],
            "spacing_mm": [sz, sy, sx],
            "orientation": V.CANONICAL_ORIENTATION,
            "affine_lps": V.affine_zyx(grid).ravel().tolist(),
            "native_shape": list(prep.arrays[0].shape),
            "native_spacing_mm": [nsz, nsy, nsx],
            "image_npy": image_npy,
            "label_npy": label_npy,
            "label_names": [
                {"value": d.values[0], "label": d.label, "source_label": d.source_label, "kind": d.target_kind}
                for d in prep.case.defs if d.stored_value
            ] if label_npy is not None else None,
            "intensity": how,
            "annotations_json": json.dumps(prep.case.annotations, sort_keys=True)
            if prep.case.annotations else None,
            "raw_path": base["raw_path"],
            "raw_sha256": base["raw_sha256"],
            "adapter_version": base["adapter_version"],
        }
        # The volume is the last thing made from a case (records first, then this row): its images
        # are let go before the row is written, so the writer's copies of the stored volume never
        # stand beside the whole native volume and its label map.
        self._prepared = None
        return row


def _voxels(img: sitk.Image | SlabVolume) -> np.ndarray | SlabVolume:
    """An image's voxels ``[z, y, x]`` as a view of its buffer; a SlabVolume stands for its own array."""
    import SimpleITK as sitk

    from shardsmith.media.volume_slabs import SlabVolume

    return img if isinstance(img, SlabVolume) else sitk.GetArrayViewFromImage(img)


def _arr(img: sitk.Image) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(img)


def _finding_groups(defs: list[TargetDef]) -> dict[str, list[TargetDef]]:
    """Finding labels in definition order, each with the definitions that can make it present."""
    groups: dict[str, list[TargetDef]] = {}
    for d in defs:
        if d.vocab_kind == "finding":
            groups.setdefault(d.label, []).append(d)
    return groups


def visible(name: str) -> bool:
    """macOS AppleDouble (``._x.nii.gz``) and other hidden files are never data."""
    return not name.startswith(".")


def quarantine_case(source: str, reason: str, detail: str, native_id: str | None, rel: str | None) -> dict:
    return quarantine_row(source, "catalog", reason, detail, native_id, rel)
