"""The send rate is shared by every worker process and holds at TikTok's side."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from app.core.config import Settings
from app.sandbox.control import SandboxControl
from app.services.tiktok.client import SendRateLimiter
from app.services.tiktok.errors import TikTokTransientError, TransientKind
from tests.services.tiktok.conftest import ClientFactory


def _busiest_second(times: list[float]) -> int:
    """The most calls in any one-second interval [t, t + 1)."""
    ordered = sorted(times)
    busiest, start = 0, 0
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] >= 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


def test_busiest_second_counts_half_open_windows() -> None:
    assert _busiest_second([]) == 0
    assert _busiest_second([0.0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert _busiest_second([0.0, 1.0, 2.0]) == 1


async def test_no_second_at_tiktok_holds_more_than_the_rate(
    make_client: ClientFactory, tiktok_settings: Settings, sandbox: SandboxControl
) -> None:
    settings = tiktok_settings.model_copy(update={"send_rate_per_second": 10})
    clients = [make_client(settings) for _ in range(3)]
    for client in clients:  # tokens cached, so only sends reach the sandbox
        await client.access_token()

    ids = await asyncio.gather(
        *(
            client.send_text(f"conv-{n}", f"message {m}")
            for n, client in enumerate(clients)
            for m in range(10)
        )
    )

    assert len(set(ids)) == 30
    times = [call.received_at for call in await sandbox.calls(endpoints=["send"])]
    assert len(times) == 30
    assert _busiest_second(times) <= 10
    # Not vacuous: the burst really had to wait (30 calls at 10 a second span 2 s or more).
    assert max(times) - min(times) >= 2.0


async def test_a_slot_stays_blocked_for_a_second_after_its_call(
    redis_client: aioredis.Redis,
) -> None:
    limiter = SendRateLimiter(redis_client, 1, key="tiktok-send-test")
    async with limiter.slot():
        await asyncio.sleep(0.3)  # a slow call: the second counts from its end
    released = time.monotonic()

    async with limiter.slot():
        admitted = time.monotonic()

    assert admitted - released >= 0.95  # Redis expiry is millisecond-exact, not our clock


async def test_waiting_too_long_for_the_rate_gives_the_worker_back(
    redis_client: aioredis.Redis,
) -> None:
    limiter = SendRateLimiter(redis_client, 1, key="tiktok-send-test", max_wait_seconds=0.2)
    async with limiter.slot():
        with pytest.raises(TikTokTransientError) as caught:
            async with limiter.slot():
                pass
    assert caught.value.kind is TransientKind.RATE_LIMITED


async def test_a_dead_workers_slot_frees_itself(redis_client: aioredis.Redis) -> None:
    dead = SendRateLimiter(redis_client, 1, key="tiktok-send-test", lease_seconds=0.3)
    # A worker that took the slot and died mid-call: its release never runs.
    await dead.slot().__aenter__()
    limiter = SendRateLimiter(redis_client, 1, key="tiktok-send-test")

    started = time.monotonic()
    async with limiter.slot():
        waited = time.monotonic() - started

    assert 0.2 <= waited < 2.0
