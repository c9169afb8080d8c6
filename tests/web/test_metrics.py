"""GET /metrics: the webhook's own counters, the workers' counters from Redis, and the
gauges read at scrape time, in the Prometheus text format."""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.counters import WorkerMetrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the page, by name and sorted labels (the parser validates the format)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(web: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await web.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_webhook_requests_are_counted_by_status_with_their_ack_latency(
    web: httpx.AsyncClient,
) -> None:
    before = await scrape(web)
    key = ("philia_webhook_requests_total", (("status", "401"),))
    for _ in range(2):
        unsigned = await web.post("/webhook/tiktok", content=b"{}")
        assert unsigned.status_code == 401
    after = await scrape(web)
    assert after[key] - before.get(key, 0.0) == 2
    count = ("philia_webhook_ack_seconds_count", ())
    assert after[count] - before.get(count, 0.0) == 2


async def test_worker_counters_recorded_in_redis_are_exported(
    web: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    metrics = WorkerMetrics(redis_client)
    await metrics.turn_answered("menu", "pattern")
    await metrics.turn_answered("menu", "pattern")
    await metrics.turn_answered("item_info", "llm")
    await metrics.send_result("sent")
    await metrics.send_result("retry")
    await metrics.llm_call(True, 0.3)
    await metrics.llm_call(False, 9.0)
    got = await scrape(web)
    assert got[("philia_messages_total", (("intent", "menu"), ("layer", "pattern")))] == 2
    assert got[("philia_messages_total", (("intent", "item_info"), ("layer", "llm")))] == 1
    assert got[("philia_sends_total", (("result", "sent"),))] == 1
    assert got[("philia_sends_total", (("result", "retry"),))] == 1
    assert got[("philia_llm_calls_total", (("outcome", "ok"),))] == 1
    assert got[("philia_llm_calls_total", (("outcome", "failed"),))] == 1
    assert got[("philia_llm_fallbacks_total", ())] == 1
    # Cumulative buckets: 0.3 s is under 0.5 but not 0.25; 9 s only under +Inf.
    assert got[("philia_llm_latency_seconds_bucket", (("le", "0.25"),))] == 0
    assert got[("philia_llm_latency_seconds_bucket", (("le", "0.5"),))] == 1
    assert got[("philia_llm_latency_seconds_bucket", (("le", "8.0"),))] == 1
    assert got[("philia_llm_latency_seconds_bucket", (("le", "+Inf"),))] == 2
    assert got[("philia_llm_latency_seconds_count", ())] == 2
    assert abs(got[("philia_llm_latency_seconds_sum", ())] - 9.3) < 1e-9


async def test_queue_depth_and_active_holds_are_read_at_scrape_time(
    web: httpx.AsyncClient, redis_client: aioredis.Redis, committed_db: AsyncEngine
) -> None:
    # Celery's Redis transport keeps each queue as a list named after it.
    await redis_client.rpush("events", "task-1", "task-2", "task-3")
    await redis_client.rpush("sends", "task-4")
    got = await scrape(web)
    assert got[("philia_queue_depth", (("queue", "events"),))] == 3
    assert got[("philia_queue_depth", (("queue", "sends"),))] == 1
    assert got[("philia_queue_depth", (("queue", "maintenance"),))] == 0
    assert got[("philia_holds_active", ())] == 0
    assert got[("philia_metrics_source_up", (("source", "redis"),))] == 1
    assert got[("philia_metrics_source_up", (("source", "postgres"),))] == 1
