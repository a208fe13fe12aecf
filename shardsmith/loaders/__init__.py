"""What training and evaluation code imports to read a release.

    rel = open_release("/data/releases", "medical")          # LATEST
    rel.verify()                                              # raises on any mismatch
    table = rel.arrow("records", split="train")
    for sample in rel.webdataset("records", split="train"):  # decoded image, boxes, masks
        ...
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from shardsmith.publish.release import read_latest, verify_tree


class ReleaseVerificationError(RuntimeError):
    pass


@dataclass
class VerifyReport:
    ok: bool
    files: int
    problems: list[str]


class Release:
    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def tables(self) -> list[str]:
        return [t for t, splits in self.manifest["row_counts"].items() if splits]

    def splits(self, table: str = "records") -> list[str]:
        return list(self.manifest["row_counts"].get(table, {}))

    def verify(self, raise_on_error: bool = True) -> VerifyReport:
        """Re-hash every file in the manifest; a tampered, missing or extra shard fails."""
        problems = verify_tree(self.path, self.manifest)
        report = VerifyReport(not problems, len(self.manifest["files"]), problems)
        if problems and raise_on_error:
            raise ReleaseVerificationError(f"{self.path}: {len(problems)} problem(s): {problems[:5]}")
        return report

    def _parquet_files(self, table: str, split: str | None) -> list[str]:
        splits = [split] if split else self.splits(table)
        files = []
        for s in splits:
            files += sorted(str(p) for p in (self.path / "data" / table / s).glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"release {self.version} has no {table!r} rows for split {split!r}")
        return files

    def dataset(self, table: str = "records", split: str | None = None) -> pads.Dataset:
        return pads.dataset(self._parquet_files(table, split), format="parquet")

    def arrow(self, table: str = "records", split: str | None = None, columns: list[str] | None = None) -> pa.Table:
        return self.dataset(table, split).to_table(columns=columns)

    def pandas(self, table: str = "records", split: str | None = None, columns: list[str] | None = None):
        return self.arrow(table, split, columns).to_pandas()

    def shard_urls(self, table: str = "records", split: str | None = None) -> list[str]:
        splits = [split] if split else self.splits(table)
        return [str(p) for s in splits for p in sorted((self.path / "wds" / table / s).glob("*.tar"))]

    def webdataset(self, table: str = "records", split: str | None = None, decode: bool = True):
        """A webdataset pipeline over the release's shards (a torch IterableDataset when torch is
        installed). Decoded samples: ``image`` (numpy array), ``boxes`` (N x 4 float32, xyxy),
        ``labels``, ``masks`` (list of bool arrays or None), ``meta`` (the JSON record)."""
        import webdataset as wds

        ds = wds.WebDataset(self.shard_urls(table, split), shardshuffle=False, empty_check=False)
        if decode:
            ds = ds.map(_decode_sample)
        return ds

    def iter_samples(self, table: str = "records", split: str | None = None) -> Iterator[dict]:
        """Decoded samples without webdataset's pipeline machinery (plain tar reading)."""
        import tarfile

        for url in self.shard_urls(table, split):
            with tarfile.open(url) as tar:
                group: dict[str, Any] = {}
                current = None
                for member in tar:
                    key, _, ext = member.name.partition(".")
                    if current is not None and key != current:
                        yield _decode_sample(group)
                        group = {}
                    current = key
                    group["__key__"] = key
                    group[ext] = tar.extractfile(member).read()
                if group:
                    yield _decode_sample(group)


def _decode_sample(sample: dict) -> dict:
    import cv2

    meta = json.loads(sample["json"])
    out: dict[str, Any] = {"key": sample["__key__"], "meta": meta}
    if "png" in sample:
        arr = np.frombuffer(sample["png"], np.uint8)
        out["image"] = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED)
    for ext in ("image.npy", "label.npy"):
        if ext in sample:
            out[ext.split(".")[0] if ext == "image.npy" else "label"] = np.load(io.BytesIO(sample[ext]))
    if "flac" in sample:
        out["audio_flac"] = sample["flac"]
    targets = meta.get("targets")
    if targets is not None:
        out["boxes"] = np.array([t["box_xyxy"] or [np.nan] * 4 for t in targets], np.float32).reshape(-1, 4)
        out["labels"] = [t["label"] for t in targets]
        out["masks"] = [_decode_rle(t["mask_rle"]) if t.get("mask_rle") else None for t in targets]
    return out


def _decode_rle(rle: dict) -> np.ndarray:
    from pycocotools import mask as cocomask

    return cocomask.decode({"size": list(rle["size"]), "counts": rle["counts"].encode()}).astype(bool)


def open_release(root: str | Path, collection: str, version: str = "latest") -> Release:
    """Open ``<root>/<collection>/<version>``; ``latest`` follows the LATEST pointer."""
    root_str = str(root)
    if "://" in root_str and not root_str.startswith("file://"):
        raise NotImplementedError("remote release roots: mount them through fsspec first (see README)")
    base = Path(root_str.removeprefix("file://")) / collection
    if version == "latest":
        v = read_latest(base)
        if v is None:
            raise FileNotFoundError(f"no LATEST in {base}: nothing published yet")
        version = v
    path = base / version
    mf = path / "manifest.json"
    if not mf.is_file():
        raise FileNotFoundError(f"release {collection}/{version} not found under {root}")
    return Release(path, json.loads(mf.read_text()))
