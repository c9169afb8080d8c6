"""Freed heap memory goes back to the operating system (glibc, as in the shop's images)."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest

from app.core.memory import release_freed_memory


def resident_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(
    not Path("/proc/self/status").exists() or ctypes.util.find_library("c") is None,
    reason="needs Linux's /proc and a C library",
)
def test_freed_pages_are_given_back() -> None:
    # 2 KiB blocks come from malloc's heap (not mmap); every 64th stays alive, so the
    # heap cannot shrink from its top and only trimming returns the pages in between.
    blocks = [bytearray(2048) for _ in range(40_000)]
    kept = blocks[::64]
    del blocks
    before = resident_kb()
    assert release_freed_memory()
    after = resident_kb()
    assert before - after > 40_000  # of the ~78 MiB freed, most of it returned
    assert len(kept) == 625
