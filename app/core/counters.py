"""Counters of what the Celery workers do, kept in Redis for `GET /metrics`.

Why Redis and not prometheus_client's multiprocess mode: the work happens in Celery
worker processes, often on other hosts than the API, and those processes are killed and
forked at will. Multiprocess mode needs a directory shared by every process on one host
and a cleanup on each process's death; Redis is already shared by every process of the
bot, HINCRBY is atomic, and the counters survive worker restarts, which is what a
Prometheus counter promises. The API reads these hashes at scrape time (app.api.metrics).

Recording never changes what the bot does: a Redis hiccup loses a count, not a reply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from app.core import redis_keys
from app.core.logging import get_logger

log = get_logger(__name__)


# An LLM call is bounded by OPENAI_TIMEOUT_SECONDS (at most 8 s).
LLM_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
FIELD_SEPARATOR = "|"


def latency_bucket(seconds: float) -> str:
    """The (non-cumulative) bucket a latency falls in; the exporter cumulates."""
    for bound in LLM_LATENCY_BUCKETS:
        if seconds <= bound:
            return f"le:{bound}"
    return "le:+Inf"


# Counted into a pipeline the caller sends anyway (a handled event's bookkeeping, a sent
# reply's markers): a count of its own would be one more Redis round trip per DM.
def count_turn_answered(pipe: Pipeline, intent: str, layer: str) -> None:
    pipe.hincrby(redis_keys.METRICS_MESSAGES, f"{intent}{FIELD_SEPARATOR}{layer}", 1)


def count_send_result(pipe: Pipeline, outcome: str) -> None:
    pipe.hincrby(redis_keys.METRICS_SENDS, outcome, 1)


@dataclass(frozen=True)
class WorkerMetrics:
    """Each count in a Redis call of its own, for callers with no pipeline to add it to."""

    redis: aioredis.Redis

    async def turn_answered(self, intent: str, layer: str) -> None:
        await self._record("turn_answered", lambda pipe: count_turn_answered(pipe, intent, layer))

    async def send_result(self, outcome: str) -> None:
        await self._record("send_result", lambda pipe: count_send_result(pipe, outcome))

    async def event_for_other_account(self, mismatch: str) -> None:
        """A webhook event of another app or account, ignored; `mismatch` names the field
        that differed (`client_key` or `user_openid`), so the count stays bounded."""
        await self._record(
            "event_for_other_account",
            lambda pipe: pipe.hincrby(redis_keys.METRICS_OTHER_ACCOUNT_EVENTS, mismatch, 1),
        )

    async def llm_call(self, ok: bool, seconds: float) -> None:
        def write(pipe: Pipeline) -> None:
            pipe.hincrby(redis_keys.METRICS_LLM_CALLS, "ok" if ok else "failed", 1)
            pipe.hincrby(redis_keys.METRICS_LLM_LATENCY, latency_bucket(seconds), 1)
            pipe.hincrby(redis_keys.METRICS_LLM_LATENCY, "count", 1)
            pipe.hincrbyfloat(redis_keys.METRICS_LLM_LATENCY, "sum", seconds)

        await self._record("llm_call", write)

    async def _record(self, metric: str, write: Callable[[Pipeline], object]) -> None:
        try:
            # Through a pipeline: redis-py types the plain call as `Awaitable[int] | int`.
            async with self.redis.pipeline(transaction=False) as pipe:
                write(pipe)
                await pipe.execute()
        except (RedisError, OSError) as error:
            log.debug("metric_not_recorded", metric=metric, error=str(error))
