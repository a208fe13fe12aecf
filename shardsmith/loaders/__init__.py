"""What training and evaluation code imports to read a release.

    rel = open_release("/data/releases", "medical")          # LATEST; also s3://, memory://, ...
    rel.verify()                                              # raises on any mismatch
    table = rel.arrow("records", split="train")
    for sample in rel.webdataset("records", split="train", shuffle=1000):
        ...                                                   # decoded image, boxes, masks
    ds = rel.torch("records", "train")                        # map-style torch Dataset
    loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=collate)
    xrv = rel.xrv("train")                                    # TorchXRayVision-style view
    datalist = rel.monai_datalist("/tmp/nifti", "train")      # NIfTI + MONAI datalist JSON

Releases are read through fsspec, so a local folder, ``file://``, ``memory://`` or (with its
package: s3fs, gcsfs, adlfs) an object store all work the same; the file list comes from the
manifest, never from listing the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.dataset as pads
from fsspec.implementations.local import LocalFileSystem

from shardsmith.hashing import sha256_fileobj
from shardsmith.loaders.batching import collate
from shardsmith.publish.release import verify_tree
from shardsmith.publish.wds_codec import decode_sample

__all__ = ["Release", "ReleaseVerificationError", "VerifyReport", "collate", "open_release"]


class ReleaseVerificationError(RuntimeError):
    pass


@dataclass
class VerifyReport:
    ok: bool
    files: int
    problems: list[str]


class Release:
    """One published version: its manifest and the filesystem (fsspec) it lives on."""

    def __init__(self, path: Path | str, manifest: dict, fs: fsspec.AbstractFileSystem | None = None):
        self.fs = fs or LocalFileSystem()
        self.local = isinstance(self.fs, LocalFileSystem)
        self.root = str(path).rstrip("/")
        self.path: Path | PurePosixPath = Path(self.root) if self.local else PurePosixPath(self.root)
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
        if self.local:
            problems = verify_tree(Path(self.root), self.manifest)
        else:
            problems = self._verify_remote()
        report = VerifyReport(not problems, len(self.manifest["files"]), problems)
        if problems and raise_on_error:
            raise ReleaseVerificationError(f"{self.path}: {len(problems)} problem(s): {problems[:5]}")
        return report

    def _verify_remote(self) -> list[str]:
        problems, listed = [], set()
        for entry in self.manifest["files"]:
            listed.add(entry["path"])
            url = f"{self.root}/{entry['path']}"
            if not self.fs.exists(url):
                problems.append(f"missing: {entry['path']}")
                continue
            with self.fs.open(url, "rb") as fh:
                digest = sha256_fileobj(fh)
            if self.fs.size(url) != entry["size"] or digest != entry["sha256"]:
                problems.append(f"checksum mismatch: {entry['path']}")
        for prefix in ("data", "wds"):
            base = f"{self.root}/{prefix}"
            if self.fs.exists(base):
                for found in self.fs.find(base):
                    rel = found.lstrip("/")[len(self.root.lstrip("/")) + 1:]
                    if rel not in listed:
                        problems.append(f"unlisted file: {rel}")
        return problems

    def _files(self, kind: str, table: str, split: str | None, suffix: str) -> list[str]:
        """Paths of ``<kind>/<table>/<split>/*<suffix>`` from the manifest, sorted."""
        splits = [split] if split else self.splits(table)
        prefixes = tuple(f"{kind}/{table}/{s}/" for s in splits)
        return sorted(f"{self.root}/{e['path']}" for e in self.manifest["files"]
                      if e["path"].startswith(prefixes) and e["path"].endswith(suffix))

    def parquet_files(self, table: str = "records", split: str | None = None) -> list[str]:
        """A table's Parquet parts (paths on ``self.fs``), e.g. for ``datasets.load_dataset``."""
        files = self._files("data", table, split, ".parquet")
        if not files:
            raise FileNotFoundError(f"release {self.version} has no {table!r} rows for split {split!r}")
        return files

    _parquet_files = parquet_files  # the name bench/reading.py uses

    def dataset(self, table: str = "records", split: str | None = None) -> pads.Dataset:
        return pads.dataset(self.parquet_files(table, split), format="parquet",
                            filesystem=None if self.local else self.fs)

    def arrow(self, table: str = "records", split: str | None = None, columns: list[str] | None = None) -> pa.Table:
        return self.dataset(table, split).to_table(columns=columns)

    def pandas(self, table: str = "records", split: str | None = None, columns: list[str] | None = None):
        return self.arrow(table, split, columns).to_pandas()

    def shard_urls(self, table: str = "records", split: str | None = None) -> list[str]:
        """The WebDataset shards: local paths, or ``protocol://path`` URLs for fsspec stores."""
        files = self._files("wds", table, split, ".tar")
        return files if self.local else [self.fs.unstrip_protocol(f) for f in files]

    def webdataset(self, table: str = "records", split: str | None = None, decode: bool = True, *,
                   shuffle: int = 0, nodesplitter: Callable | None = None,
                   workersplitter: Callable | None = None, seed: int = 0):
        """A webdataset pipeline (a torch IterableDataset) streaming the release's shards.

        ``shuffle=N`` shuffles the shard order and samples in an N-sample buffer (0: release order).
        ``nodesplitter`` gives each distributed rank its own shards (default
        ``webdataset.split_by_node``: a no-op without ``torch.distributed``; pass
        ``webdataset.single_node_only`` to refuse multi-node); ``workersplitter`` does the same for
        DataLoader workers (default ``webdataset.split_by_worker``). Shards are opened through
        fsspec, so remote stores stream without a local copy. Decoded samples: ``image`` (numpy
        array), ``boxes`` (N x 4 float32, xyxy), ``labels``, ``masks`` (bool arrays or None),
        ``meta`` (the JSON record); see ``shardsmith.publish.wds_codec``.
        """
        import webdataset as wds

        urls = self.shard_urls(table, split)
        stages: list[Any] = [wds.SimpleShardList(urls, seed=seed if shuffle else None)]
        stages += [nodesplitter or wds.split_by_node, workersplitter or wds.split_by_worker,
                   _fsspec_opener, wds.tariterators.tar_file_expander, wds.tariterators.group_by_keys]
        if shuffle:
            stages.append(wds.filters.shuffle(shuffle, initial=min(shuffle, 100), seed=seed))
        if decode:
            stages.append(wds.filters.map(decode_sample))
        return wds.DataPipeline(*stages)

    def iter_samples(self, table: str = "records", split: str | None = None) -> Iterator[dict]:
        """Decoded samples without webdataset's pipeline machinery (plain tar reading)."""
        import tarfile

        for url in self.shard_urls(table, split):
            with fsspec.open(url, "rb") as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
                group: dict[str, Any] = {}
                current = None
                for member in tar:
                    key, _, ext = member.name.partition(".")
                    if current is not None and key != current:
                        yield decode_sample(group)
                        group = {}
                    current = key
                    group["__key__"] = key
                    group[ext] = tar.extractfile(member).read()
                if group:
                    yield decode_sample(group)

    def torch(self, table: str = "records", split: str | None = None, **kw: Any):
        """A map-style ``torch.utils.data.Dataset`` over a table's rows (random access through the
        Parquet row groups); batch it with ``shardsmith.loaders.collate``. ``grounding`` goes to
        ``shardsmith.loaders.grounding.GroundingDataset`` (image, attention mask, label, size bin)."""
        if table == "grounding":
            from shardsmith.loaders.grounding import GroundingDataset

            return GroundingDataset(self, split, **kw)
        if table == "pairs":  # the two decoded images of each pair and their relation (issue 23)
            from shardsmith.loaders.pairs import PairsDataset

            return PairsDataset(self, split, **kw)
        from shardsmith.loaders.torch_dataset import ReleaseDataset

        return ReleaseDataset(self, table, split, **kw)

    def xrv(self, split: str | None = None, **kw: Any):
        """A TorchXRayVision-style view of ``records``: ``.pathologies`` and items
        ``{"img": 1xHxW float32 in [-1024, 1024], "lab": 1/0/NaN per pathology}``."""
        from shardsmith.loaders.xrv import XRayView

        return XRayView(self, split, **kw)

    def monai_datalist(self, out_dir: str | Path, split: str | None = None) -> Path:
        """Export ``volumes`` as NIfTI (with each volume's affine) plus a MONAI datalist JSON that
        ``LoadImaged(keys=["image", "label"])`` reads; returns the JSON's path."""
        from shardsmith.loaders.nifti import write_monai_datalist

        return write_monai_datalist(self, Path(out_dir), split)


def _fsspec_opener(src: Iterator[dict]) -> Iterator[dict]:
    """webdataset stage: open each shard URL through fsspec (local paths, file://, memory://, s3://)."""
    for sample in src:
        with fsspec.open(sample["url"], "rb") as stream:
            yield {**sample, "stream": stream}


def open_release(root: str | Path, collection: str, version: str = "latest", **storage_options: Any) -> Release:
    """Open ``<root>/<collection>/<version>``; ``latest`` follows the LATEST pointer.

    ``root`` is a local path or any fsspec URL (``file://``, ``memory://``, ``s3://`` with s3fs...);
    ``storage_options`` go to the filesystem (credentials, endpoint).
    """
    fs, base = fsspec.core.url_to_fs(str(root), **storage_options)
    base = f"{base.rstrip('/')}/{collection}"
    if version == "latest":
        latest = f"{base}/LATEST"
        if not fs.isfile(latest):
            raise FileNotFoundError(f"no LATEST in {root}/{collection}: nothing published yet")
        version = fs.cat_file(latest).decode().strip()
    path = f"{base}/{version}"
    mf = f"{path}/manifest.json"
    if not fs.isfile(mf):
        raise FileNotFoundError(f"release {collection}/{version} not found under {root}")
    return Release(path, json.loads(fs.cat_file(mf)), fs)
