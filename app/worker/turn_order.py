"""A conversation's events are handled in the order the webhook accepted them, however
many worker processes, and events per process, take them at once.

The pipeline keeps the order of the messages it has recorded: the conversation's row lock,
oldest first. What it cannot see is an earlier message still on its way to being recorded,
taken by another process or waiting behind the other events of a batch, and a later one
that gets to the lock first is answered first. So the webhook writes each event's task id,
scored by when it was accepted, to its conversation's set of events in flight, in the
transaction that queues it; a worker handles an event once no event of its conversation
accepted before it is still in flight, and takes it out of the set when it is finished
(with the ledger's strike-off, accepted.py) or when an attempt failed (its retry goes to
the back of the line, as before). An earlier event that does not finish within
`WAIT_SECONDS` (a killed worker's, say) is waited for no longer: the order is then the one
the row lock gives, as without this set.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from app.core import redis_keys

# How long an event waits for earlier ones of its conversation. It covers an earlier
# event's way from the queue to its conversation's lock (a batch, a busy process), not a
# whole turn: once the earlier one holds the lock, the later one queues behind it there.
WAIT_SECONDS = 3.0
POLL_SECONDS = 0.01
# Earlier events accepted longer ago than this are not waited for: a lost one is the
# ledger's to bring back (accepted.py), and its place in line is gone.
HORIZON_SECONDS = 60.0
# The set of a conversation that went quiet goes with it.
KEY_TTL_SECONDS = 3600

# KEYS: the conversation's events in flight. ARGV: this event's task id, the horizon.
# Returns how many events accepted before it, since the horizon, are still in flight (0
# when it is not in the set: queued by something other than the webhook).
_EARLIER_IN_FLIGHT = """
local mine = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not mine then return 0 end
return redis.call('ZCOUNT', KEYS[1], ARGV[2], '(' .. mine)
"""


def record_with(pipeline: Pipeline, conversation_id: str, task_id: str, accepted_at: float) -> None:
    """In the transaction that queues the event."""
    key = redis_keys.events_in_flight(conversation_id)
    pipeline.zadd(key, {task_id: accepted_at})
    pipeline.expire(key, KEY_TTL_SECONDS)


def finished_with(pipeline: Pipeline, conversation_id: str, task_id: str) -> None:
    """In the pipeline that marks the event finished."""
    pipeline.zrem(redis_keys.events_in_flight(conversation_id), task_id)


class TurnOrder:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._earlier = redis.register_script(_EARLIER_IN_FLIGHT)

    async def earlier_in_flight(self, conversation_id: str, task_id: str) -> int:
        key = redis_keys.events_in_flight(conversation_id)
        horizon = time.time() - HORIZON_SECONDS
        return int(await self._earlier(keys=[key], args=[task_id, horizon]))

    async def wait_for_earlier(
        self,
        conversation_id: str,
        task_id: str,
        wait_seconds: float = WAIT_SECONDS,
        poll_seconds: float = POLL_SECONDS,
    ) -> bool:
        """Until no earlier event of the conversation is in flight: True; False when
        `wait_seconds` passed first."""
        deadline = time.monotonic() + wait_seconds
        while await self.earlier_in_flight(conversation_id, task_id):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll_seconds)
        return True

    async def leave(self, conversation_id: str, task_id: str) -> None:
        """An attempt failed: later events no longer wait for this one."""
        await self.redis.zrem(redis_keys.events_in_flight(conversation_id), task_id)
