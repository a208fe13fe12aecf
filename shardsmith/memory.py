"""Giving freed memory back to the operating system between the chunks of a long step.

pandas and NumPy allocate through glibc's malloc, which keeps freed blocks in its arenas: after a
validation chunk of 10,000 records is dropped, the process stays as large as its largest chunk,
and fragmentation lets it creep up from chunk to chunk. ``trim()`` asks glibc to return what is
free (``malloc_trim(0)``; elsewhere, macOS or musl, that part does nothing), and Arrow's pool to
release its unused pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def trim() -> None:
    """Return free heap memory to the OS: Arrow's pool's unused pages, then glibc's free blocks."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
