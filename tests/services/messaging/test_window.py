"""The window's state read together with other keys: one round trip where a turn needs a
flag at the same moment, the same state as `state` reads."""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis

from app.core.clock import unix_now
from app.core.config import get_settings
from app.services.messaging.window import WindowService, WindowState

USER = "window-test-user"


class _Mirror:
    def __init__(self, window_expires_at: datetime | None, replies_in_window: int) -> None:
        self.window_expires_at = window_expires_at
        self.replies_in_window = replies_in_window


def _in_hours(hours: float) -> datetime:
    # Whole milliseconds: Redis keeps the end to the millisecond.
    return datetime.fromtimestamp(round((unix_now() + hours * 3600) * 1000) / 1000, UTC)


async def test_state_with_reads_the_other_keys_in_the_same_round_trip(
    redis_client: aioredis.Redis,
) -> None:
    window = WindowService(redis_client, get_settings())
    quota = get_settings().reply_quota
    ends = _in_hours(40)
    await window.open(USER, ends)
    assert await window.reserve_reply(USER, _Mirror(None, 0)) is None
    await redis_client.set("philia:test:flag", "set")
    state, values = await window.state_with(
        USER, _Mirror(None, 0), "philia:test:flag", "philia:test:missing"
    )
    assert state == WindowState(True, ends.timestamp(), 1, quota - 1)
    assert state == await window.state(USER, _Mirror(None, 0))
    assert values == [b"set", None]


async def test_state_with_restores_a_lost_window_from_the_mirror(
    redis_client: aioredis.Redis,
) -> None:
    window = WindowService(redis_client, get_settings())
    quota = get_settings().reply_quota
    ends = _in_hours(10)
    # Redis lost the keys (it keeps nothing on disk); PostgreSQL's mirror still has them.
    state, values = await window.state_with(USER, _Mirror(ends, 3), "philia:test:missing")
    assert state == WindowState(True, ends.timestamp(), 3, quota - 3)
    assert values == [None]
