"""A TorchXRayVision-style view of a release's chest radiographs.

TorchXRayVision (TXV) datasets expose ``pathologies`` and items ``{"img", "lab"}``: ``img`` is a
``1 x H x W`` float32 image scaled from the stored bit depth onto ``[-1024, 1024]`` (TXV's
``normalize``), ``lab`` one value per pathology: 1 present, 0 absent, NaN unknown. Here "unknown"
is exact: a source's explicit ``absent`` gives 0, its ``uncertain`` or a label it never reads
gives NaN, so a model trained on several sources masks what a source cannot say. A present
finding also marks its vocabulary ancestors present (``nodule`` -> ``nodule_or_mass``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shardsmith.publish.wds_codec import media_bytes
from shardsmith.schemas.vocabulary import load_vocabulary

if TYPE_CHECKING:
    from shardsmith.loaders import Release

TXV_RANGE = 1024.0
RADIOGRAPH_MODALITIES = ("CR", "DX")
STATUS_VALUE = {"present": 1.0, "absent": 0.0, "uncertain": np.nan}
_COLUMNS = ["record_id", "source", "modality", "findings", "image"]


def normalise(img: np.ndarray, maxval: float) -> np.ndarray:
    """TXV's scaling: ``[0, maxval]`` -> ``[-1024, 1024]`` as float32."""
    return ((img.astype(np.float32) / maxval) * 2.0 - 1.0) * TXV_RANGE


class XRayView:
    """``rel.xrv(split)``: radiograph records (modality CR/DX) with TXV-style items.

    ``pathologies`` defaults to every canonical finding present somewhere in the view, sorted;
    pass a list (e.g. TXV's own names mapped to canonical labels) to fix the order.
    """

    def __init__(self, rel: Release, split: str | None = None, pathologies: Sequence[str] | None = None,
                 transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 modalities: Sequence[str] = RADIOGRAPH_MODALITIES):
        from shardsmith.loaders.torch_dataset import ParquetRows

        self.rel, self.split, self.transform = rel, split, transform
        meta = rel.arrow("records", split, columns=["record_id", "source", "modality", "findings"]).to_pylist()
        keep = [i for i, r in enumerate(meta) if r["modality"] in modalities]
        self.index = keep
        self.csv = [meta[i] for i in keep]  # TXV datasets keep their label table as ``csv``
        vocab = load_vocabulary()
        self._ancestors = {lab: vocab.ancestors(lab) for lab in vocab.canonical}
        if pathologies is None:
            present = {lab for r in self.csv for f in r["findings"] or () if f["status"] == "present"
                       for lab in [f["label"], *self._ancestors.get(f["label"], [])]}
            pathologies = sorted(lab for lab in present if lab in vocab.canonical
                                 and vocab.canonical[lab].category != "anatomy")
        self.pathologies = list(pathologies)
        self.labels = np.stack([self._label(r) for r in self.csv]) if self.csv else \
            np.zeros((0, len(self.pathologies)), np.float32)
        self.rows = ParquetRows(rel, rel.parquet_files("records", split), _COLUMNS)

    def _label(self, row: dict) -> np.ndarray:
        lab = np.full(len(self.pathologies), np.nan, np.float32)
        pos = {p: i for i, p in enumerate(self.pathologies)}
        for f in sorted(row["findings"] or (), key=lambda f: f["status"] == "present"):
            for name in [f["label"]] + (self._ancestors.get(f["label"], []) if f["status"] == "present" else []):
                if name in pos and not lab[pos[name]] == 1.0:
                    lab[pos[name]] = STATUS_VALUE[f["status"]]
        return lab

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import cv2

        row = self.rows[self.index[i]]
        img = cv2.imdecode(np.frombuffer(media_bytes(row["image"]), np.uint8), cv2.IMREAD_UNCHANGED)
        maxval = float(np.iinfo(img.dtype).max)
        if img.ndim == 3:
            img = img.mean(axis=2)
        img = normalise(img, maxval)[None, :, :]
        if self.transform is not None:
            img = self.transform(img)
        return {"idx": i, "img": img, "lab": self.labels[i], "record_id": row["record_id"]}
