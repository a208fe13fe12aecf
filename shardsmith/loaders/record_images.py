"""Record images for loaders over tables that refer to records (``grounding``, ``pairs``): where
each record's row sits (record ids only are read) and its image read on demand from its Parquet
row group, the last few row groups cached, so memory stays flat whatever the release size."""

from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch


def image_tensor(png: bytes) -> torch.Tensor:
    """C x H x W: uint8 images stay uint8 (what most models normalise from); deeper ones become float32."""
    arr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("record image could not be decoded")
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr[..., ::-1].transpose(2, 0, 1)  # OpenCV's BGR -> RGB, channels first
    arr = np.ascontiguousarray(arr)
    return torch.from_numpy(arr if arr.dtype == np.uint8 else arr.astype(np.float32))


class RecordImages:
    """Mixin: ``release``, ``_cache`` and ``_cache_size`` are set by the dataset's constructor."""

    release: object
    _cache: OrderedDict[tuple[str, int], pa.Table]
    _cache_size: int

    def _index_records(self, needed: set[str], splits: set[str]) -> dict[str, tuple[str, int, int]]:
        """record_id -> (parquet file, row group, row within it), reading only the record_id column."""
        index: dict[str, tuple[str, int, int]] = {}
        for split in sorted(splits):
            for path in self.release.dataset("records", split).files:
                pf = pq.ParquetFile(path)
                for g in range(pf.num_row_groups):
                    ids = pf.read_row_group(g, columns=["record_id"]).column(0).to_pylist()
                    for i, rid in enumerate(ids):
                        if rid in needed:
                            index[rid] = (path, g, i)
        missing = needed - set(index)
        if missing:
            raise KeyError(f"{len(missing)} referenced record(s) have no row in records, e.g. {sorted(missing)[:3]}")
        return index

    def _row_group(self, path: str, group: int) -> pa.Table:
        key = (path, group)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        table = pq.ParquetFile(path).read_row_group(group, columns=["record_id", "image"])
        self._cache[key] = table
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return table

    def record_image(self, index: dict[str, tuple[str, int, int]], record_id: str) -> torch.Tensor:
        """The decoded image of one indexed record (C x H x W)."""
        path, group, offset = index[record_id]
        return image_tensor(self._row_group(path, group).column("image")[offset].as_py()["bytes"])
