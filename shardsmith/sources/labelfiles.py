"""Reading label tables the way public datasets actually ship them.

Headers and cells are stripped (SIIM's ``" EncodedPixels"``), unnamed trailing columns are
ignored, gzip/zip copies are read transparently, and a file that lacks a required column fails
with an error naming the file and line instead of a KeyError deep in an adapter.

Encodings (``decode_label_bytes``): a byte-order mark decides first (UTF-8, UTF-16 LE/BE; UTF-32 is
refused); without one the bytes must be strict UTF-8. Latin-1 is the fallback only for bytes that are
not valid UTF-8 *and* hold no valid UTF-8 multi-byte sequence at all: Latin-1 decodes any byte string,
so a UTF-8 file with a flipped or cut byte would otherwise turn into silently wrong text. A UTF-8 file
with one bad byte is therefore an error naming its line, never mojibake. After decoding, control
characters (NUL from a UTF-16 file without a BOM, binary garbage; C1 controls in the Latin-1 case)
are refused too. Every failure is a ``LabelFileError`` naming file, line and problem.

Rows: a row with fewer cells than the header (a truncated file's last line, a dropped cell) or with
extra non-empty cells is a ``BadRow``; so is a last row without a line break after it, because a file
cut inside its last cell still has every cell, one of them shorter (``50.0`` read as ``5``). Every
public label file we read ends with a line break, so this costs a legitimate file at most one row,
reported, never a silently wrong value. Callers pass a list to collect them (and quarantine each
row), otherwise the first one raises. A quoted cell running over several lines (an unbalanced quote)
makes row boundaries untrustworthy and fails the whole file.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardsmith.errors import LabelFileError
from shardsmith.schemas.quarantine import quarantine_row


@dataclass
class BadRow:
    """A label row whose cell count does not fit the header; quarantined by the adapter."""

    line: int
    reason: str  # too_few_cells | too_many_cells
    problem: str
    row: dict[str, str] = field(default_factory=dict)  # the named cells it does have


# UTF-32 first: its little-endian BOM starts with UTF-16's.
_BOMS = ((codecs.BOM_UTF32_LE, None), (codecs.BOM_UTF32_BE, None), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# A valid UTF-8 multi-byte sequence (2-4 bytes); its presence rules out a Latin-1 file.
_UTF8_MULTI = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # tab, LF, FF and CR are text
_C1 = re.compile(r"[\x80-\x9f]")
_READ_CHUNK = 1 << 20
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _line_at(data: bytes | str, pos: int) -> int:
    return data.count(b"\n" if isinstance(data, bytes) else "\n", 0, pos) + 1


def read_label_bytes(path: Path) -> bytes:
    """The bytes of a label file, from inside .gz and single-member .zip copies.

    A truncated or corrupt archive is a LabelFileError naming the line reached when it broke.
    """
    name = path.name.lower()
    buf = bytearray()
    try:
        if name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                while block := fh.read(_READ_CHUNK):
                    buf += block
        elif name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if not m.endswith("/") and not m.startswith("__MACOSX")]
                if len(members) != 1:
                    raise LabelFileError(f"{path}: line 1: expected one member in the zip, found {members}")
                with zf.open(members[0]) as fh:
                    while block := fh.read(_READ_CHUNK):
                        buf += block
        else:
            return path.read_bytes()
    except (EOFError, OSError, zlib.error, zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
        raise LabelFileError(f"{path}: line {_line_at(bytes(buf), len(buf))}: truncated or corrupt archive "
                             f"({e.__class__.__name__}: {e})") from e
    return bytes(buf)


def decode_label_bytes(data: bytes, path: Path | str) -> str:
    """Decode a label file by the rule in the module docstring; LabelFileError when it is not text."""
    encoding = None
    for bom, enc in _BOMS:
        if data.startswith(bom):
            if enc is None:
                raise LabelFileError(f"{path}: line 1: UTF-32 text is not supported; re-save as UTF-8")
            encoding = enc
            break
    latin1 = False
    if encoding == "utf-16":
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as e:
            partial = data[: e.start].decode("utf-16", errors="replace")
            raise LabelFileError(f"{path}: line {_line_at(partial, len(partial))}: not valid UTF-16 "
                                 f"({e.reason} at byte {e.start}; truncated?)") from e
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            if encoding is not None or _UTF8_MULTI.search(data):
                raise LabelFileError(f"{path}: line {_line_at(data, e.start)}: not valid UTF-8 ({e.reason} at byte "
                                     f"{e.start}) although the file holds UTF-8 text elsewhere: corrupted") from e
            nul = data.find(bytes(1))
            if nul >= 0:
                raise LabelFileError(f"{path}: line {_line_at(data, nul)}: NUL bytes in a file "
                                     "without a UTF-16 byte-order mark (binary, or UTF-16 saved without a BOM)") from e
            text, latin1 = data.decode("latin-1"), True
    bad = _CONTROL.search(text) or (_C1.search(text) if latin1 else None)
    if bad:
        what = "NUL byte" if bad.group() == "\x00" else f"control character {bad.group()!r}"
        hint = " (UTF-16 saved without a byte-order mark?)" if bad.group() == "\x00" else " (binary data?)"
        raise LabelFileError(f"{path}: line {_line_at(text, bad.start())}: {what} in a text label file{hint}")
    return text


def read_label_text(path: Path) -> str:
    """A label file's text (see the module docstring for the encodings read)."""
    return decode_label_bytes(read_label_bytes(path), path)


def open_text(path: Path) -> io.TextIOBase:
    """A label file as a text stream (decoded whole: label files are megabytes, not gigabytes)."""
    return io.StringIO(read_label_text(path), newline="")


def read_json(path: Path) -> Any:
    """A JSON label file; a file that does not parse is a LabelFileError naming the line."""
    text = read_label_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelFileError(f"{path}: line {e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from e
    except RecursionError as e:
        raise LabelFileError(f"{path}: line 1: JSON nested too deeply") from e


def find_label_file(root: Path, *names: str) -> Path | None:
    """First of ``names`` present under ``root`` (also as .gz / .zip copies)."""
    for name in names:
        for suffix in ("", ".gz", ".zip"):
            p = root / f"{name}{suffix}"
            if p.is_file():
                return p
    return None


def _placeholder(name: str) -> bool:
    """A header name that labels no data (Excel's trailing commas, pandas' index, our ``_n`` fillers)."""
    return not name or name.startswith(("Unnamed", "_"))


def read_cells(
    path: Path,
    required: tuple[str, ...],
    fieldnames: list[str] | None = None,
    skip_header: bool = False,
    bad_rows: list[BadRow] | None = None,
    delimiter: str = ",",
) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """(column names, iterator of (line, cells)) with the checks of ``read_rows`` but no dict per row.

    The header is read (and checked) at once; rows are checked as they are consumed.
    """
    if fieldnames is not None and not skip_header:
        raise ValueError("fieldnames given without skip_header")
    text = read_label_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise LabelFileError(f"{path}: line 1: the file is empty") from None
    except csv.Error as e:
        raise LabelFileError(f"{path}: line 1: {e}") from e
    names = fieldnames if fieldnames is not None else [h.strip() for h in header]
    missing = [c for c in required if c not in names]
    if missing:
        raise LabelFileError(f"{path}: line 1: missing required column(s) {missing}; header is {names}")
    width = len(names)
    least = width
    while least and _placeholder(names[least - 1]):
        least -= 1
    unterminated = len(_LINE_BREAK.findall(text)) + 1 if text and not text.endswith(("\n", "\r")) else None
    return names, _rows(path, reader, names, least, bad_rows, unterminated)


def _rows(path: Path, reader: Any, names: list[str], least: int, bad_rows: list[BadRow] | None,
          unterminated: int | None) -> Iterator[tuple[int, list[str]]]:
    """Checked rows; ``unterminated`` is the number of the file's last line when no line break ends it."""
    width = len(names)
    last = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise LabelFileError(f"{path}: line {reader.line_num}: {e} (an unbalanced quote?)") from e
        start, last = last + 1, reader.line_num
        if last > start and any("\n" in c or "\r" in c for c in cells):
            raise LabelFileError(f"{path}: line {start}: a quoted cell runs over lines {start}-{last} (an "
                                 "unbalanced quote?); row boundaries cannot be trusted")
        if not cells or all(not c.strip() for c in cells):
            continue
        problem = None
        if len(cells) < least:
            problem = ("too_few_cells", f"{len(cells)} cells, the header has {least}: a cut or truncated row")
        elif len(cells) > width and any(c.strip() for c in cells[width:]):
            problem = ("too_many_cells", f"{len(cells)} cells, the header has {width}: a cell too many")
        elif last == unterminated:
            problem = ("unterminated_last_row", "the file ends inside this row (no line break after it): "
                                                "it may be cut short")
        if problem:
            row = {n: c.strip() for n, c in zip(names, cells, strict=False) if not _placeholder(n)}
            if bad_rows is None:
                raise LabelFileError(f"{path}: line {start}: {problem[1]}")
            bad_rows.append(BadRow(start, problem[0], problem[1], row))
            continue
        yield start, cells


def read_rows(
    path: Path,
    required: tuple[str, ...],
    fieldnames: list[str] | None = None,
    skip_header: bool = False,
    bad_rows: list[BadRow] | None = None,
    delimiter: str = ",",
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) with stripped keys and values; unnamed columns are dropped.

    Rows whose cell count does not fit the header go to ``bad_rows`` (or raise when it is None).
    """
    names, rows = read_cells(path, required, fieldnames, skip_header, bad_rows, delimiter)
    for lineno, cells in rows:
        row: dict[str, str] = {}
        for name, cell in zip(names, cells, strict=False):
            if not _placeholder(name) and name not in row:
                row[name] = cell.strip()
        for name in names[len(cells):]:
            if not _placeholder(name):
                row.setdefault(name, "")
        yield lineno, row


def bad_row_quarantine(source: str, path: Path, bad: BadRow, id_column: str,
                       public: Callable[[str], str] = lambda s: s) -> dict:
    """The quarantine row of one BadRow, naming file and line (and the row's id when it has one)."""
    native = bad.row.get(id_column) or None
    return quarantine_row(source, "labels", bad.reason, f"{path.name}:{bad.line}: {bad.problem}",
                          public(native) if native else None, path.name)


def is_blank(value: str | None) -> bool:
    return value is None or value.strip() in {"", "nan", "NaN"}
