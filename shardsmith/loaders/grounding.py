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

import pyarrow as pa
import torch
from torch.utils.data import Dataset

from shardsmith.loaders.record_images import RecordImages
from shardsmith.loaders.record_images import image_tensor as _image_tensor
from shardsmith.media.masks import coco_rle_decode

GROUNDING_COLUMNS = ["grounding_id", "record_id", "source", "split", "label", "derived", "mask_rle", "boxes",
                     "area_fraction", "size_bin", "phrase", "sex", "age_band", "height", "width"]


class GroundingDataset(RecordImages, Dataset):
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
