"""TikTok's echoes of the shop's own sends, between the webhook and the worker.

TikTok echoes every message the shop sends (`im_send_msg`), the bot's replies included. The
echo of a reply whose delivery recorded TikTok's answer only needs its event marked handled,
and the webhook does that at once (`settle_at_ingress`). Every other echo goes to a worker.

Until a worker has handled it, such an echo is *queued* for its conversation, and it may be
the only evidence that a reply whose answer was lost (a worker killed mid-call, a read
timeout) went out. The sweeper sends an unconfirmed reply again once its resend window has
passed, so it must not while an echo of the conversation still waits: a worker killed while
holding the echo's task gives the task back only after the broker's visibility timeout, and
the task can be caught by another dying worker, so the echo can arrive at the worker later
than the resend window. The webhook records every echo it queues (`queued_echoes` key, one
field per TikTok message id); the worker removes the field once the echo's event is handled;
the key's TTL (`queued_echo_wait_seconds`) bounds how long a lost echo task holds a resend.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from app.core import redis_keys

# How far apart the webhook's clock and the worker's may be.
_CLOCK_SKEW_SECONDS = 60.0

# KEYS: the send's marker (by TikTok's message id), the echo event's handled marker, the
# conversation's queued echoes. ARGV: the outcome to record, the marker's TTL, TikTok's
# message id, when the echo arrived, the queued echoes' TTL. A settled echo is no longer
# queued (it was, when an earlier delivery of it got a 503).
_SETTLE_OR_QUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2], 'NX')
  redis.call('HDEL', KEYS[3], ARGV[3])
  return 1
end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return 0
"""


class EchoLedger:
    """The webhook's side: one round trip per echo."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._script: Any = redis.register_script(_SETTLE_OR_QUEUE)

    async def settle_at_ingress(
        self,
        *,
        tiktok_message_id: str,
        conversation_id: str,
        received_at: float,
        outcome: str,
        marker_ttl_seconds: int,
        queued_ttl_seconds: int,
    ) -> bool:
        """True when the echo is of a send the bot recorded: its event is marked handled as
        the worker would have marked it (readers of that marker see no difference). False
        when it must go to a worker: it is then recorded as queued for its conversation."""
        settled = await self._script(
            keys=[
                redis_keys.sent_by_tiktok_id(tiktok_message_id),
                redis_keys.event_handled(tiktok_message_id),
                redis_keys.queued_echoes(conversation_id),
            ],
            args=[
                outcome,
                marker_ttl_seconds,
                tiktok_message_id,
                f"{received_at:.3f}",
                queued_ttl_seconds,
            ],
        )
        return bool(settled)


def forget_queued_with(pipeline: Pipeline, conversation_id: str, tiktok_message_id: str) -> None:
    """The worker handled the echo: in the pipeline that marks its event handled."""
    pipeline.hdel(redis_keys.queued_echoes(conversation_id), tiktok_message_id)


async def echo_queued(
    redis: aioredis.Redis,
    conversation_id: str,
    *,
    send_claimed_at: datetime,
    now: datetime,
    wait_seconds: float,
) -> bool:
    """Whether an echo of the conversation that may be of a send claimed at
    `send_claimed_at` is queued for a worker: one that reached the webhook after the claim
    (an earlier one cannot be of it; the two hosts' clocks may differ a little) and less
    than `wait_seconds` ago (an older record is one a lost echo task left behind)."""
    queued = await redis.hvals(redis_keys.queued_echoes(conversation_id))  # type: ignore[misc]  # redis-py types sync and async as one
    earliest = send_claimed_at.timestamp() - _CLOCK_SKEW_SECONDS
    latest_stale = now.timestamp() - wait_seconds
    return any(
        float(received) >= earliest and float(received) > latest_stale for received in queued
    )
