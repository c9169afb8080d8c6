"""Putting work on the queue from async code (the API), without blocking the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from app.core.errors import QueueUnavailable
from app.core.logging import get_logger
from app.worker import task_names
from app.worker.producer import AsyncTaskProducer
from app.worker.task_names import EVENTS_QUEUE, SENDS_QUEUE

log = get_logger(__name__)


async def publish(
    producer: AsyncTaskProducer,
    name: str,
    args: list[object],
    *,
    queue: str,
    timeout_seconds: float,
    accepted_at: float | None = None,
    conversation_id: str | None = None,
) -> None:
    """Publish a task, giving up after the timeout: a webhook answers 503 rather than keep
    TikTok waiting on a broker that does not answer, and TikTok delivers it again."""
    try:
        async with asyncio.timeout(timeout_seconds):  # lighter than wait_for: no extra task
            await producer.send(
                name,
                args,
                queue=queue,
                accepted_at=accepted_at,
                conversation_id=conversation_id,
            )
    except Exception as error:
        log.warning("enqueue_failed", task=name, error=repr(error))
        raise QueueUnavailable("the queue cannot take the event now") from error


async def enqueue_event(
    producer: AsyncTaskProducer,
    body: bytes,
    received_at: float,
    timeout_seconds: float,
    conversation_id: str | None = None,
) -> None:
    """Queue an event the webhook is about to acknowledge, with its entry in the ledger of
    accepted events (accepted.py): what a 200 promised is not lost with a killed worker;
    and in its conversation's line (turn_order.py): it is not overtaken by a later one."""
    await publish(
        producer,
        task_names.PROCESS_EVENTS,
        [body.decode("utf-8", errors="surrogateescape"), received_at],
        queue=EVENTS_QUEUE,
        timeout_seconds=timeout_seconds,
        accepted_at=received_at,
        conversation_id=conversation_id,
    )


def delivery_enqueuer(
    producer: AsyncTaskProducer, timeout_seconds: float
) -> Callable[[Sequence[int]], Awaitable[None]]:
    """Hands committed outbox rows to the sends worker, one task each. A row the queue does
    not take stays pending in the outbox, and the sweeper sends it: late, never lost."""

    async def enqueue(outbox_ids: Sequence[int]) -> None:
        for outbox_id in outbox_ids:
            try:
                await publish(
                    producer,
                    task_names.DELIVER_OUTBOX,
                    [outbox_id],
                    queue=SENDS_QUEUE,
                    timeout_seconds=timeout_seconds,
                )
            except QueueUnavailable:
                log.warning("delivery_enqueue_deferred", outbox_id=outbox_id)

    return enqueue
