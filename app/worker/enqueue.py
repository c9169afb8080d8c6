"""Putting work on the queue from async code (the API), without blocking the event loop."""

from __future__ import annotations

import asyncio

from app.core.errors import QueueUnavailable
from app.core.logging import get_logger
from app.worker import task_names
from app.worker.producer import AsyncTaskProducer
from app.worker.task_names import EVENTS_QUEUE

log = get_logger(__name__)


async def publish(
    producer: AsyncTaskProducer,
    name: str,
    args: list[object],
    *,
    queue: str,
    timeout_seconds: float,
) -> None:
    """Publish a task, giving up after the timeout: a webhook answers 503 rather than keep
    TikTok waiting on a broker that does not answer, and TikTok delivers it again."""
    try:
        async with asyncio.timeout(timeout_seconds):  # lighter than wait_for: no extra task
            await producer.send(name, args, queue=queue)
    except Exception as error:
        log.warning("enqueue_failed", task=name, error=repr(error))
        raise QueueUnavailable("the queue cannot take the event now") from error


async def enqueue_event(
    producer: AsyncTaskProducer, body: bytes, received_at: float, timeout_seconds: float
) -> None:
    await publish(
        producer,
        task_names.PROCESS_EVENT,
        [body.decode("utf-8", errors="surrogateescape"), received_at],
        queue=EVENTS_QUEUE,
        timeout_seconds=timeout_seconds,
    )
