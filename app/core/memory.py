"""Giving freed heap memory back to the operating system.

glibc's malloc keeps the pages a process freed for its own reuse: after a large short-lived
allocation (reading and indexing the whole catalogue, once per catalogue version) a
long-lived worker would carry that peak in its resident memory for the rest of its life.
`malloc_trim(0)` hands the free pages back. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_trim = _malloc_trim()


def release_freed_memory() -> bool:
    """Return the heap's free pages; whether the C library can. Takes milliseconds: for
    after a large allocation, not for every request."""
    if _trim is None:
        return False
    _trim(0)
    return True
