"""Batching ragged samples (boxes and masks differ in count per image) for a torch DataLoader."""

from __future__ import annotations

from typing import Any

import numpy as np


def _mask_stack(masks: list[np.ndarray | None] | None, shape: tuple[int, ...] | None):
    """One sample's masks as an N x H x W bool tensor; a target without a mask is all False."""
    import torch

    if not masks:
        h, w = (shape or (0, 0))[:2]
        return torch.zeros((0, h, w), dtype=torch.bool)
    like = next((m for m in masks if m is not None), None)
    h, w = like.shape if like is not None else (shape or (0, 0))[:2]
    return torch.from_numpy(np.stack([m if m is not None else np.zeros((h, w), bool) for m in masks]))


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate decoded samples: same-shape arrays and numbers are stacked into tensors; ``boxes``
    (N_i x 4) and ``masks`` (N_i x H x W, plus ``has_mask`` N_i bools) stay per-sample lists of
    tensors, since each image has its own number of targets; anything else stays a list."""
    import torch

    out: dict[str, Any] = {}
    keys = [k for k in batch[0] if all(k in b for b in batch)]
    for k in keys:
        values = [b[k] for b in batch]
        if k == "boxes":
            out[k] = [torch.from_numpy(np.asarray(v, np.float32).reshape(-1, 4)) for v in values]
        elif k == "masks":
            shapes = [np.shape(b.get("image")) if b.get("image") is not None else None for b in batch]
            out[k] = [_mask_stack(v, s) for v, s in zip(values, shapes, strict=True)]
            out["has_mask"] = [torch.tensor([m is not None for m in (v or [])], dtype=torch.bool) for v in values]
        elif all(isinstance(v, np.ndarray) for v in values) and len({v.shape for v in values}) == 1 \
                and values[0].dtype.kind in "biuf":
            out[k] = torch.from_numpy(np.stack(values))
        elif all(isinstance(v, torch.Tensor) for v in values) and len({v.shape for v in values}) == 1:
            out[k] = torch.stack(values)
        elif all(isinstance(v, (bool, int, float, np.number)) and not isinstance(v, np.ndarray) for v in values):
            out[k] = torch.tensor(values)
        else:
            out[k] = values
    return out
