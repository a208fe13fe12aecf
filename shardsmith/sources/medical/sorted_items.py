"""Labelled items in native-id order without holding them all: sorted runs spilled to temporary
files and merged lazily (sources of 10^5 label rows, NIH and CheXpert, stream through it)."""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from shardsmith.sources.medical.items import LabelledItem


class SpilledItem:
    """A labelled item read back from a spilled run: its id, image path and JSON text, which is all
    the catalog writes (``to_json`` returns the text as written). Any other field decodes the item
    from the text on access, so code that reads the fields still sees a ``LabelledItem``'s values."""

    __slots__ = ("native_id", "image_relpath", "_json")

    def __init__(self, native_id: str, image_relpath: str | None, text: str) -> None:
        self.native_id, self.image_relpath, self._json = native_id, image_relpath, text

    def to_json(self) -> str:
        return self._json

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(LabelledItem.from_json(self._json), name)


class SortedItems:
    """Labelled items in native-id order (stable: equal ids keep their arrival order), holding at
    most ``run_items`` of them: a full run is sorted and written, as (id, JSON text) pairs, to a
    temporary file, and :meth:`merged` merges the runs lazily into :class:`SpilledItem` s. A source
    smaller than one run never touches the disk and yields its own items. ``ids`` collects every
    native id seen (the catalog needs them to find unlabelled images)."""

    PICKLE_BATCH = 256  # rows per pickle: one call per row would cost more than the sort

    def __init__(self, run_items: int = 16_384) -> None:
        self.run_items = run_items
        self.buffer: list[tuple[str, int, LabelledItem]] = []
        self.runs: list[IO[bytes]] = []
        self.ids: set[str] = set()
        self.count = 0

    def add(self, item: LabelledItem) -> None:
        self.buffer.append((item.native_id, self.count, item))
        self.ids.add(item.native_id)
        self.count += 1
        if len(self.buffer) >= self.run_items:
            self._spill()

    def _spill(self) -> None:
        self.buffer.sort(key=_run_key)
        rows = [(nid, seq, it.image_relpath, it.to_json()) for nid, seq, it in self.buffer]
        self.buffer = []
        fh = tempfile.TemporaryFile(prefix="shardsmith-labels-")  # noqa: SIM115  # closed by merged()
        for i in range(0, len(rows), self.PICKLE_BATCH):
            pickle.dump(rows[i:i + self.PICKLE_BATCH], fh, protocol=pickle.HIGHEST_PROTOCOL)
        fh.seek(0)
        self.runs.append(fh)

    @staticmethod
    def _read(fh: IO[bytes]) -> Iterator[tuple[str, int, str | None, str]]:
        try:
            while True:
                try:
                    batch = pickle.load(fh)
                except EOFError:
                    return
                yield from batch
        finally:
            fh.close()

    def merged(self) -> Iterator[LabelledItem | SpilledItem]:
        """Every item once, in order; each is released as it is yielded."""
        if not self.runs:
            buffer, self.buffer = self.buffer, []
            buffer.sort(key=_run_key)
            buffer.reverse()
            while buffer:
                yield buffer.pop()[2]
            return
        if self.buffer:
            self._spill()
        runs, self.runs = self.runs, []
        for nid, _seq, relpath, text in heapq.merge(*(self._read(fh) for fh in runs), key=_run_key):
            yield SpilledItem(nid, relpath, text)


def _run_key(entry: tuple) -> tuple[str, int]:
    return entry[0], entry[1]
