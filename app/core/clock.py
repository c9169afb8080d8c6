"""The app's one clock. Code asks `utc_now()` (or `unix_now()` where it compares with Unix
timestamps such as TikTok's), never `datetime.now` or `time.time` directly, so a test can
move time (`moved_by`) instead of waiting hours for a hand-off to lapse or a hold to expire.

Moving it affects this process only: real processes started by a test keep real time, and
Redis expiries always run on real time. Durations measured for logs and metrics (latency)
use `time.perf_counter`/`time.time`, which are not the domain's notion of now.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def utc_now() -> datetime:
    return datetime.now(UTC) + _offset


def unix_now() -> float:
    return time.time() + _offset.total_seconds()


@contextmanager
def moved_by(delta: timedelta) -> Iterator[None]:
    """Within the block, now is `delta` later (earlier, if negative) than the real time."""
    global _offset
    _offset += delta
    try:
        yield
    finally:
        _offset -= delta
