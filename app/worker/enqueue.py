"""Putting work on the queue from async code without blocking the event loop."""

from __future__ import annotations

import asyncio
import functools

from celery import Celery

from app.core.errors import QueueUnavailable
from app.core.logging import get_logger
from app.worker import task_names
from app.worker.celery_app import EVENTS_QUEUE

log = get_logger(__name__)


def _publish(
    celery: Celery, name: str, args: list[object], queue: str, countdown: float | None
) -> None:
    # retry=False: kombu would otherwise retry a dead broker for many seconds while
    # TikTok waits; we would rather answer 503 and let TikTok deliver again.
    celery.send_task(name, args=args, queue=queue, countdown=countdown, retry=False)


async def publish(
    celery: Celery,
    name: str,
    args: list[object],
    *,
    queue: str,
    timeout_seconds: float,
    countdown: float | None = None,
) -> None:
    """Publish a task from a thread (kombu is blocking), giving up after the timeout."""
    call = functools.partial(_publish, celery, name, args, queue, countdown)
    try:
        await asyncio.wait_for(asyncio.to_thread(call), timeout_seconds)
    except Exception as error:
        log.warning("enqueue_failed", task=name, error=repr(error))
        raise QueueUnavailable("the queue cannot take the event now") from error


async def enqueue_event(
    celery: Celery, body: bytes, received_at: float, timeout_seconds: float
) -> None:
    await publish(
        celery,
        task_names.PROCESS_EVENT,
        [body.decode("utf-8", errors="surrogateescape"), received_at],
        queue=EVENTS_QUEUE,
        timeout_seconds=timeout_seconds,
    )
