"""The API's async producer writes what Celery's own producer writes, and a real worker runs
it: the webhook's acknowledgement depends on this wire format being right."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from app.core.config import PROJECT_ROOT, Settings
from app.worker import task_names
from app.worker.celery_app import create_celery
from app.worker.producer import AsyncTaskProducer
from tests.conftest import TestServices

# Per message, what Celery draws anew (ids, the sender's name, its reply queue).
_FRESH_HEADERS = {"id", "root_id", "origin"}
_FRESH_PROPERTIES = {"correlation_id", "reply_to", "delivery_tag"}


def _decoded(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(raw)
    message["body"] = orjson.loads(base64.b64decode(message["body"]))
    return message


async def test_the_document_is_the_one_celery_writes(
    services: TestServices, redis_client: aioredis.Redis
) -> None:
    args: list[object] = ['{"event": "im_receive_msg"}', 1764500000.25]
    celery = create_celery(Settings(redis_url=services.redis_url))
    await asyncio.to_thread(
        celery.send_task,
        task_names.PROCESS_EVENT,
        args=args,
        queue=task_names.EVENTS_QUEUE,
        retry=False,
    )
    task_id = await AsyncTaskProducer(redis_client).send(
        task_names.PROCESS_EVENT, args, queue=task_names.EVENTS_QUEUE
    )

    ours = _decoded(await redis_client.lpop(task_names.EVENTS_QUEUE))  # pushed last
    theirs = _decoded(await redis_client.lpop(task_names.EVENTS_QUEUE))
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == task_id
    assert ours["properties"]["correlation_id"] == task_id
    for message in (ours, theirs):
        for key in _FRESH_HEADERS:
            del message["headers"][key]
        for key in _FRESH_PROPERTIES:
            del message["properties"][key]
    assert ours == theirs


@pytest.fixture
def events_worker(services: TestServices) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process on the test Redis, consuming the events queue."""
    env = {
        **os.environ,
        "REDIS_URL": services.redis_url,
        "DATABASE_URL": services.database_url,
        "LOG_JSON": "true",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "app.worker.celery_app:celery_app",
            "worker",
            "--pool",
            "solo",
            "-Q",
            task_names.EVENTS_QUEUE,
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"producer-test-{uuid.uuid4().hex[:8]}@%h",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield worker
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        pytest.fail("the worker did not stop on SIGTERM")


async def test_a_real_worker_runs_what_it_publishes(
    redis_client: aioredis.Redis, events_worker: subprocess.Popen[bytes]
) -> None:
    counter = f"producer-test-{uuid.uuid4().hex}"
    producer = AsyncTaskProducer(redis_client)
    # Sent together: one push of five documents, run in the order they were sent.
    await asyncio.gather(
        *(
            producer.send(task_names.NOOP, [counter], queue=task_names.EVENTS_QUEUE)
            for _ in range(5)
        )
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if int(await redis_client.get(counter) or 0) == 5:
            break
        await asyncio.sleep(0.2)
    assert int(await redis_client.get(counter) or 0) == 5
    assert await redis_client.llen(task_names.EVENTS_QUEUE) == 0
    assert events_worker.poll() is None
