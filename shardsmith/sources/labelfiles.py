"""Reading label tables the way public datasets actually ship them.

Headers and cells are stripped (SIIM's ``" EncodedPixels"``), unnamed trailing columns are
ignored, gzip/zip copies are read transparently, and a file that lacks a required column fails
with an error naming the file and line instead of a KeyError deep in an adapter.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path


class LabelFileError(ValueError):
    """A whole label file is unusable (wrong columns, unreadable); names the file and line."""


def open_text(path: Path) -> io.TextIOBase:
    """Open a label file as text, looking inside .gz and single-member .zip copies."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    if name.endswith(".zip"):
        zf = zipfile.ZipFile(path)
        members = [m for m in zf.namelist() if not m.endswith("/") and not m.startswith("__MACOSX")]
        if len(members) != 1:
            raise LabelFileError(f"{path}: expected one member in the zip, found {members}")
        return io.TextIOWrapper(zf.open(members[0]), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115


def find_label_file(root: Path, *names: str) -> Path | None:
    """First of ``names`` present under ``root`` (also as .gz / .zip copies)."""
    for name in names:
        for suffix in ("", ".gz", ".zip"):
            p = root / f"{name}{suffix}"
            if p.is_file():
                return p
    return None


def read_rows(
    path: Path,
    required: tuple[str, ...],
    fieldnames: list[str] | None = None,
    skip_header: bool = False,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) with stripped keys and values; unnamed columns are dropped."""
    with open_text(path) as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise LabelFileError(f"{path}: line 1: the file is empty") from None
        names = fieldnames if fieldnames is not None else [h.strip() for h in header]
        if fieldnames is not None and not skip_header:
            raise ValueError("fieldnames given without skip_header")
        missing = [c for c in required if c not in names]
        if missing:
            raise LabelFileError(f"{path}: line 1: missing required column(s) {missing}; header is {names}")
        for lineno, cells in enumerate(reader, start=2):
            if not cells or all(not c.strip() for c in cells):
                continue
            row = {}
            for name, cell in zip(names, cells, strict=False):
                if name and not name.startswith("Unnamed") and name not in row:
                    row[name] = cell.strip()
            for name in names[len(cells):]:
                row.setdefault(name, "")
            yield lineno, row


def is_blank(value: str | None) -> bool:
    return value is None or value.strip() in {"", "nan", "NaN"}
