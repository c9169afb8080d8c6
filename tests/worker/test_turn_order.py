"""A conversation's events in the order the webhook accepted them (app/worker/turn_order.py),
on a real Redis: an event waits while an earlier one of its conversation is in flight, and
for nothing else."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from app.core import redis_keys
from app.worker import turn_order
from app.worker.turn_order import TurnOrder


async def accept(redis_client: aioredis.Redis, conversation: str, task_id: str, at: float) -> None:
    async with redis_client.pipeline(transaction=True) as pipeline:
        turn_order.record_with(pipeline, conversation, task_id, at)
        await pipeline.execute()


async def line(
    redis_client: aioredis.Redis, conversation: str, *task_ids: str, gap: float = 0.001
) -> TurnOrder:
    """The task ids accepted in this order, `gap` seconds apart, the last one now."""
    now = time.time()
    for n, task_id in enumerate(task_ids):
        await accept(redis_client, conversation, task_id, now - gap * (len(task_ids) - 1 - n))
    return TurnOrder(redis_client)


async def finish(redis_client: aioredis.Redis, conversation: str, task_id: str) -> None:
    async with redis_client.pipeline(transaction=False) as pipeline:
        turn_order.finished_with(pipeline, conversation, task_id)
        await pipeline.execute()


async def test_an_event_waits_until_the_earlier_one_of_its_conversation_finishes(
    redis_client: aioredis.Redis,
) -> None:
    order = await line(redis_client, "conv-1", "first", "second")
    assert await order.earlier_in_flight("conv-1", "second") == 1
    assert await order.earlier_in_flight("conv-1", "first") == 0

    waiting = asyncio.create_task(order.wait_for_earlier("conv-1", "second", 30, 0.005))
    _, still = await asyncio.wait({waiting}, timeout=0.2)
    assert still == {waiting}  # still waiting: "first" is in flight

    await finish(redis_client, "conv-1", "first")
    assert await asyncio.wait_for(waiting, 10) is True


async def test_later_events_and_other_conversations_hold_nothing(
    redis_client: aioredis.Redis,
) -> None:
    order = TurnOrder(redis_client)
    now = time.time()
    await accept(redis_client, "conv-1", "mine", now)
    await accept(redis_client, "conv-1", "later", now + 1)
    await accept(redis_client, "conv-2", "elsewhere", now - 1)
    assert await order.wait_for_earlier("conv-1", "mine", 0, 0) is True


async def test_an_event_the_webhook_did_not_line_up_waits_for_nothing(
    redis_client: aioredis.Redis,
) -> None:
    # Queued by `deadletters retry`, or before the line existed.
    order = TurnOrder(redis_client)
    await accept(redis_client, "conv-1", "in-flight", time.time())
    assert await order.earlier_in_flight("conv-1", "not-in-line") == 0


async def test_it_stops_waiting_for_an_earlier_event_that_does_not_finish(
    redis_client: aioredis.Redis,
) -> None:
    order = await line(redis_client, "conv-1", "stuck", "next")
    assert await order.wait_for_earlier("conv-1", "next", 0.05, 0.01) is False


async def test_an_earlier_event_accepted_before_the_horizon_is_not_waited_for(
    redis_client: aioredis.Redis,
) -> None:
    order = TurnOrder(redis_client)
    now = time.time()
    await accept(redis_client, "conv-1", "long-lost", now - turn_order.HORIZON_SECONDS - 5)
    await accept(redis_client, "conv-1", "recent", now - 1)
    await accept(redis_client, "conv-1", "mine", now)
    assert await order.earlier_in_flight("conv-1", "mine") == 1  # "recent" only


async def test_an_event_whose_attempt_failed_leaves_the_line(
    redis_client: aioredis.Redis,
) -> None:
    order = await line(redis_client, "conv-1", "failed", "next")
    await order.leave("conv-1", "failed")
    assert await order.earlier_in_flight("conv-1", "next") == 0


async def test_a_quiet_conversations_line_expires(redis_client: aioredis.Redis) -> None:
    await accept(redis_client, "conv-1", "only", time.time())
    ttl = await redis_client.ttl(redis_keys.events_in_flight("conv-1"))
    assert 0 < ttl <= turn_order.KEY_TTL_SECONDS
