"""`GET /metrics` in the Prometheus text format.

Three sources, one page:
- the webhook's own counters, kept in this API process (prometheus_client);
- what the Celery workers counted in Redis (app.core.counters explains why Redis);
- gauges read at scrape time: Celery queue depth (LLEN of each queue's Redis list) and
  active holds (PostgreSQL).

It names counts, never customers, yet the shop's volume is its business: with
METRICS_TOKEN set the scraper must send `Authorization: Bearer <token>`; in production
without a token the page does not exist (404).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.responses import Response

from app.api.deps import EngineDep, RedisDep, SettingsDep
from app.core import redis_keys
from app.core.config import Environment
from app.core.counters import (
    FIELD_SEPARATOR,
    LLM_LATENCY_BUCKETS,
)
from app.core.errors import NotAuthenticated, NotFound
from app.core.logging import get_logger
from app.db.repositories.holds import HoldRepository
from app.worker.task_names import EVENTS_QUEUE, MAINTENANCE_QUEUE, SENDS_QUEUE

router = APIRouter(tags=["operations"])
log = get_logger(__name__)

# This process's registry: the webhook metrics only (no default process collectors, so
# the page is the same on every platform).
API_REGISTRY = CollectorRegistry(auto_describe=True)

WEBHOOK_REQUESTS = Counter(
    "philia_webhook_requests",
    "TikTok webhook requests answered, by HTTP status.",
    ["status"],
    registry=API_REGISTRY,
)
WEBHOOK_ACK_SECONDS = Histogram(
    "philia_webhook_ack_seconds",
    "Time from receiving a TikTok webhook to answering it (the event is queued by then).",
    # TikTok wants an answer within seconds; the interesting part is well under one.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=API_REGISTRY,
)

QUEUES = (EVENTS_QUEUE, SENDS_QUEUE, MAINTENANCE_QUEUE)


def observe_webhook(status: int, seconds: float) -> None:
    WEBHOOK_REQUESTS.labels(status=str(status)).inc()
    WEBHOOK_ACK_SECONDS.observe(seconds)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Snapshot(Collector):
    """Values read (asynchronously) just before rendering, yielded as metric families."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


async def _worker_families(redis: Any) -> list[Metric]:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(redis_keys.METRICS_MESSAGES)
        pipe.hgetall(redis_keys.METRICS_SENDS)
        pipe.hgetall(redis_keys.METRICS_LLM_CALLS)
        pipe.hgetall(redis_keys.METRICS_LLM_LATENCY)
        pipe.hgetall(redis_keys.METRICS_OTHER_ACCOUNT_EVENTS)
        messages, sends, llm_calls, latency, other_accounts = await pipe.execute()
    out: list[Metric] = []

    turns = CounterMetricFamily(
        "philia_messages",
        "Customer turns answered by the bot, by intent and the router layer that named it.",
        labels=["intent", "layer"],
    )
    for field, count in messages.items():
        intent, _, layer = _text(field).partition(FIELD_SEPARATOR)
        turns.add_metric([intent, layer], int(count))
    out.append(turns)

    sent = CounterMetricFamily("philia_sends", "Outbox deliveries, by result.", labels=["result"])
    for field, count in sends.items():
        sent.add_metric([_text(field)], int(count))
    out.append(sent)

    foreign = CounterMetricFamily(
        "philia_other_account_events",
        "Webhook events for another app or account, ignored (by what differed).",
        labels=["mismatch"],
    )
    for field, count in other_accounts.items():
        foreign.add_metric([_text(field)], int(count))
    out.append(foreign)

    calls = CounterMetricFamily(
        "philia_llm_calls", "LLM router calls, by outcome (ok or failed).", labels=["outcome"]
    )
    for field, count in llm_calls.items():
        calls.add_metric([_text(field)], int(count))
    out.append(calls)

    failed = int(llm_calls.get(b"failed", llm_calls.get("failed", 0)))
    out.append(
        CounterMetricFamily(
            "philia_llm_fallbacks",
            "Messages routed by the local classifier because the LLM call failed.",
            value=failed,
        )
    )

    values = {_text(field): value for field, value in latency.items()}
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound in (*LLM_LATENCY_BUCKETS, "+Inf"):
        cumulative += int(values.get(f"le:{bound}", 0))
        buckets.append((str(bound), cumulative))
    out.append(
        HistogramMetricFamily(
            "philia_llm_latency_seconds",
            "LLM router call latency, failed calls included.",
            buckets=buckets,
            sum_value=float(values.get("sum", 0)),
        )
    )
    return out


async def _queue_depth(redis: Any) -> Metric:
    async with redis.pipeline(transaction=False) as pipe:
        for queue in QUEUES:
            pipe.llen(queue)
        depths = await pipe.execute()
    gauge = GaugeMetricFamily(
        "philia_queue_depth",
        "Tasks waiting in each Celery queue (its Redis list), read at scrape time.",
        labels=["queue"],
    )
    for queue, depth in zip(QUEUES, depths, strict=True):
        gauge.add_metric([queue], int(depth))
    return gauge


async def _active_holds(engine: AsyncEngine) -> Metric:
    async with AsyncSession(engine) as session:
        count = await HoldRepository(session).count_active()
    return GaugeMetricFamily(
        "philia_holds_active", "Items held for a customer right now.", value=count
    )


async def _require_scraper(request: Request, settings: SettingsDep) -> None:
    token = settings.metrics_token
    if token is None:
        if settings.environment is Environment.PRODUCTION:
            raise NotFound()
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.get_secret_value().encode()
    ):
        raise NotAuthenticated("send Authorization: Bearer <METRICS_TOKEN>")


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(_require_scraper)])
async def metrics(redis: RedisDep, engine: EngineDep) -> Response:
    families: list[Metric] = []
    up = GaugeMetricFamily(
        "philia_metrics_source_up",
        "1 when the source could be read for this scrape (redis, postgres).",
        labels=["source"],
    )

    async def from_redis() -> list[Metric]:
        return [*await _worker_families(redis), await _queue_depth(redis)]

    redis_result, holds_result = await asyncio.gather(
        from_redis(), _active_holds(engine), return_exceptions=True
    )
    # A dependency down must not hide the other metrics: report it as a 0 instead.
    if isinstance(redis_result, BaseException):
        if not isinstance(redis_result, RedisError | OSError):
            raise redis_result
        log.warning("metrics_source_down", source="redis", error=str(redis_result)[:200])
        up.add_metric(["redis"], 0)
    else:
        families.extend(redis_result)
        up.add_metric(["redis"], 1)
    if isinstance(holds_result, BaseException):
        if not isinstance(holds_result, SQLAlchemyError | OSError):
            raise holds_result
        log.warning("metrics_source_down", source="postgres", error=str(holds_result)[:200])
        up.add_metric(["postgres"], 0)
    else:
        families.append(holds_result)
        up.add_metric(["postgres"], 1)
    families.append(up)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    body = generate_latest(API_REGISTRY) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
