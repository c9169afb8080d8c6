"""The ledger of accepted events: what the webhook acknowledged stays on record until a
worker finished it, and the sweeper pushes back what a killed worker took with it, and
only that."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator

import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.core.config import get_settings
from app.db.models import DeadLetter
from app.worker import accepted, task_names
from app.worker import runtime as runtime_module
from app.worker.producer import AsyncTaskProducer
from app.worker.tasks import sweep_outbox
from tests.conftest import TestServices
from tests.factories import CONVERSATION_ID, as_queued, text_message

EVENTS = task_names.EVENTS_QUEUE


@pytest.fixture
def fresh_runtime(services: TestServices) -> Iterator[None]:
    # The sweeper builds its runtime from the settings of the moment: the test services'.
    runtime_module.shutdown_runtime()
    yield
    runtime_module.shutdown_runtime()


async def sweep() -> dict[str, int]:
    """One pass of the sweeper as beat has the worker run it; in a thread, as it drives a
    loop of its own."""
    result = await asyncio.to_thread(sweep_outbox.apply)
    assert result.successful(), result.traceback
    counts: dict[str, int] = result.get()
    return counts


async def ledger(redis: aioredis.Redis) -> dict[str, tuple[bytes, float]]:
    """Task id -> (task document, accepted or last looked at)."""
    tasks = await redis.hgetall(redis_keys.ACCEPTED_EVENTS_TASKS)
    at = dict(await redis.zrange(redis_keys.ACCEPTED_EVENTS_AT, 0, -1, withscores=True))
    assert set(tasks) == set(at), "the two halves of the ledger disagree"
    return {key.decode(): (tasks[key], at[key]) for key in tasks}


async def accept(redis: aioredis.Redis, body: str, accepted_at: float) -> str:
    return await AsyncTaskProducer(redis).send(
        task_names.PROCESS_EVENT, [body, accepted_at], queue=EVENTS, accepted_at=accepted_at
    )


async def take(redis: aioredis.Redis, before: float, now: float) -> list[tuple[str, int]]:
    lost = await accepted.take_lost(redis, EVENTS, before, now, limit=50)
    return [(entry.task_id, entry.requeues) for entry in lost]


async def held_by_a_worker(redis: aioredis.Redis, document: bytes, tag: str) -> None:
    """What Celery's Redis transport does when a worker takes a task: off the list, into
    `unacked` (written by kombu's own JSON, spaces and all)."""
    assert await redis.lrem(EVENTS, 1, document) == 1
    await held_by_a_worker_since(redis, document, tag, time.time())


async def held_by_a_worker_since(
    redis: aioredis.Redis, document: bytes, tag: str, since: float
) -> None:
    payload = orjson.loads(document)
    await redis.hset(redis_keys.CELERY_UNACKED, tag, json.dumps([payload, "", EVENTS]))
    await redis.zadd("unacked_index", {tag: since})


def same_task_new_tag(pushed: bytes, original: bytes, suffix: str) -> bool:
    """`pushed` is `original` with `suffix` added to its delivery tag, and nothing else."""
    again, first = orjson.loads(pushed), orjson.loads(original)
    first["properties"]["delivery_tag"] += suffix
    return bool(again == first)


async def test_an_accepted_event_is_queued_and_recorded_together(
    redis_client: aioredis.Redis,
) -> None:
    task_id = await accept(redis_client, '{"event": "im_receive_msg"}', 1764500000.25)
    other = await AsyncTaskProducer(redis_client).send(
        task_names.DELIVER_OUTBOX, [7], queue=task_names.SENDS_QUEUE
    )

    (queued,) = await redis_client.lrange(EVENTS, 0, -1)
    assert await ledger(redis_client) == {task_id: (queued, 1764500000.25)}
    assert other not in await ledger(redis_client)  # only what a webhook acknowledged


async def test_a_task_waiting_or_held_by_a_worker_is_not_lost(
    redis_client: aioredis.Redis,
) -> None:
    waiting = await accept(redis_client, "waiting", 1000.0)
    held = await accept(redis_client, "held", 1000.0)
    restored = await accept(redis_client, "restored", 1000.0)
    documents = {
        orjson.loads(raw)["headers"]["id"]: raw for raw in await redis_client.lrange(EVENTS, 0, -1)
    }
    await held_by_a_worker(redis_client, documents[held], "tag-held")
    # A dead worker's task put back by the transport: rewritten (flagged as redelivered).
    payload = orjson.loads(documents[restored])
    payload["headers"]["redelivered"] = True
    assert await redis_client.lrem(EVENTS, 1, documents[restored]) == 1
    await redis_client.rpush(EVENTS, json.dumps(payload))

    assert await take(redis_client, 2000.0, 2000.0) == []
    # Looked at: not again before another period.
    assert {at for _, at in (await ledger(redis_client)).values()} == {2000.0}
    assert waiting in await ledger(redis_client)
    assert await redis_client.llen(EVENTS) == 2


async def test_a_task_lost_with_its_worker_is_pushed_back_once_per_period(
    redis_client: aioredis.Redis,
) -> None:
    lost = await accept(redis_client, "lost", 1000.0)
    recent = await accept(redis_client, "recent", 1100.0)
    finished = await accept(redis_client, "finished", 1000.0)
    await accepted.strike_off(redis_client, finished)
    document = (await ledger(redis_client))[lost][0]
    # Popped by a worker killed before it recorded the task: nowhere any more.
    assert await redis_client.lrem(EVENTS, 1, document) == 1

    assert await take(redis_client, 1050.0, 1200.0) == [(lost, 1)]
    # Back at the front of the queue (the end workers take from), as it was but for a
    # delivery tag of its own.
    pushed = await redis_client.lindex(EVENTS, -1)
    assert same_task_new_tag(pushed, document, "-r1")
    assert (await ledger(redis_client))[lost][0] == pushed
    assert await take(redis_client, 1150.0, 1201.0) == []  # it is waiting now
    assert await redis_client.rpop(EVENTS) == pushed  # ... and lost again
    assert await take(redis_client, 1250.0, 1300.0) == [(lost, 2)]
    assert same_task_new_tag(await redis_client.rpop(EVENTS), document, "-r1-r2")

    await accepted.strike_off(redis_client, lost)
    await accepted.strike_off(redis_client, recent)
    assert await ledger(redis_client) == {}
    assert await redis_client.exists(redis_keys.ACCEPTED_EVENTS_REQUEUES) == 0


async def test_an_entry_struck_off_while_being_looked_at_is_dropped(
    redis_client: aioredis.Redis,
) -> None:
    task_id = await accept(redis_client, "body", 1000.0)
    await redis_client.delete(EVENTS)
    # A worker finished it between the two halves being written off (the document went
    # first): it must not be pushed back.
    await redis_client.hdel(redis_keys.ACCEPTED_EVENTS_TASKS, task_id)
    assert await take(redis_client, 2000.0, 2000.0) == []
    assert await redis_client.zcard(redis_keys.ACCEPTED_EVENTS_AT) == 0
    assert await redis_client.llen(EVENTS) == 0


async def test_a_long_queue_is_not_searched(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accepted, "MAX_QUEUE_SEARCHED", 2)
    task_id = await accept(redis_client, "lost", 1000.0)
    document = (await ledger(redis_client))[task_id][0]
    await redis_client.lrem(EVENTS, 1, document)
    later = [await accept(redis_client, f"later-{n}", 1500.0 + n) for n in range(3)]

    assert await take(redis_client, 1200.0, 2000.0) == []  # judged later, not now
    for task_id_done in later:  # the backlog is worked off
        await accepted.strike_off(redis_client, task_id_done)
    await redis_client.delete(EVENTS)
    assert await take(redis_client, 2100.0, 2100.0) == [(task_id, 1)]


async def test_the_sweeper_pushes_back_a_lost_task(
    fresh_runtime: None, redis_client: aioredis.Redis, committed_db: AsyncEngine
) -> None:
    long_ago = time.time() - 3600
    task_id = await accept(redis_client, "body of the lost event", long_ago)
    document = await redis_client.rpop(EVENTS)

    assert (await sweep())["events_requeued"] == 1

    (pushed,) = await redis_client.lrange(EVENTS, 0, -1)
    assert same_task_new_tag(pushed, document, "-r1")
    assert task_id in await ledger(redis_client)  # until a worker finishes it
    assert (await sweep())["events_requeued"] == 0  # waiting in the queue now


async def test_an_event_never_finished_after_its_requeues_is_parked_for_a_person(
    fresh_runtime: None, redis_client: aioredis.Redis, committed_db: AsyncEngine
) -> None:
    body = as_queued(text_message("kills every worker", message_id="poison-1"))
    task_id = await accept(redis_client, body, time.time() - 3600)
    await redis_client.delete(EVENTS)
    await redis_client.hset(redis_keys.ACCEPTED_EVENTS_REQUEUES, task_id, accepted.MAX_REQUEUES)

    assert (await sweep())["events_requeued"] == 1

    assert await ledger(redis_client) == {}
    assert await redis_client.llen(EVENTS) == 0  # not pushed back again
    async with AsyncSession(committed_db) as session:
        (letter,) = (await session.scalars(select(DeadLetter))).all()
    assert letter.kind == "event"
    assert letter.payload == {"body": body}
    assert "never finished" in letter.error
    # Found by what a person searches for, as a letter parked by the task itself is.
    assert (letter.event_id, letter.conversation_id) == ("poison-1", CONVERSATION_ID)


def test_a_lost_tasks_arguments_are_read_from_its_document() -> None:
    body = orjson.dumps([["the body", 12.5], {}, {}])
    document = orjson.dumps({"body": base64.b64encode(body).decode()})
    assert accepted.Lost("id", 1, document).args() == ["the body", 12.5]


async def test_a_task_a_dead_worker_held_is_given_back_by_the_sweeper_once_overdue(
    fresh_runtime: None, redis_client: aioredis.Redis, committed_db: AsyncEngine
) -> None:
    """Celery's transport gives such a task back by itself only when a worker starts and
    every hundred seconds or so; the sweeper asks at every sweep. It is not lost (the
    ledger leaves it alone), only late."""
    overdue_for = get_settings().broker_visibility_timeout_seconds + 60
    task_id = await accept(redis_client, "held by a dead worker", time.time() - overdue_for)
    document = await redis_client.rpop(EVENTS)
    await held_by_a_worker_since(redis_client, document, "tag-dead", time.time() - overdue_for)
    fresh = await accept(redis_client, "held by a live worker", time.time())
    await held_by_a_worker_since(
        redis_client, await redis_client.rpop(EVENTS), "tag-live", time.time()
    )

    assert (await sweep())["events_requeued"] == 0

    (given_back,) = [orjson.loads(raw) for raw in await redis_client.lrange(EVENTS, 0, -1)]
    assert given_back["headers"]["id"] == task_id
    assert given_back["headers"]["redelivered"] is True
    assert await redis_client.hkeys(redis_keys.CELERY_UNACKED) == [b"tag-live"]
    assert set(await ledger(redis_client)) == {task_id, fresh}
