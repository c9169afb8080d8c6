"""An event's handling waits out a Redis that cannot be reached for a few seconds (a restart)
instead of giving up the attempt: a retry is itself a publish to that Redis, and one that
fails leaves the event to the broker's visibility timeout, minutes later. The real restart
is `make chaos` (`-k redis`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.worker.tasks import REDIS_BLIP_PAUSES, through_redis_blips


def failing(times: int, error: Exception) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    calls: list[int] = []

    async def work() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "handled"

    return calls, work


@pytest.mark.parametrize("error", [RedisConnectionError("refused"), RedisTimeoutError("slow")])
async def test_the_work_runs_again_once_redis_is_back(error: Exception) -> None:
    calls, work = failing(2, error)
    assert await through_redis_blips(work, pauses=(0.0, 0.0, 0.0)) == "handled"
    assert len(calls) == 3


async def test_a_longer_outage_is_raised_after_the_last_pause() -> None:
    calls, work = failing(100, RedisConnectionError("refused"))
    with pytest.raises(RedisConnectionError):
        await through_redis_blips(work, pauses=(0.0, 0.0))
    assert len(calls) == 3


async def test_other_errors_are_not_waited_for() -> None:
    calls, work = failing(1, ResponseError("WRONGTYPE"))
    with pytest.raises(ResponseError):
        await through_redis_blips(work, pauses=(0.0, 0.0))
    assert len(calls) == 1


def test_the_wait_covers_a_restart() -> None:
    # A Redis restart here takes about 3 s (docs/RELIABILITY.md); the pauses add up to more.
    assert sum(REDIS_BLIP_PAUSES) > 5
