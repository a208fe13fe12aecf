"""The one place that hashes files: streamed (``hashlib.file_digest``), so a long video or a
large DICOM is never read into memory whole just to be checksummed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

SMALL_FILE = 1 << 18  # file_digest's own buffer size: below it one read is cheaper than streaming


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, streamed (a small file in one unbuffered read: a tree of
    200,000 small images spent most of its hashing time on per-call buffers)."""
    with open(path, "rb", buffering=0) as fh:
        head = fh.read(SMALL_FILE)
        if len(head) < SMALL_FILE:
            return hashlib.sha256(head).hexdigest()
        h = hashlib.sha256(head)
        return hashlib.file_digest(fh, lambda: h).hexdigest()


def sha256_files(paths: Iterable[str | Path]) -> str:
    """SHA-256 of the files' bytes one after another, streamed: equal to hashing their
    concatenation, so digests recorded before streaming stay valid."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            hashlib.file_digest(fh, lambda: h)  # feeds the shared hash object in fixed-size blocks
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_fileobj(fh: BinaryIO) -> str:
    """Hex SHA-256 of an open binary file (local or fsspec), streamed."""
    try:
        return hashlib.file_digest(fh, "sha256").hexdigest()
    except (TypeError, ValueError, AttributeError):  # a stream without readinto(): plain reads
        h = hashlib.sha256()
        while block := fh.read(1 << 20):
            h.update(block)
        return h.hexdigest()
