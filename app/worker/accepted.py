"""Every event the webhook acknowledged, until a worker has finished with it.

A 200 to TikTok promises the event is safe. The broker alone does not keep that promise
against a worker killed at the wrong moment: Celery's Redis transport takes a task off its
list (BRPOP) and only then records it as unacknowledged, so a worker SIGKILLed between the
two (or while the popped task is still in its socket) loses the task for good; the
visibility timeout only brings back what was recorded.

So the webhook writes each event's task document, in the same Redis transaction as the task
itself, to a ledger: the document under its task id, and when it was accepted. A worker
strikes the entry off once the event is finished for good (handled, a duplicate, ignored, or
parked as a dead letter); a retry keeps it. The sweeper looks at entries older than the
visibility timeout: one whose task is neither waiting in the queue nor held by a worker
(Celery's `unacked`), under any delivery of that task id (a retry, a restored task), was
lost, and its document is pushed back to the front of the queue, as the transport restores
a task. A task that is only slow is found and left alone, so a backlog is not doubled. An
entry pushed back `MAX_REQUEUES` times without finishing is parked as a dead letter for a
person instead of being tried forever.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from app.core import redis_keys

MAX_REQUEUES = 5
# Beyond this many tasks waiting, the queue is not searched (the search runs inside Redis
# and holds it): entries are looked at again when the backlog is smaller.
MAX_QUEUE_SEARCHED = 2000

# KEYS: when accepted (or last looked at), task documents, requeue counts, the queue,
# Celery's unacknowledged tasks. ARGV: cut-off, now, how many entries at most, the most
# requeues, the longest queue searched. Entries accepted (or looked at) before the cut-off
# are looked at now. Returns, for each entry found lost: its task id, its requeue count,
# and its document (pushed back to the queue unless the count is over the most).
_TAKE_LOST = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
if #ids == 0 then return {} end
local alive = nil
local function task_ids_alive()
  local found = {}
  local function note(document)
    -- The task id is the first "id" of the headers, which follow the (long) body.
    local headers = string.find(document, '"headers"', 1, true)
    if not headers then return end
    local id = string.match(document, '"id":%s*"([^"]+)"', headers)
    if id then found[id] = true end
  end
  for _, document in ipairs(redis.call('LRANGE', KEYS[4], 0, -1)) do note(document) end
  for _, held in ipairs(redis.call('HVALS', KEYS[5])) do note(held) end
  return found
end
local lost = {}
local searchable = redis.call('LLEN', KEYS[4]) <= tonumber(ARGV[5])
for _, id in ipairs(ids) do
  local document = redis.call('HGET', KEYS[2], id)
  if not document then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[3], id)
  else
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    if searchable then
      alive = alive or task_ids_alive()
      if not alive[id] then
        local requeues = redis.call('HINCRBY', KEYS[3], id, 1)
        if requeues <= tonumber(ARGV[4]) then
          -- A delivery tag of its own: should the lost copy turn up after all, the two are
          -- acknowledged apart.
          document = string.gsub(
            document, '("delivery_tag":%s*")([^"]+)(")', '%1%2-r' .. requeues .. '%3', 1)
          redis.call('HSET', KEYS[2], id, document)
          redis.call('RPUSH', KEYS[4], document)
        end
        table.insert(lost, id)
        table.insert(lost, requeues)
        table.insert(lost, document)
      end
    end
  end
end
return lost
"""


@dataclass(frozen=True)
class Lost:
    task_id: str
    requeues: int
    document: bytes

    @property
    def pushed_back(self) -> bool:
        return self.requeues <= MAX_REQUEUES

    def args(self) -> list[Any]:
        """The task's arguments, read from its document."""
        body = orjson.loads(base64.b64decode(orjson.loads(self.document)["body"]))
        args: list[Any] = body[0]
        return args


def record_with(pipeline: Pipeline, entries: Sequence[tuple[str, bytes, float]]) -> None:
    """In the transaction that queues the tasks: (task id, task document, accepted at)."""
    if not entries:
        return
    pipeline.hset(
        redis_keys.ACCEPTED_EVENTS_TASKS,
        mapping={task_id: document for task_id, document, _ in entries},
    )
    pipeline.zadd(
        redis_keys.ACCEPTED_EVENTS_AT,
        {task_id: accepted_at for task_id, _, accepted_at in entries},
    )


def strike_off_with(pipeline: Pipeline, task_id: str) -> None:
    """The event is finished for good: in the pipeline that marks it handled. The document
    goes first: an entry left with its time and no document is dropped by the sweeper,
    one left with a document and no time would stay forever."""
    pipeline.hdel(redis_keys.ACCEPTED_EVENTS_TASKS, task_id)
    pipeline.zrem(redis_keys.ACCEPTED_EVENTS_AT, task_id)
    pipeline.hdel(redis_keys.ACCEPTED_EVENTS_REQUEUES, task_id)


async def strike_off(redis: aioredis.Redis, task_id: str) -> None:
    async with redis.pipeline(transaction=False) as pipeline:
        strike_off_with(pipeline, task_id)
        await pipeline.execute()


async def take_lost(
    redis: aioredis.Redis, queue: str, accepted_before: float, now: float, limit: int
) -> list[Lost]:
    """Entries accepted (or last looked at) before `accepted_before` whose task is nowhere
    in `queue` or in the workers' hands: pushed back to the front of the queue (unless
    requeued too often already), their requeue count raised by one. Every entry looked at
    counts as looked at `now`."""
    take: Any = redis.register_script(_TAKE_LOST)
    found = await take(
        keys=[
            redis_keys.ACCEPTED_EVENTS_AT,
            redis_keys.ACCEPTED_EVENTS_TASKS,
            redis_keys.ACCEPTED_EVENTS_REQUEUES,
            queue,
            redis_keys.CELERY_UNACKED,
        ],
        args=[accepted_before, now, limit, MAX_REQUEUES, MAX_QUEUE_SEARCHED],
    )
    lost: list[Lost] = []
    for index in range(0, len(found), 3):
        task_id, requeues, document = found[index : index + 3]
        task_id = task_id.decode() if isinstance(task_id, bytes) else str(task_id)
        lost.append(Lost(task_id, int(requeues), document))
    return lost
