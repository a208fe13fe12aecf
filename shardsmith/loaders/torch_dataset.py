"""A map-style PyTorch ``Dataset`` over one table of a release, read from its Parquet parts.

Random access goes through Parquet row groups: an index of (file, row group, rows) is built from
the footers once, and a small cache keeps the last row groups read, so sequential and shuffled
sampling both avoid reading a whole table into memory. Rows decode exactly as their WebDataset
samples do (``shardsmith.publish.wds_codec``). Files are opened per process, so DataLoader workers
(fork or spawn) each get their own handles.
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from torch.utils.data import Dataset

from shardsmith.publish.wds_codec import decode_row
from shardsmith.schemas.tables import TABLES

if TYPE_CHECKING:
    from shardsmith.loaders import Release

CACHED_ROW_GROUPS = 4


class ParquetRows:
    """Row ``i`` of a list of Parquet files (fsspec paths), as a Python dict."""

    def __init__(self, rel: Release, files: list[str], columns: list[str] | None = None):
        self.rel, self.files, self.columns = rel, files, columns
        self._groups: list[tuple[int, int]] = []  # (file index, row group)
        self._starts: list[int] = []
        total = 0
        for fi in range(len(files)):
            meta = self._open(fi).metadata
            for rg in range(meta.num_row_groups):
                self._groups.append((fi, rg))
                self._starts.append(total)
                total += meta.row_group(rg).num_rows
        self.length = total
        self._cache: OrderedDict[int, pa.Table] = OrderedDict()

    def _open(self, fi: int) -> pq.ParquetFile:
        handles = getattr(self, "_handles", None)
        if handles is None or handles[0] != os.getpid():
            handles = self._handles = (os.getpid(), {})
        if fi not in handles[1]:
            path = self.files[fi]
            source = path if self.rel.local else self.rel.fs.open(path, "rb")
            handles[1][fi] = pq.ParquetFile(source, memory_map=self.rel.local)
        return handles[1][fi]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_handles", None)
        state["_cache"] = OrderedDict()
        return state

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        if not -self.length <= i < self.length:
            raise IndexError(i)
        i %= self.length
        g = bisect.bisect_right(self._starts, i) - 1
        table = self._cache.get(g)
        if table is None:
            fi, rg = self._groups[g]
            table = self._open(fi).read_row_group(rg, columns=self.columns)
            self._cache[g] = table
            while len(self._cache) > CACHED_ROW_GROUPS:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(g)
        return table.slice(i - self._starts[g], 1).to_pylist()[0]


class ReleaseDataset(Dataset):
    """``rel.torch(table, split)``: item ``i`` is row ``i`` decoded (``meta``, ``image``/arrays,
    ``boxes``/``labels``/``masks`` for records), then passed through ``transform`` if given."""

    def __init__(self, rel: Release, table: str = "records", split: str | None = None,
                 transform: Callable[[dict], Any] | None = None, columns: list[str] | None = None):
        self.rel, self.table, self.split, self.transform = rel, table, split, transform
        self.spec = TABLES[table]
        self.rows = ParquetRows(rel, rel.parquet_files(table, split), columns)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Any:
        item = decode_row(self.rows[i], self.spec)
        return self.transform(item) if self.transform else item
