"""The webhook's events are handled a batch at a time (`process_events`): every event of a
batch at once on the worker process's loop, each one's failure its own. The pipeline
itself is the real one in the e2e suite, which sends every webhook event through these
batches; here it is scripted, to fail the events a test picks at the moment it picks."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from celery import Celery
from celery_batches import SimpleRequest
from redis.asyncio.client import Pipeline
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.core.config import Settings, get_settings
from app.db.models import DeadLetter
from app.services.messaging.inbound import Outcome
from app.worker import runtime as runtime_module
from app.worker import task_names
from app.worker.celery_app import create_celery
from app.worker.producer import AsyncTaskProducer
from app.worker.runtime import WorkerRuntime
from app.worker.tasks import handle_events
from tests.conftest import TestServices
from tests.factories import as_queued, text_message

EVENTS = task_names.EVENTS_QUEUE


class ScriptedPipeline:
    """Stands in for the inbound pipeline. It lets no event finish before `together` of
    them have started (so a batch that ran them one at a time fails the wait), fails the
    bodies in `failing`, and finishes the others as the real one does: the caller's
    bookkeeping in one Redis pipeline."""

    def __init__(self, runtime: WorkerRuntime, together: int, failing: set[str]) -> None:
        self.runtime = runtime
        self.together = together
        self.failing = failing
        self.started: list[str] = []
        self.all_started = asyncio.Event()

    async def handle(self, body: str, finish_with: Any = None) -> Outcome:
        self.started.append(body)
        if len(self.started) == self.together:
            self.all_started.set()
        await asyncio.wait_for(self.all_started.wait(), 10)
        if body in self.failing:
            raise RuntimeError("PostgreSQL went away")
        pipeline: Pipeline
        async with self.runtime.redis.pipeline(transaction=False) as pipeline:
            if finish_with is not None:
                finish_with(pipeline)
            await pipeline.execute()
        return Outcome.HANDLED


def request(task_id: str, args: list[Any], retries: int = 0) -> SimpleRequest:
    return SimpleRequest(
        task_id,
        task_names.PROCESS_EVENTS,
        args,
        {},
        {},
        "test-worker",
        False,
        None,
        None,
        {"retries": retries},
    )


@pytest.fixture
def runtime(services: TestServices) -> Iterator[WorkerRuntime]:
    runtime_module.shutdown_runtime()
    get_settings.cache_clear()
    built = WorkerRuntime(get_settings())
    yield built
    built.close()


@pytest.fixture
def retries_to(services: TestServices) -> Celery:
    """Where a failed event is queued again: this test's Redis."""
    return create_celery(Settings(redis_url=services.redis_url))


@pytest.fixture
async def accepted(redis_client: aioredis.Redis) -> AsyncIterator[list[tuple[str, str]]]:
    """Three events as the webhook accepts them (queued, on the ledger of accepted
    events), already taken off the queue by the worker: (task id, body) each."""
    producer = AsyncTaskProducer(redis_client)
    events = []
    for n in range(3):
        body = orjson.dumps({"event": "im_receive_msg", "n": n}).decode()
        task_id = await producer.send(
            task_names.PROCESS_EVENTS,
            [body, 1764500000.0 + n],
            queue=EVENTS,
            accepted_at=time.time(),
        )
        events.append((task_id, body))
    await redis_client.delete(EVENTS)
    yield events


async def on_the_ledger(redis_client: aioredis.Redis, task_id: str) -> bool:
    return await redis_client.zscore(redis_keys.ACCEPTED_EVENTS_AT, task_id) is not None


def queued_messages(raw: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(message) for message in raw]


async def test_a_batch_runs_its_events_at_once_and_queues_a_failed_one_again_alone(
    runtime: WorkerRuntime,
    retries_to: Celery,
    accepted: list[tuple[str, str]],
    redis_client: aioredis.Redis,
) -> None:
    (first, body_1), (failing, body_2), (third, body_3) = accepted
    scripted = ScriptedPipeline(runtime, together=3, failing={body_2})
    runtime.services["pipeline"] = scripted
    requests = [
        request(first, [body_1, 1.0]),
        request(failing, [body_2, 2.0]),
        request("no-body", []),  # a task document with no event in it
        request(third, [body_3, 3.0]),
    ]

    outcomes = await asyncio.to_thread(runtime.run, handle_events(runtime, requests, retries_to))

    assert outcomes == ["handled", "retry", "malformed", "handled"]
    assert sorted(scripted.started) == sorted([body_1, body_2, body_3])
    # Finished events are struck off the ledger of accepted events; the failed one stays
    # on it until an attempt finishes it.
    assert not await on_the_ledger(redis_client, first)
    assert not await on_the_ledger(redis_client, third)
    assert await on_the_ledger(redis_client, failing)
    # Queued again on its own: the single-event task, the same task id, one attempt spent,
    # after a backoff.
    (again,) = queued_messages(await redis_client.lrange(EVENTS, 0, -1))
    assert again["headers"]["task"] == task_names.PROCESS_EVENT
    assert again["headers"]["id"] == failing
    assert again["headers"]["retries"] == 1
    assert again["headers"]["eta"] is not None
    (args, _kwargs, _embed) = orjson.loads(base64.b64decode(again["body"]))
    assert args == [body_2, 2.0]


async def test_an_event_out_of_attempts_is_parked_not_queued_again(
    runtime: WorkerRuntime,
    retries_to: Celery,
    accepted: list[tuple[str, str]],
    redis_client: aioredis.Redis,
    committed_db: AsyncEngine,
) -> None:
    (task_id, body), _, _ = accepted
    runtime.services["pipeline"] = ScriptedPipeline(runtime, together=1, failing={body})
    last_try = runtime.settings.max_event_attempts - 1  # retries before this attempt

    outcomes = await asyncio.to_thread(
        runtime.run,
        handle_events(runtime, [request(task_id, [body, 1.0], retries=last_try)], retries_to),
    )

    assert outcomes == ["dead_lettered"]
    assert await redis_client.llen(EVENTS) == 0
    assert not await on_the_ledger(redis_client, task_id)
    async with AsyncSession(committed_db) as session:
        (letter,) = (await session.scalars(select(DeadLetter))).all()
    assert letter.kind == "event"
    assert letter.attempts == runtime.settings.max_event_attempts
    assert letter.payload == {"body": body}
    assert "PostgreSQL went away" in letter.error


async def lined_up(
    redis_client: aioredis.Redis, conversation: str, texts: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """Messages of one conversation as the webhook accepts them (queued, on the ledger and
    in the conversation's line), taken off the queue by the worker: (bodies, task ids)."""
    producer = AsyncTaskProducer(redis_client)
    bodies, task_ids = [], []
    for text in texts:
        body = as_queued(text_message(text, conversation_id=conversation))
        bodies.append(body)
        task_ids.append(
            await producer.send(
                task_names.PROCESS_EVENTS,
                [body, time.time()],
                queue=EVENTS,
                accepted_at=time.time(),
                conversation_id=conversation,
            )
        )
    await redis_client.delete(EVENTS)
    return bodies, task_ids


async def test_a_conversations_later_event_waits_for_its_earlier_one_in_the_same_batch(
    runtime: WorkerRuntime, retries_to: Celery, redis_client: aioredis.Redis
) -> None:
    # The later message comes first in the batch: it is handled second all the same.
    bodies, task_ids = await lined_up(redis_client, "conv-in-line", ("first", "second"))
    scripted = ScriptedPipeline(runtime, together=1, failing=set())
    runtime.services["pipeline"] = scripted
    requests = [request(task_ids[1], [bodies[1], 2.0]), request(task_ids[0], [bodies[0], 1.0])]

    outcomes = await asyncio.to_thread(runtime.run, handle_events(runtime, requests, retries_to))

    assert outcomes == ["handled", "handled"]
    assert scripted.started == bodies  # "first", then "second"
    # Both out of the conversation's line once finished.
    assert await redis_client.zcard(redis_keys.events_in_flight("conv-in-line")) == 0


async def test_an_event_that_failed_does_not_hold_up_the_next_of_its_conversation(
    runtime: WorkerRuntime, retries_to: Celery, redis_client: aioredis.Redis
) -> None:
    bodies, task_ids = await lined_up(redis_client, "conv-failing", ("breaks", "next"))
    runtime.services["pipeline"] = ScriptedPipeline(runtime, together=1, failing={bodies[0]})
    requests = [request(task_ids[0], [bodies[0], 1.0]), request(task_ids[1], [bodies[1], 2.0])]

    outcomes = await asyncio.to_thread(runtime.run, handle_events(runtime, requests, retries_to))

    # The failed one left the line (its retry is queued): the next was not kept waiting
    # for it, and nothing of the conversation is left in flight.
    assert outcomes == ["retry", "handled"]
    assert await redis_client.zcard(redis_keys.events_in_flight("conv-failing")) == 0
    (again,) = queued_messages(await redis_client.lrange(EVENTS, 0, -1))
    assert again["headers"]["id"] == task_ids[0]
