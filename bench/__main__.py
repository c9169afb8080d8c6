"""`make bench`: the pipeline's figures, each against a baseline measured in the same run.

1. Ingress: webhook ack latency and throughput under concurrent load, against a bare
   endpoint on the same server that only reads the body and answers 200.
2. Worker: messages handled per second (webhook event to reply accepted by the TikTok
   stand-in), against a bare Celery task that only increments a Redis counter.
3. End to end: latency from webhook to the reply recorded by the stand-in, at a steady
   50 messages/s.

Figures go to stdout as a table and to bench-results/pipeline.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import orjson
import redis.asyncio as aioredis

from app.core.config import PROJECT_ROOT, Settings, get_settings, normalize_database_url
from app.db.migrate import create_scratch_database, drop_database
from app.sandbox.control import SandboxControl
from app.sandbox.stack import Stack, free_port
from app.services.tiktok.signature import signature_header
from app.worker import task_names
from app.worker.celery_app import EVENTS_QUEUE, create_celery

SECRET = "bench-client-secret"
RESULTS = PROJECT_ROOT / "bench-results"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: float | None = None
    goal: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def webhook_body(user: str, text: str = "hi", timestamp_ms: int | None = None) -> bytes:
    # The bot's own app and account: events of any other are ignored by the worker.
    settings = get_settings()
    content = {
        "timestamp": timestamp_ms or int(time.time() * 1000),
        "conversation_id": f"bench-conv-{user}",
        "message_id": f"bench-{uuid.uuid4().hex}",
        "from": user,
        "to": "philiathrifts",
        "from_user": {"id": user, "role": "personal_account"},
        "to_user": {"id": settings.tiktok_business_id, "role": "business_account"},
        "type": "text",
        "text": {"body": text},
    }
    return orjson.dumps(
        {
            "client_key": settings.tiktok_client_key,
            "event": "im_receive_msg",
            "create_time": int(time.time()),
            "user_openid": settings.tiktok_business_id,
            "content": orjson.dumps(content).decode(),
        }
    )


async def hammer(
    client: httpx.AsyncClient, path: str, bodies: list[bytes], concurrency: int
) -> tuple[list[float], float, int]:
    """POST every body with `concurrency` in flight; latencies (ms), wall time, non-200s."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    failures = 0

    async def runner() -> None:
        nonlocal failures
        while not queue.empty():
            body = queue.get_nowait()
            headers = {"TikTok-Signature": signature_header(SECRET, body)}
            started = time.perf_counter()
            response = await client.post(path, content=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(runner() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, failures


async def bench_ingress(stack: Stack, redis: aioredis.Redis) -> list[Figure]:
    requests, concurrency = 3000, 32
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=stack.api_url, limits=limits, timeout=10) as client:
        warm = [webhook_body(f"warm-{n}") for n in range(100)]
        await hammer(client, "/_bench/bare", warm, concurrency)
        await hammer(client, "/webhook/tiktok", warm, concurrency)
        bare_lat, bare_wall, _ = await hammer(
            client, "/_bench/bare", [webhook_body(f"b{n}") for n in range(requests)], concurrency
        )
        hook_lat, hook_wall, failed = await hammer(
            client,
            "/webhook/tiktok",
            [webhook_body(f"w{n}") for n in range(requests)],
            concurrency,
        )
        # One request at a time: the cost of an ack itself, without queueing in front of it.
        single = [webhook_body(f"s{n}") for n in range(300)]
        bare_one, _, _ = await hammer(client, "/_bench/bare", single, 1)
        hook_one, _, _ = await hammer(client, "/webhook/tiktok", single, 1)
    await redis.delete(EVENTS_QUEUE)
    bare_rps, hook_rps = requests / bare_wall, requests / hook_wall
    return [
        Figure("webhook throughput", hook_rps, "req/s", bare_rps, "ratio >= 0.5"),
        Figure(
            "webhook ack p50, 32 in flight",
            statistics.median(hook_lat),
            "ms",
            statistics.median(bare_lat),
            "< 10 ms",
        ),
        Figure(
            "webhook ack p99, 32 in flight",
            percentile(hook_lat, 99),
            "ms",
            percentile(bare_lat, 99),
            "< 200 ms",
        ),
        Figure("webhook non-200 answers", failed, "count", None, "0"),
        Figure(
            "webhook ack p50, one at a time",
            statistics.median(hook_one),
            "ms",
            statistics.median(bare_one),
            "< 10 ms",
        ),
        Figure(
            "webhook ack p99, one at a time",
            percentile(hook_one, 99),
            "ms",
            percentile(bare_one, 99),
            "< 200 ms",
        ),
    ]


async def wait_until(probe, done, limit_seconds: float) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    while not done(await probe()):
        if time.perf_counter() - started > limit_seconds:
            raise TimeoutError("benchmark step did not finish")
        await asyncio.sleep(0.02)
    return time.perf_counter() - started


async def bench_worker(
    stack: Stack, redis: aioredis.Redis, sandbox: SandboxControl
) -> list[Figure]:
    count = 400
    celery = create_celery(stack.settings.model_copy(update={"redis_url": stack.env["REDIS_URL"]}))
    counter = f"bench:noop:{uuid.uuid4().hex}"
    started = time.perf_counter()
    for _ in range(count):
        celery.send_task(task_names.NOOP, args=[counter], queue=EVENTS_QUEUE)
    await wait_until(lambda: redis.get(counter), lambda v: int(v or 0) >= count, 120)
    noop_rate = count / (time.perf_counter() - started)

    await sandbox.reset()
    bodies = [webhook_body(f"worker-{n}").decode() for n in range(count)]
    started = time.perf_counter()
    for body in bodies:
        celery.send_task(task_names.PROCESS_EVENT, args=[body, time.time()], queue=EVENTS_QUEUE)
    await wait_until(lambda: sandbox.messages(), lambda m: len(m) >= count, 300)
    real_rate = count / (time.perf_counter() - started)
    return [Figure("worker: messages answered", real_rate, "msg/s", noop_rate, "ratio >= 0.5")]


async def bench_end_to_end(stack: Stack, sandbox: SandboxControl) -> list[Figure]:
    rate, seconds = 50, 10
    await sandbox.reset()
    sent_at: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:

        async def one(n: int) -> None:
            user = f"e2e-{n}"
            body = webhook_body(user)
            sent_at[f"bench-conv-{user}"] = time.time()
            await client.post(
                "/webhook/tiktok",
                content=body,
                headers={"TikTok-Signature": signature_header(SECRET, body)},
            )

        tasks = []
        start = time.perf_counter()
        for n in range(rate * seconds):
            target = start + n / rate
            await asyncio.sleep(max(0.0, target - time.perf_counter()))
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    total = rate * seconds
    await wait_until(lambda: sandbox.messages(), lambda m: len(m) >= total, 120)
    latencies = [
        (message.received_at - sent_at[message.conversation_id]) * 1000
        for message in await sandbox.messages()
        if message.conversation_id in sent_at
    ]
    return [
        Figure("end-to-end p50 @50 msg/s", statistics.median(latencies), "ms", None, "< 100 ms"),
        Figure("end-to-end p99 @50 msg/s", percentile(latencies, 99), "ms", None, "< 500 ms"),
        Figure("end-to-end replies", len(latencies), "count", None, f"{total}"),
    ]


def table(figures: list[Figure]) -> str:
    lines = [f"{'figure':<32} {'value':>10} {'unit':<7} {'baseline':>10} {'ratio':>7}  goal"]
    for f in figures:
        base = f"{f.baseline:10.1f}" if f.baseline is not None else f"{'':>10}"
        ratio = f"{f.ratio:7.2f}" if f.ratio is not None else f"{'':>7}"
        lines.append(f"{f.name:<32} {f.value:10.1f} {f.unit:<7} {base} {ratio}  {f.goal}")
    return "\n".join(lines)


async def run(stack: Stack) -> list[Figure]:
    redis = aioredis.Redis.from_url(stack.env["REDIS_URL"])
    assert stack.sandbox_url is not None
    async with SandboxControl(stack.sandbox_url) as sandbox:
        figures = await bench_ingress(stack, redis)
        figures += await bench_worker(stack, redis, sandbox)
        figures += await bench_end_to_end(stack, sandbox)
    await redis.aclose()
    return figures


def main() -> None:
    root = Path(os.environ.get("BENCH_DIR", PROJECT_ROOT / ".data" / "bench"))
    base: Settings = get_settings()
    settings = Settings(**{**base.model_dump(), "tiktok_access_token": "dev"})
    stack = Stack(
        settings,
        data_dir=root,
        api_port=free_port(),
        log_dir=root / "logs",
        with_beat=False,
        worker_concurrency=int(os.environ.get("BENCH_WORKER_CONCURRENCY", "2")),
        extra_env={
            "TIKTOK_CLIENT_SECRET": SECRET,
            "TIKTOK_ACCESS_TOKEN": "dev",
            "BENCH_ENDPOINTS": "true",
            "LOG_LEVEL": "WARNING",
            # TikTok's own limit (~10/s) would make a 50 msg/s run a queueing test.
            "SEND_RATE_PER_SECOND": os.environ.get("BENCH_SEND_RATE", "1000"),
        },
    )
    scratch: str | None = None
    if os.environ.get("DATABASE_URL"):
        # Never benchmark into a database that holds anything else.
        server = normalize_database_url(os.environ["DATABASE_URL"])
        scratch = asyncio.run(create_scratch_database(server, "philia_bench"))
        stack.extra_env["DATABASE_URL"] = scratch
    try:
        stack.start_services()
        stack.start_processes()
        figures = asyncio.run(run(stack))
    finally:
        stack.stop()
        if scratch is not None:
            asyncio.run(drop_database(scratch))
    print(table(figures))
    RESULTS.mkdir(exist_ok=True)
    payload = [{**asdict(f), "ratio": f.ratio} for f in figures]
    (RESULTS / "pipeline.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
