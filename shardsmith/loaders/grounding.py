"""A PyTorch map-style dataset over a release's ``grounding`` table, joined with the record images.

    ds = GroundingDataset(rel, split="test")
    item = ds[0]   # image (C x H x W), mask (H x W bool: union of the regions), label, size_bin, ...

Grounding benchmarks score a saliency map against ``mask`` per label and report by ``size_bin``;
explanation-guided training uses ``mask`` as the human attention map. Images are read on demand:
the constructor indexes where each record's row sits (record ids only), and ``__getitem__`` reads
that one row's image from its Parquet row group, keeping the last few row groups cached, so memory
stays flat whatever the release size and DataLoader workers each open their own files.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from shardsmith.media.masks import coco_rle_decode

GROUNDING_COLUMNS = ["grounding_id", "record_id", "source", "split", "label", "derived", "mask_rle", "boxes",
                     "area_fraction", "size_bin", "phrase", "sex", "age_band", "height", "width"]


def _image_tensor(png: bytes) -> torch.Tensor:
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


class GroundingDataset(Dataset):
    """Items: ``image``, ``mask``, ``label``, ``size_bin``, ``boxes`` (N x 4), ``phrase`` and ids.

    ``labels`` keeps only those labels; ``include_derived=False`` drops parent roll-up rows;
    ``transform`` is applied to the finished item dict.
    """

    def __init__(
        self,
        release: Any,
        split: str | None = None,
        labels: Sequence[str] | None = None,
        include_derived: bool = True,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache_row_groups: int = 4,
    ) -> None:
        self.release = release
        table = release.arrow("grounding", split=split, columns=GROUNDING_COLUMNS)
        rows = table.to_pylist()
        if labels is not None:
            wanted = set(labels)
            rows = [r for r in rows if r["label"] in wanted]
        if not include_derived:
            rows = [r for r in rows if not r["derived"]]
        self.rows = rows
        self.transform = transform
        self._cache: OrderedDict[tuple[str, int], pa.Table] = OrderedDict()
        self._cache_size = max(1, cache_row_groups)
        self._index = self._index_records({r["record_id"] for r in rows}, {r["split"] for r in rows})

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
            raise KeyError(f"{len(missing)} grounding record(s) have no row in records, e.g. {sorted(missing)[:3]}")
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

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        path, group, offset = self._index[row["record_id"]]
        image = self._row_group(path, group).column("image")[offset].as_py()
        mask = coco_rle_decode(row["mask_rle"])
        item = {
            "image": _image_tensor(image["bytes"]),
            "mask": torch.from_numpy(mask),
            "label": row["label"],
            "size_bin": row["size_bin"],
            "area_fraction": row["area_fraction"],
            "boxes": torch.tensor(row["boxes"] or [], dtype=torch.float32).reshape(-1, 4),
            "phrase": row["phrase"],
            "derived": row["derived"],
            "record_id": row["record_id"],
            "grounding_id": row["grounding_id"],
        }
        if item["image"].shape[-2:] != item["mask"].shape:
            raise ValueError(f"{row['grounding_id']}: image {tuple(item['image'].shape)} and mask "
                             f"{tuple(mask.shape)} disagree")
        return self.transform(item) if self.transform else item
