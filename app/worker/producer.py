"""Publishing Celery tasks from async code: one Redis command on the event loop.

Celery's own producer (kombu) is blocking, so the API used to hop to a thread for every
webhook and wait there for kombu's channel and connection pool: at 32 requests in flight
that hop, not Redis, set the ack time. The Redis transport's wire format is simple: a task
is one JSON document (Celery's task protocol 2 inside kombu's envelope) pushed onto the
list named after its queue. `AsyncTaskProducer` writes that document with `redis.asyncio`,
so accepting a webhook costs (a share of) one LPUSH on the connection pool the API
already has.

The document is what `Celery.send_task` writes for the same task (a test compares the two
field by field against the installed Celery, and a real worker runs what this publishes),
so workers cannot tell the difference. Only what the API sends is supported: JSON
arguments and a queue; no countdown, results, priorities or chains.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from app.worker import accepted, turn_order

# Celery's own name for the sending process (`anon_nodename`): shows in worker logs.
_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"
# What Celery puts in `argsrepr` is for logs and events only; keep it short like Celery's.
_REPR_LIMIT = 1024


def task_message(name: str, args: Sequence[Any], *, queue: str) -> tuple[str, bytes]:
    """The task's id and the document the Redis transport keeps for it."""
    task_id = str(uuid.uuid4())
    argsrepr = repr(list(args))
    if len(argsrepr) > _REPR_LIMIT:
        argsrepr = argsrepr[: _REPR_LIMIT - 3] + "..."
    headers: dict[str, Any] = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": argsrepr,
        "kwargsrepr": "{}",
        "origin": _ORIGIN,
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    body = orjson.dumps(
        [list(args), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    )
    document = {
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            # The anonymous exchange: a task restored after a lost worker goes back to
            # the queue its routing key names.
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return task_id, orjson.dumps(document)


class AsyncTaskProducer:
    """Puts tasks on the Celery queues in Redis without leaving the event loop.

    Tasks sent while a push to the same queue is on its way to Redis wait for it and go
    together in the next one (one LPUSH of many documents, in the order they were sent):
    under load a webhook costs a share of one Redis round trip instead of a whole one, and
    alone it costs exactly one. `send` returns only once Redis holds the task.
    """

    def __init__(self, redis: aioredis.Redis, *, max_batch: int = 256) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._waiting: dict[str, list[_Waiting]] = defaultdict(list)
        self._pushers: dict[str, asyncio.Task[None]] = {}

    async def send(
        self,
        name: str,
        args: Sequence[Any],
        *,
        queue: str,
        accepted_at: float | None = None,
        conversation_id: str | None = None,
    ) -> str:
        """Publish; returns the task id once Redis holds the task, raises if it cannot.
        With `accepted_at`, the task is also written to the ledger of accepted events
        (accepted.py) in the same transaction, and to its conversation's events in flight
        (turn_order.py) with `conversation_id`."""
        task_id, document = task_message(name, args, queue=queue)
        entry = None if accepted_at is None else (task_id, document, accepted_at)
        loop = asyncio.get_running_loop()
        pushed: asyncio.Future[None] = loop.create_future()
        self._waiting[queue].append(_Waiting(document, entry, pushed, conversation_id))
        if queue not in self._pushers:
            self._pushers[queue] = loop.create_task(self._push(queue))
        await pushed
        return task_id

    async def _push(self, queue: str) -> None:
        waiting = self._waiting[queue]
        try:
            while waiting:
                batch = waiting[: self._max_batch]
                del waiting[: self._max_batch]
                # A sender that gave up (its webhook already answered 503) is not pushed:
                # TikTok delivers that event again.
                batch = [sender for sender in batch if not sender.pushed.done()]
                if not batch:
                    continue
                try:
                    await self._write(queue, batch)
                except Exception as error:  # every sender of the batch answers for itself
                    for sender in batch:
                        if not sender.pushed.done():
                            sender.pushed.set_exception(error)
                else:
                    for sender in batch:
                        if not sender.pushed.done():
                            sender.pushed.set_result(None)
        finally:
            del self._pushers[queue]

    async def _write(self, queue: str, batch: list[_Waiting]) -> None:
        documents = [sender.document for sender in batch]
        entries = [sender.entry for sender in batch if sender.entry is not None]
        if not entries:
            await self._redis.lpush(queue, *documents)  # type: ignore[misc]  # redis-py types sync and async as one
            return
        # Both or neither: a task queued without its entry could be lost unseen, an entry
        # without its task would be published by the sweeper though TikTok was told 503.
        async with self._redis.pipeline(transaction=True) as both:
            both.lpush(queue, *documents)
            accepted.record_with(both, entries)
            for sender in batch:
                if sender.entry is not None and sender.conversation_id is not None:
                    task_id, _, accepted_at = sender.entry
                    turn_order.record_with(both, sender.conversation_id, task_id, accepted_at)
            await both.execute()


@dataclass
class _Waiting:
    document: bytes
    entry: tuple[str, bytes, float] | None  # for the ledger: (task id, document, accepted at)
    pushed: asyncio.Future[None]
    # With an entry: its place in its conversation's line (turn_order.py)
    conversation_id: str | None = None
