"""Export a release's ``volumes`` as NIfTI files plus a MONAI datalist.

Volumes are stored as ``image_npy`` ``[C, Z, Y, X]`` with ``affine_lps`` mapping ``(z, y, x, 1)``
to LPS millimetres (``shardsmith.schemas.volumes``). NIfTI wants ``[i, j, k]`` = ``[X, Y, Z]``
(channels last) and a RAS affine, so the array is transposed and the affine's columns permuted to
``(x, y, z)`` and its first two rows negated (LPS -> RAS). nibabel writes the files with both
sform and qform set, so every reader (nibabel, ITK, MONAI's ``LoadImaged``) agrees on geometry.

The datalist is MONAI's decathlon layout: ``{"training": [...], "validation": [...], "test":
[...]}`` (``monai.data.load_decathlon_datalist``), each item ``{"image", "label"?, "record_id",
"source", "channel_names", "label_names"}`` with paths relative to the JSON file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shardsmith.publish.wds_codec import media_bytes, wds_key

if TYPE_CHECKING:
    from shardsmith.loaders import Release

# Release split -> MONAI decathlon datalist key.
DATALIST_KEYS = {"train": "training", "val": "validation", "test": "test"}
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_COLUMNS = ["record_id", "source", "split", "channel_names", "affine_lps", "image_npy", "label_npy", "label_names"]


def ras_affine_xyz(affine_lps_zyx: list[float] | np.ndarray) -> np.ndarray:
    """The NIfTI affine (``(i, j, k) = (x, y, z)`` -> RAS mm) of a stored ``affine_lps``."""
    m = np.asarray(affine_lps_zyx, dtype=np.float64).reshape(4, 4)
    return _LPS_TO_RAS @ m[:, [2, 1, 0, 3]]


def to_nifti_array(arr: np.ndarray) -> np.ndarray:
    """``[C, Z, Y, X]`` -> ``[X, Y, Z]`` (one channel) or ``[X, Y, Z, C]``; ``[Z, Y, X]`` -> ``[X, Y, Z]``."""
    if arr.ndim == 4:
        out = arr.transpose(3, 2, 1, 0)
        return out[..., 0] if out.shape[-1] == 1 else out
    return arr.transpose(2, 1, 0)


def _save(arr: np.ndarray, affine: np.ndarray, path: Path) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(np.ascontiguousarray(arr), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    nib.save(img, str(path))


def write_monai_datalist(rel: Release, out_dir: Path, split: str | None = None) -> Path:
    """Write ``<out_dir>/<key>_image.nii.gz`` (+ ``_label``) per volume and ``datalist.json``."""
    from shardsmith.loaders.torch_dataset import ParquetRows

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = ParquetRows(rel, rel.parquet_files("volumes", split), _COLUMNS)
    datalist: dict[str, list[dict]] = {}
    for i in range(len(rows)):
        row = rows[i]
        key = wds_key(row["record_id"])
        affine = ras_affine_xyz(row["affine_lps"])
        item = {"record_id": row["record_id"], "source": row["source"],
                "channel_names": row["channel_names"], "label_names": row["label_names"]}
        for col, name in (("image_npy", "image"), ("label_npy", "label")):
            data = media_bytes(row[col])
            if data is None:
                continue
            arr = np.load(io.BytesIO(data), allow_pickle=False)
            path = out_dir / f"{key}_{name}.nii.gz"
            _save(to_nifti_array(arr), affine, path)
            item[name] = path.name
        datalist.setdefault(DATALIST_KEYS.get(row["split"], row["split"]), []).append(item)
    out = out_dir / "datalist.json"
    out.write_text(json.dumps(datalist, indent=2, sort_keys=True))
    return out
