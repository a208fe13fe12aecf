"""Volumes (NIfTI, DICOM series) -> one canonical orientation, resampling, intensity windows.

Conventions (every volumetric source goes through here, so they hold for all of them):

* **Canonical orientation is LPS+** (the DICOM/ITK patient system): after
  :func:`to_canonical` the image index axes (i, j, k) point as closely as possible to patient
  Left, Posterior and Superior (``sitk.DICOMOrient(img, "LPS")``, a pure axis permutation/flip,
  no interpolation). ``sitk.GetArrayFromImage`` then gives arrays indexed ``[z, y, x]`` with
  z running inferior -> superior, y anterior -> posterior and x patient-right -> patient-left,
  so an axial slice ``arr[z]`` is already in radiological display convention (anterior at the
  top, the patient's right on the image's left).
* NIfTI is read with nibabel (``get_best_affine`` semantics: sform when set, else qform, which
  handles KiTS's ``sform_code=2, qform_code=0`` permuted affines) and converted to a SimpleITK
  image by hand: RAS -> LPS flips the first two world axes, spacing is the column norm of the
  affine, direction the normalised columns. Arrays are never transposed "by eye".
* Resampling (:func:`resample`) keeps the physical extent (edge-aligned grids), uses linear
  interpolation for intensities and nearest neighbour for label maps, and keeps the direction.
* :func:`read_nifti_slabs` / :func:`read_nifti_labels_slabs` give the same voxels, types and LPS+
  geometry without holding the volume: a :class:`~shardsmith.media.volume_slabs.SlabVolume` in a
  scratch file, read a slab at a time; :func:`resample_slabs` resamples either kind slab by slab.
* :func:`affine_zyx` gives the 4x4 matrix from array index ``(z, y, x, 1)`` to LPS world mm,
  which is what the volumes table stores so a 3D loader can place every voxel in the world.

Every failure raises :class:`VolumeError` with a short ``reason`` for quarantine tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from shardsmith.errors import ShardsmithError
from shardsmith.media.volume_slabs import SlabVolume

__all__ = [
    "CANONICAL_ORIENTATION",
    "CT_WINDOWS",
    "VolumeError",
    "Window",
    "affine_zyx",
    "check_finite",
    "check_same_grid",
    "ct_window",
    "from_array",
    "percentile_window",
    "read_dicom_series",
    "read_nifti",
    "read_nifti_labels",
    "read_nifti_labels_slabs",
    "read_nifti_slabs",
    "grid_image",
    "resample",
    "resample_grid",
    "resample_slabs",
    "to_canonical",
]

CANONICAL_ORIENTATION = "LPS"
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
GRID_TOLERANCE_MM = 1e-2  # image and label affines may differ by float noise, not by a voxel


class VolumeError(ShardsmithError):
    """A volume could not be used; ``reason`` is a short code (non_finite_voxels, label_shape_mismatch…)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)


# --------------------------------------------------------------------------- reading


def _load_nifti(path: Path, dtype: type | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Voxels with the header's scl_slope/scl_inter applied in ``dtype`` (float32 for images: nibabel
    would scale in float64, which costs seconds and gigabytes on a full CT) and the RAS affine."""
    try:
        img = nib.load(str(path))
        proxy = img.dataobj
        data = _read_unscaled(proxy)
        slope, inter = float(getattr(proxy, "slope", 1.0)), float(getattr(proxy, "inter", 0.0))
        if dtype is not None and data.dtype != dtype:
            data = data.astype(dtype)
        if slope != 1.0 or inter != 0.0:
            data = data.astype(dtype or np.float32, copy=False) * np.float32(slope) + np.float32(inter)
    except Exception as exc:  # nibabel raises many types on truncated/corrupt files
        raise VolumeError("unreadable_nifti", f"{path.name}: cannot read NIfTI ({exc.__class__.__name__}: {exc})") from exc
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise VolumeError("bad_affine", f"{path.name}: affine has non-finite values")
    return data, affine


_READ_CHUNK = 16 << 20


def _read_unscaled(proxy) -> np.ndarray:
    """The stored voxels, read straight into one array (issue 24): nibabel's own read of a
    ``.nii.gz`` holds the decompressed bytes and an array made from them at once, twice the volume."""
    dtype = np.dtype(getattr(proxy, "dtype", None) or np.uint8)
    file_like = getattr(proxy, "file_like", None)
    if not hasattr(proxy, "offset") or not isinstance(file_like, str) or not dtype.isnative or proxy.order != "F":
        return np.asanyarray(proxy.get_unscaled()) if hasattr(proxy, "get_unscaled") else np.asanyarray(proxy)
    arr = np.empty(proxy.shape, dtype=dtype, order="F")
    view = memoryview(arr.T).cast("B")  # arr.T is C-contiguous over the same buffer
    with nib.openers.ImageOpener(file_like) as fh:
        fh.seek(int(proxy.offset))
        done = 0
        while done < len(view):
            n = fh.readinto(view[done:done + _READ_CHUNK])  # gzip reads a request whole, then copies it
            if not n:
                raise VolumeError("unreadable_nifti", f"{file_like}: voxel data ends after {done} of "
                                                      f"{len(view)} bytes (file cut short)")
            done += n
    return arr


def _canonical_axes(direction: np.ndarray) -> tuple[list[int], list[float]] | None:
    """(index axis giving world axis w, its sign) for a direction matrix whose axes are each closest to
    one world axis (LPS+ by an axis permutation and flips only); None for any other (oblique) case."""
    perm = [int(a) for a in np.argmax(np.abs(direction), axis=1)]  # world axis w <- index axis perm[w]
    if sorted(perm) != [0, 1, 2]:
        return None
    return perm, [float(np.sign(direction[w, perm[w]])) for w in range(3)]


def _canonical_view(arr_ijk: np.ndarray, spacing: np.ndarray, direction: np.ndarray, origin: np.ndarray,
                    perm: list[int], signs: list[float]) -> tuple[np.ndarray, list[float], np.ndarray, np.ndarray]:
    """``arr_ijk`` permuted and flipped to LPS+ as a numpy view (no copy), and its geometry."""
    new = arr_ijk.transpose(perm)
    start = [0, 0, 0]
    for w in range(3):
        if signs[w] < 0:
            new = np.flip(new, axis=w)
            start[perm[w]] = arr_ijk.shape[perm[w]] - 1
    new_spacing = [float(spacing[perm[w]]) for w in range(3)]
    new_dir = np.stack([direction[:, perm[w]] * signs[w] for w in range(3)], axis=1)
    new_origin = origin + direction @ (np.asarray(spacing, dtype=np.float64) * np.asarray(start, dtype=np.float64))
    return new, new_spacing, new_dir, new_origin


def _lps_geometry(affine_ras: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spacing, direction, origin) in LPS of a nibabel RAS affine; sheared or degenerate axes are errors."""
    m = _RAS_TO_LPS @ affine_ras[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    if (spacing <= 0).any() or not np.isfinite(spacing).all():
        raise VolumeError("bad_affine", f"{name}: affine has a zero-length axis (spacing {spacing.tolist()})")
    direction = m / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-3):
        raise VolumeError("sheared_affine", f"{name}: affine axes are not orthogonal (sheared volume)")
    return spacing, direction, _RAS_TO_LPS @ affine_ras[:3, 3]


def from_array(arr_ijk: np.ndarray, affine_ras: np.ndarray, name: str = "<array>",
               canonical: bool = False) -> sitk.Image:
    """A SimpleITK image from a nibabel-ordered array ``[i, j, k]`` and its RAS affine.

    ``canonical`` reorients to LPS+ on the way in, as :func:`to_canonical` would after: the numpy
    view is permuted and flipped and SimpleITK copies it once, so a volume costs two copies of
    itself at most (the array and the image) instead of four (issue 24)."""
    if arr_ijk.ndim != 3:
        raise VolumeError("bad_dimensions", f"{name}: expected a 3D array, got shape {arr_ijk.shape}")
    spacing, direction, origin = _lps_geometry(affine_ras, name)
    axes = _canonical_axes(direction) if canonical else None
    if axes is not None:
        arr_ijk, spacing, direction, origin = _canonical_view(arr_ijk, spacing, direction, origin, *axes)
    # GetImageFromArray copies a non-contiguous view straight into the image: no contiguous copy first.
    img = sitk.GetImageFromArray(arr_ijk.transpose(2, 1, 0))
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(v) for v in direction.ravel()])
    img.SetOrigin([float(v) for v in origin])
    return img


def check_finite(arr: np.ndarray, name: str) -> None:
    """NaN/inf voxels would poison windows and resampling: reject the file instead."""
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise VolumeError("non_finite_voxels", f"{name}: {bad} voxels are NaN or infinite")


# Integer voxel types kept as stored when the header applies no scaling: every value is exact in
# float32, and a 512 x 512 x 600 CT is 315 MB as int16 instead of 629 MB as float32 (issue 12).
_KEPT_INTEGERS = (np.int8, np.uint8, np.int16, np.uint16)


def read_nifti(path: Path, canonical: bool = False) -> tuple[list[sitk.Image], np.ndarray]:
    """Intensity volume(s) as SimpleITK images (one per channel of a 4D file) + the RAS affine.

    float32, except unscaled 8/16-bit integer voxels (CT in HU), which stay in their own type;
    consumers convert a slice at a time (``resample`` interpolates them into float32)."""
    data, affine = _load_nifti(path, None)
    if data.dtype.type not in _KEPT_INTEGERS:
        data = data.astype(np.float32, copy=False)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 3:
        chans = [data]
    elif data.ndim == 4:
        chans = [data[..., c] for c in range(data.shape[3])]
    else:
        raise VolumeError("bad_dimensions", f"{path.name}: expected a 3D or 4D image, got shape {data.shape}")
    out = []
    for c in chans:
        arr = np.asarray(c)
        check_finite(arr, path.name)
        out.append(from_array(arr, affine, path.name, canonical))
    return out, affine


def read_nifti_labels(path: Path, canonical: bool = False) -> tuple[sitk.Image, np.ndarray]:
    """An integer label map (uint8/uint16) + its RAS affine; fractional or negative values are errors."""
    data, affine = _load_nifti(path)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError("bad_dimensions", f"{path.name}: expected a 3D label map, got shape {data.shape}")
    arr, top = _checked_labels(np.asarray(data), path.name)
    dtype = np.uint8 if top <= 255 else np.uint16
    return from_array(arr.astype(dtype, copy=False), affine, path.name, canonical), affine


def _checked_labels(arr: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """A label map (or a block of one) refused unless finite, whole, not negative and at most
    65535; float values come back rounded. Returns it and its largest value."""
    if np.issubdtype(arr.dtype, np.floating):
        check_finite(arr, name)
        rounded = np.rint(arr)
        if np.abs(arr - rounded).max(initial=0.0) > 1e-3:
            raise VolumeError("label_not_integer", f"{name}: label map has fractional values")
        arr = rounded
    if arr.size and arr.min() < 0:
        raise VolumeError("label_negative", f"{name}: label map has negative values")
    top = int(arr.max(initial=0))
    if top > 65535:
        raise VolumeError("label_out_of_range", f"{name}: label value {top} exceeds 65535")
    return arr, top


def _image_block(block: np.ndarray, slope: float, inter: float, name: str) -> np.ndarray:
    """A block of stored voxels as :func:`read_nifti` makes the whole volume: scaled in float32 when
    the header scales, 8/16-bit integers kept, anything else float32, NaN/inf refused."""
    if slope != 1.0 or inter != 0.0:
        block = block.astype(np.float32, copy=False) * np.float32(slope) + np.float32(inter)
    if block.dtype.type not in _KEPT_INTEGERS:
        block = block.astype(np.float32, copy=False)
    check_finite(block, name)
    return block


def _label_block(block: np.ndarray, slope: float, inter: float, name: str, stored: np.dtype) -> np.ndarray:
    """A block of a label map checked as :func:`read_nifti_labels` checks the whole map (finite,
    whole, not negative, at most 65535), in ``stored``."""
    if slope != 1.0 or inter != 0.0:
        block = block.astype(np.float32, copy=False) * np.float32(slope) + np.float32(inter)
    block, _top = _checked_labels(block, name)
    return block.astype(stored, copy=False)


def _stream_nifti(path: Path, label: bool, scratch_dir: Path | None) -> list[SlabVolume] | None:
    """The channels of a NIfTI file as LPS+ :class:`SlabVolume` s, decompressed a block of file planes at
    a time; None when the file cannot be streamed (not F-ordered on disk, or no axis permutation
    reaches LPS+), for the caller to read it whole."""
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types on truncated/corrupt files
        raise VolumeError("unreadable_nifti", f"{path.name}: cannot read NIfTI ({exc.__class__.__name__}: {exc})") from exc
    proxy = img.dataobj
    file_like = getattr(proxy, "file_like", None)
    if not hasattr(proxy, "offset") or not isinstance(file_like, str) or getattr(proxy, "order", "F") != "F":
        return None
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise VolumeError("bad_affine", f"{path.name}: affine has non-finite values")
    shape = tuple(int(n) for n in proxy.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) not in ((3,) if label else (3, 4)):
        what = "a 3D label map" if label else "a 3D or 4D image"
        raise VolumeError("bad_dimensions", f"{path.name}: expected {what}, got shape {proxy.shape}")
    spacing, direction, origin = _lps_geometry(affine, path.name)
    axes = _canonical_axes(direction)
    if axes is None or 0 in shape:
        return None
    perm, signs = axes
    on_disk = np.dtype(proxy.dtype)
    slope, inter = float(getattr(proxy, "slope", 1.0)), float(getattr(proxy, "inter", 0.0))
    ni, nj, nk = shape[:3]
    canon, c_spacing, c_dir, c_origin = _canonical_view(np.broadcast_to(np.zeros((), np.uint8), (ni, nj, nk)),
                                                        spacing, direction, origin, perm, signs)
    shape_zyx = canon.shape[::-1]
    w_k = perm.index(2)  # the world axis the file's slowest (plane) axis runs along
    unscaled = slope == 1.0 and inter == 0.0
    if label:
        stored = np.dtype(np.uint8) if unscaled and on_disk == np.uint8 else np.dtype(np.uint16)
    elif unscaled and on_disk.newbyteorder("=").type in _KEPT_INTEGERS:
        stored = on_disk.newbyteorder("=")
    else:
        stored = np.dtype(np.float32)
    planes = max(1, _READ_CHUNK // (ni * nj * on_disk.itemsize))
    channels = []
    try:
        with nib.openers.ImageOpener(file_like) as fh:
            fh.seek(int(proxy.offset))
            for _ in range(shape[3] if len(shape) == 4 else 1):
                vol = SlabVolume(shape_zyx, stored, c_spacing, c_origin, c_dir.ravel(), scratch_dir)
                top = 0
                for k0 in range(0, nk, planes):
                    k1 = min(nk, k0 + planes)
                    raw = np.empty((k1 - k0, nj, ni), dtype=on_disk)
                    _read_into(fh, raw, file_like)
                    block = raw.transpose(2, 1, 0)  # [i, j, k], as nibabel indexes it
                    if not on_disk.isnative:
                        block = block.astype(on_disk.newbyteorder("="))
                    if label:
                        block = _label_block(block, slope, inter, path.name, stored)
                        top = max(top, int(block.max(initial=0)))
                    else:
                        block = _image_block(block, slope, inter, path.name)
                    view = _canonical_view(block, spacing, direction, origin, perm, signs)[0]
                    start = [0, 0, 0]
                    start[w_k] = k0 if signs[w_k] > 0 else nk - k1
                    vol.write(start[2], start[1], start[0], view.transpose(2, 1, 0))
                channels.append(vol.finish(np.uint8 if label and top <= 255 else None))
    except VolumeError:
        raise
    except Exception as exc:
        raise VolumeError("unreadable_nifti", f"{path.name}: cannot read NIfTI ({exc.__class__.__name__}: {exc})") from exc
    return channels


def _read_into(fh, arr: np.ndarray, name: str) -> None:
    view = memoryview(arr).cast("B")
    done = 0
    while done < len(view):
        n = fh.readinto(view[done:done + _READ_CHUNK])
        if not n:
            raise VolumeError("unreadable_nifti", f"{name}: voxel data ends early (file cut short)")
        done += n


def read_nifti_slabs(path: Path, scratch_dir: Path | None = None) -> list[sitk.Image | SlabVolume]:
    """:func:`read_nifti` with ``canonical=True``, the voxels left in scratch files (:class:`SlabVolume`)
    instead of memory: the same voxels, types and geometry, at a cost that does not grow with the
    volume's length. A file that cannot be streamed is read whole, as SimpleITK images."""
    vols = _stream_nifti(path, False, scratch_dir)
    return list(vols) if vols is not None else list(read_nifti(path, canonical=True)[0])


def read_nifti_labels_slabs(path: Path, scratch_dir: Path | None = None) -> sitk.Image | SlabVolume:
    """:func:`read_nifti_labels` with ``canonical=True``, kept in a scratch file (see :func:`read_nifti_slabs`)."""
    vols = _stream_nifti(path, True, scratch_dir)
    return vols[0] if vols is not None else read_nifti_labels(path, canonical=True)[0]


def read_dicom_series(files: list[Path]) -> sitk.Image:
    """A CT series (already sorted by position) as a float32 image in HU (modality LUT applied by GDCM)."""
    if not files:
        raise VolumeError("empty_series", "DICOM series has no files")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise VolumeError("unreadable_dicom_series", f"cannot read DICOM series of {len(files)} files ({exc})") from exc
    img = sitk.Cast(img, sitk.sitkFloat32)
    check_finite(sitk.GetArrayViewFromImage(img), files[0].parent.name)
    return img


# --------------------------------------------------------------------------- geometry


def check_same_grid(ref: sitk.Image | SlabVolume, other: sitk.Image | SlabVolume, what: str) -> None:
    """Labels and extra sequences must share the image's voxel grid (shape first, then the world mapping)."""
    if ref.GetSize() != other.GetSize():
        raise VolumeError(
            f"{what}_shape_mismatch",
            f"{what} has voxel shape {list(other.GetSize())} but the image has {list(ref.GetSize())}",
        )
    for label in ("spacing", "origin", "direction"):  # by name: a SlabVolume has the same getters
        getter = f"Get{label.capitalize()}"
        a, b = np.asarray(getattr(ref, getter)()), np.asarray(getattr(other, getter)())
        if not np.allclose(a, b, atol=GRID_TOLERANCE_MM):
            raise VolumeError(
                f"{what}_geometry_mismatch",
                f"{what} {label} {np.round(b, 4).tolist()} differs from the image's {np.round(a, 4).tolist()}",
            )


def to_canonical(img: sitk.Image | SlabVolume) -> sitk.Image | SlabVolume:
    """Reorient to LPS+ by permuting/flipping axes only (voxel values are untouched).

    Same result as ``sitk.DICOMOrient(img, "LPS")`` (the closest axis wins for oblique volumes),
    done as a numpy transpose/flip: ITK's axis permutation is slow on KiTS's permuted arrays.
    """
    if isinstance(img, SlabVolume):
        return img  # made LPS+ as it was read
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        return sitk.DICOMOrient(img, CANONICAL_ORIENTATION)
    d = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    axes = _canonical_axes(d)
    if axes is None:
        return sitk.DICOMOrient(img, CANONICAL_ORIENTATION)
    perm, signs = axes
    if perm == [0, 1, 2] and all(sg > 0 for sg in signs):
        return img
    arr_ijk = sitk.GetArrayViewFromImage(img).transpose(2, 1, 0)
    new, spacing, new_dir, origin = _canonical_view(arr_ijk, np.asarray(img.GetSpacing()), d,
                                                    np.asarray(img.GetOrigin()), perm, signs)
    out = sitk.GetImageFromArray(new.transpose(2, 1, 0))
    out.SetSpacing(spacing)
    out.SetDirection([float(v) for v in new_dir.ravel()])
    out.SetOrigin([float(v) for v in origin])
    return out


def affine_zyx(img: sitk.Image) -> np.ndarray:
    """4x4 matrix mapping array index (z, y, x, 1) of ``GetArrayFromImage(img)`` to LPS world mm."""
    d = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    m = d * np.asarray(img.GetSpacing(), dtype=np.float64)  # columns: world step per i, j, k
    out = np.eye(4)
    out[:3, :3] = m[:, ::-1]  # array order is (k, j, i)
    out[:3, 3] = img.GetOrigin()
    return out


def resample_grid(img: sitk.Image, spacing_mm: float | tuple[float, float, float]
                  ) -> tuple[list[int], list[float], list[float]]:
    """(size x, y, z; origin; spacing) of the grid :func:`resample` makes: the same physical extent,
    edge-aligned (the first voxel's outer corner stays where it was)."""
    new_spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,))
    old_spacing = np.asarray(img.GetSpacing(), dtype=np.float64)
    old_size = np.asarray(img.GetSize(), dtype=np.float64)
    new_size = np.maximum(1, np.round(old_size * old_spacing / new_spacing)).astype(int)
    d = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    corner = np.asarray(img.GetOrigin()) - d @ (old_spacing / 2)
    origin = corner + d @ (new_spacing / 2)
    return [int(s) for s in new_size], [float(v) for v in origin], [float(v) for v in new_spacing]


def _resample_to(img: sitk.Image, size: list[int], origin: list[float], spacing: list[float], label: bool,
                 default: float) -> sitk.Image:
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    return sitk.Resample(
        img, size, sitk.Transform(), interp, origin, spacing, img.GetDirection(),
        # intensities come out float32 whatever the stored type (int16 CT included): same values as
        # resampling a float32 copy, without making one
        float(default), img.GetPixelID() if label else sitk.sitkFloat32,
    )


def resample(img: sitk.Image, spacing_mm: float | tuple[float, float, float], *, label: bool,
             default: float = 0.0) -> sitk.Image:
    """Resample onto an isotropic (or given x, y, z) grid covering the same physical extent."""
    size, origin, spacing = resample_grid(img, spacing_mm)
    return _resample_to(img, size, origin, spacing, label, default)


# Output slices resampled at once by resample_slabs: a 512 x 512 float32 slab of 16 is 16 MB.
RESAMPLE_SLAB_SLICES = 16


def resample_slabs(img: sitk.Image | SlabVolume, spacing_mm: float | tuple[float, float, float], *, label: bool,
                   default: float = 0.0, slab: int = RESAMPLE_SLAB_SLICES) -> Iterator[np.ndarray]:
    """:func:`resample`'s voxels as ``[z, y, x]`` arrays of at most ``slab`` output slices, first to last.

    Each output slab is resampled from only the input slices its interpolation reaches (one more
    on each side), made into a small image at their own place in the world, so neither the input
    nor the output is ever needed whole (a 1.5 m CT at 2.5 mm became a 1,000-slice float32 volume)
    and ``img`` may be a :class:`SlabVolume`. Input and output share the direction, so output slice
    z falls at input slice ``(offset + z * out_spacing) / in_spacing`` along the same axis."""
    size, origin, spacing = resample_grid(img, spacing_mm)
    d = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    in_spacing = [float(v) for v in img.GetSpacing()]
    in_origin = np.asarray(img.GetOrigin(), dtype=np.float64)
    depth = int(img.GetSize()[2])
    voxels = img if isinstance(img, SlabVolume) else sitk.GetArrayViewFromImage(img)
    offset = float((d.T @ (np.asarray(origin) - in_origin))[2])
    for z0 in range(0, size[2], slab):
        n = min(slab, size[2] - z0)
        first = (offset + spacing[2] * z0) / in_spacing[2]
        last = (offset + spacing[2] * (z0 + n - 1)) / in_spacing[2]
        lo = min(depth - 1, max(0, math.floor(first) - 1))
        hi = max(lo + 1, min(depth, math.ceil(last) + 2))
        part = sitk.GetImageFromArray(np.ascontiguousarray(voxels[lo:hi]))
        part.SetSpacing(in_spacing)
        part.SetDirection([float(v) for v in d.ravel()])
        part.SetOrigin([float(v) for v in in_origin + d[:, 2] * in_spacing[2] * lo])
        slab_origin = np.asarray(origin) + d[:, 2] * spacing[2] * z0
        out = _resample_to(part, [size[0], size[1], n], [float(v) for v in slab_origin], spacing, label, default)
        yield sitk.GetArrayFromImage(out)


def grid_image(img: sitk.Image, spacing_mm: float | tuple[float, float, float]) -> sitk.Image:
    """A one-voxel image carrying :func:`resample`'s grid geometry (origin, spacing, direction) for
    :func:`affine_zyx`, without the volume's voxels."""
    _, origin, spacing = resample_grid(img, spacing_mm)
    ref = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    ref.SetOrigin(origin)
    ref.SetSpacing(spacing)
    ref.SetDirection(img.GetDirection())
    return ref


# --------------------------------------------------------------------------- intensity


@dataclass(frozen=True)
class Window:
    """Display range [lo, hi] and the words that go into a record's ``intensity``."""

    lo: float
    hi: float
    description: str


# Named CT presets (level, width) in HU; values follow common radiology practice.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "soft_tissue": (40.0, 400.0),
    "abdomen": (40.0, 400.0),
    "liver": (60.0, 160.0),
    "brain": (40.0, 80.0),
    "bone": (400.0, 1800.0),
}


def ct_window(spec: str) -> Window:
    """A named preset (``lung``, ``abdomen`` …) or ``"L,W"`` in HU."""
    if spec in CT_WINDOWS:
        level, width = CT_WINDOWS[spec]
        name = spec
    else:
        try:
            level, width = (float(v) for v in spec.split(","))
        except ValueError:
            raise ValueError(f"CT window {spec!r} is neither a preset {sorted(CT_WINDOWS)} nor 'level,width'") from None
        name = "custom"
    if width <= 0:
        raise ValueError(f"CT window width must be positive, got {width}")
    return Window(level - width / 2, level + width / 2, f"CT window {name} L{level:g} W{width:g} HU")


def percentile_window(arr: np.ndarray, lo_pct: float, hi_pct: float, label: str = "MR") -> Window:
    """Robust MR scaling from percentiles of the non-zero voxels of the whole volume (one range per volume,
    so every slice of a sequence is scaled alike); zero background is excluded so it cannot dominate."""
    values = arr[arr != 0]
    if values.size == 0:
        values = arr.ravel()
    lo, hi = (float(v) for v in np.percentile(values, [lo_pct, hi_pct]))
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    return Window(lo, hi, f"{label} percentile {lo_pct:g}-{hi_pct:g} of non-zero voxels per volume [{lo:.4g}, {hi:.4g}]")
