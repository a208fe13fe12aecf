"""A canonical (LPS+) volume that lives in a scratch file and is read a slab of slices at a time.

Why (issue 24 target 3, volumes): a whole CT held in memory makes a worker's peak grow with the
volume's length (a 1,000-slice 512 x 512 CT is 500 MB as int16, its label map 250 MB more, and a
SimpleITK image made from an array is a second copy). Here a ``.nii.gz`` is decompressed once,
a block of whole file planes at a time, each block reoriented to LPS+ as a numpy view (the same
permutation and flips as ``media.volume.from_array(canonical=True)``) and appended to an unlinked
scratch file as tiles of at most :data:`TILE_SLICES` axial slices. Reading slices ``[z0, z1)`` reads
only their tiles. The page cache holds the file; the process holds one block while reading and one
slab while cutting slices or resampling, whatever the length.

A :class:`SlabVolume` carries SimpleITK's geometry getters (``GetSize``, ``GetSpacing``,
``GetOrigin``, ``GetDirection``), so the grid helpers of ``media.volume`` (``check_same_grid``,
``resample_grid``, ``grid_image``, ``affine_zyx``, ``resample_slabs``) take it as they take an image.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TILE_SLICES", "SlabVolume"]

TILE_SLICES = 16  # axial slices per tile: a 512 x 512 int16 tile of 16 slices is 8 MB at most


class SlabVolume:
    """Voxels ``[z, y, x]`` of an LPS+ volume in an unlinked scratch file, written as blocks arrive.

    ``dtype`` is what readers get; ``stored`` what the file holds (a label map is stored as read and
    narrowed on the way out once its largest value is known)."""

    ndim = 3

    def __init__(self, shape_zyx: tuple[int, int, int], stored: Any, spacing: list[float], origin: list[float],
                 direction: list[float], scratch_dir: Path | None = None) -> None:
        self.shape = tuple(int(s) for s in shape_zyx)
        self.stored = np.dtype(stored)
        self.dtype = self.stored
        self._spacing = tuple(float(v) for v in spacing)
        self._origin = tuple(float(v) for v in origin)
        self._direction = tuple(float(v) for v in direction)
        self._file = tempfile.TemporaryFile(dir=scratch_dir, prefix="shardsmith-volume-")
        self._end = 0
        self._written = 0
        # per slab, its tiles as flat (z0, y0, x0, nz, ny, nx, offset) runs: 56 bytes a tile
        self._tiles = [array("q") for _ in range(-(-self.shape[0] // TILE_SLICES))]
        self._cached: tuple[int, np.ndarray] | None = None  # (first slice, slab) of the last slice read

    # -- SimpleITK's geometry getters (x, y, z order, like an image's) ----------------------------
    def GetSize(self) -> tuple[int, int, int]:  # noqa: N802 - SimpleITK's name, so grid helpers take either
        return (self.shape[2], self.shape[1], self.shape[0])

    def GetSpacing(self) -> tuple[float, float, float]:  # noqa: N802
        return self._spacing  # type: ignore[return-value]

    def GetOrigin(self) -> tuple[float, float, float]:  # noqa: N802
        return self._origin  # type: ignore[return-value]

    def GetDirection(self) -> tuple[float, ...]:  # noqa: N802
        return self._direction

    # -- writing ----------------------------------------------------------------------------------
    def write(self, z0: int, y0: int, x0: int, block: np.ndarray) -> None:
        """Store ``block`` (``[z, y, x]``, any strides) at ``(z0, y0, x0)``, cut into tiles on slab lines."""
        if block.dtype != self.stored:
            raise TypeError(f"block is {block.dtype}, the volume stores {self.stored}")
        nz, ny, nx = block.shape
        if z0 < 0 or y0 < 0 or x0 < 0 or z0 + nz > self.shape[0] or y0 + ny > self.shape[1] or x0 + nx > self.shape[2]:
            raise ValueError(f"block {block.shape} at {(z0, y0, x0)} leaves the volume {self.shape}")
        z = z0
        while z < z0 + nz:
            z1 = min(z0 + nz, (z // TILE_SLICES + 1) * TILE_SLICES)
            tile = np.ascontiguousarray(block[z - z0:z1 - z0])
            os.pwrite(self._file.fileno(), memoryview(tile).cast("B"), self._end)
            self._tiles[z // TILE_SLICES].extend((z, y0, x0, *tile.shape, self._end))
            self._end += tile.nbytes
            self._written += tile.size
            z = z1
        self._cached = None

    def finish(self, dtype: Any = None) -> SlabVolume:
        """Check every voxel was written once; readers get ``dtype`` (default: as stored)."""
        if self._written != int(np.prod(self.shape)):
            raise ValueError(f"{self._written} voxels written, the volume has {int(np.prod(self.shape))}")
        self.dtype = np.dtype(dtype) if dtype is not None else self.stored
        return self

    # -- reading ----------------------------------------------------------------------------------
    def slab(self, z0: int, z1: int) -> np.ndarray:
        """Slices ``[z0, z1)`` as a new array (only their tiles are read)."""
        z0, z1 = max(0, z0), min(self.shape[0], z1)
        out = np.empty((max(0, z1 - z0), *self.shape[1:]), dtype=self.stored)
        for b in range(z0 // TILE_SLICES, -(-z1 // TILE_SLICES) if z1 > z0 else 0):
            tiles = self._tiles[b]
            for i in range(0, len(tiles), 7):
                tz, ty, tx, nz, ny, nx, offset = tiles[i:i + 7]
                a, e = max(z0, tz), min(z1, tz + nz)
                if a >= e:
                    continue
                part = np.empty((e - a, ny, nx), dtype=self.stored)
                n = os.preadv(self._file.fileno(), [memoryview(part).cast("B")],
                              offset + (a - tz) * ny * nx * self.stored.itemsize)
                if n != part.nbytes:
                    raise OSError(f"scratch volume: read {n} of {part.nbytes} bytes")
                out[a - z0:e - z0, ty:ty + ny, tx:tx + nx] = part
        return out if self.dtype == self.stored else out.astype(self.dtype)

    def __getitem__(self, key: int | slice) -> np.ndarray:
        """``vol[z]`` (served from the last slab read, so a walk up the slices reads each tile once) or
        ``vol[z0:z1]``, like the array it stands for."""
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise IndexError("a SlabVolume is read in runs of slices")
            z0, z1, _ = key.indices(self.shape[0])
            return self.slab(z0, z1)
        z = int(key)
        if z < 0:
            z += self.shape[0]
        if not 0 <= z < self.shape[0]:
            raise IndexError(f"slice {key} of {self.shape[0]}")
        if self._cached is None or not self._cached[0] <= z < self._cached[0] + len(self._cached[1]):
            start = z // TILE_SLICES * TILE_SLICES
            self._cached = (start, self.slab(start, start + TILE_SLICES))
        return self._cached[1][z - self._cached[0]]

    def close(self) -> None:
        self._cached = None
        self._file.close()

