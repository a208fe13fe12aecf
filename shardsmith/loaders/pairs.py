"""A PyTorch map-style dataset over a release's ``pairs`` table: two decoded radiographs of one
patient and how they relate (anatomical-consistency pretraining: ACE, PEAC).

    ds = PairsDataset(rel, split="train", relations=["same_study_other_view"])
    item = ds[0]   # image_a, image_b (C x H x W), relation, view_a, view_b, days_between, ids
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from torch.utils.data import Dataset

from shardsmith.loaders.record_images import RecordImages

PAIR_COLUMNS = ["pair_id", "source", "patient_id", "split", "relation", "record_id_a", "record_id_b", "view_a",
                "view_b", "study_order_a", "study_order_b", "days_between"]


class PairsDataset(RecordImages, Dataset):
    """Items: ``image_a``, ``image_b``, ``relation``, ``view_a``, ``view_b``, ``days_between`` and
    the ids. ``relations`` keeps only those relations; ``transform`` is applied to the item dict."""

    def __init__(self, release: Any, split: str | None = None, relations: Sequence[str] | None = None,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 cache_row_groups: int = 4) -> None:
        self.release = release
        rows = release.arrow("pairs", split=split, columns=PAIR_COLUMNS).to_pylist()
        if relations is not None:
            wanted = set(relations)
            rows = [r for r in rows if r["relation"] in wanted]
        self.rows = rows
        self.transform = transform
        self._cache: OrderedDict[tuple[str, int], pa.Table] = OrderedDict()
        self._cache_size = max(1, cache_row_groups)
        needed = {r["record_id_a"] for r in rows} | {r["record_id_b"] for r in rows}
        self._index = self._index_records(needed, {r["split"] for r in rows})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        item = {"image_a": self.record_image(self._index, row["record_id_a"]),
                "image_b": self.record_image(self._index, row["record_id_b"]),
                **{k: row[k] for k in PAIR_COLUMNS}}
        return self.transform(item) if self.transform else item
