"""The API's and the worker's Redis connections pack commands with hiredis: the bytes on
the wire must be what redis-py's own packer sends, and a client built with them must work
against a real Redis (commands, pipelines, scripts)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError, RedisError, ResponseError

from app.core.redis_client import (
    HiredisPackedConnection,
    SharedConnectionPipeline,
    redis_from_url,
)
from tests.conftest import TestServices


@pytest.mark.parametrize(
    "command",
    [
        ("SET", "philia:sent:abc", "19", "EX", 604800),
        ("ZADD", "philia:line:c1", 1796148275.089532, "task-1"),
        ("CONFIG GET", "maxmemory"),  # a command name of two words goes as two
        ("HSET", b"raw-bytes", "café ☕", 0),
        ("EVALSHA", "c77e85988d78", 2, "w", "q", -1, 3.5),
    ],
)
def test_packs_the_bytes_redis_py_would(command: tuple[Any, ...]) -> None:
    ours = b"".join(HiredisPackedConnection().pack_command(*command))
    theirs = b"".join(bytes(part) for part in Connection().pack_command(*command))
    assert ours == theirs


def test_refuses_what_redis_py_refuses() -> None:
    with pytest.raises(DataError):
        HiredisPackedConnection().pack_command("SET", "key", None)  # type: ignore[arg-type]


async def test_a_client_with_it_talks_to_redis(services: TestServices) -> None:
    client = redis_from_url(services.redis_url, single_connection_client=True)
    try:
        assert client.connection_pool.connection_class is HiredisPackedConnection
        await client.set("philia:test:packed", "café ☕", ex=60)
        assert await client.get("philia:test:packed") == "café ☕".encode()
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr("philia:test:packed-count")
            pipe.expire("philia:test:packed-count", 60)
            counted, _ = await pipe.execute()
        assert counted >= 1
        script = client.register_script("return ARGV[1] .. KEYS[1]")
        assert await script(keys=["k"], args=["v"]) == b"vk"
    finally:
        await client.delete("philia:test:packed", "philia:test:packed-count")
        await client.aclose()


def test_tls_urls_keep_redis_pys_tls_connection() -> None:
    client = redis_from_url("rediss://example.invalid:6380/0")
    assert client.connection_pool.connection_class is aioredis.SSLConnection


async def _connections_named(client: aioredis.Redis, name: str) -> int:
    return sum(1 for seen in await client.client_list() if seen.get("name") == name)


async def test_a_single_connection_clients_pipelines_run_on_its_one_connection(
    services: TestServices,
) -> None:
    name = f"philia-test-{uuid.uuid4().hex[:8]}"
    client = redis_from_url(services.redis_url, single_connection_client=True, client_name=name)
    key = f"philia:test:shared:{name}"
    try:
        async with client.pipeline(transaction=False) as pipe:
            assert isinstance(pipe, SharedConnectionPipeline)
            pipe.set(key, "1", ex=60)
            pipe.incr(key)
            assert await pipe.execute() == [True, 2]
        async with client.pipeline(transaction=True) as pipe:  # MULTI ... EXEC
            pipe.incr(key)
            pipe.get(key)
            assert await pipe.execute() == [3, b"3"]
        assert await _connections_named(client, name) == 1
        assert client.connection is not None and client.connection.is_connected
    finally:
        await client.delete(key)
        await client.aclose()


async def test_concurrent_commands_and_pipelines_each_read_their_own_replies(
    services: TestServices,
) -> None:
    client = redis_from_url(services.redis_url, single_connection_client=True)
    prefix = f"philia:test:turns:{uuid.uuid4().hex[:8]}"

    async def turn(n: int) -> tuple[Any, ...]:
        await client.set(f"{prefix}:{n}", n, ex=60)
        async with client.pipeline(transaction=False) as pipe:
            pipe.incr(f"{prefix}:{n}")
            pipe.get(f"{prefix}:{n}")
            counted, value = await pipe.execute()
        return counted, value, await client.get(f"{prefix}:{n}")

    try:
        results = await asyncio.gather(*(turn(n) for n in range(50)))
        assert results == [(n + 1, str(n + 1).encode(), str(n + 1).encode()) for n in range(50)]
    finally:
        await client.delete(*(f"{prefix}:{n}" for n in range(50)))
        await client.aclose()


async def test_a_failing_or_cancelled_pipeline_leaves_the_connection_answering_right(
    services: TestServices,
) -> None:
    client = redis_from_url(services.redis_url, single_connection_client=True)
    key = f"philia:test:broken:{uuid.uuid4().hex[:8]}"
    try:
        await client.set(key, "not a number", ex=60)
        async with client.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            with pytest.raises(ResponseError):
                await pipe.execute()
        assert await client.get(key) == b"not a number"

        async def blocked() -> Any:
            async with client.pipeline(transaction=False) as pipe:
                pipe.blpop([f"{key}:list"], timeout=5)
                return await pipe.execute()

        waiting = asyncio.create_task(blocked())
        await asyncio.sleep(0.2)  # the BLPOP is at the server, on the shared connection
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        # Its late reply must not be read as the answer to these.
        await client.rpush(f"{key}:list", "late")
        assert await client.get(key) == b"not a number"
        assert await client.lrange(f"{key}:list", 0, -1) == [b"late"]
    finally:
        await client.delete(key, f"{key}:list")
        await client.aclose()


async def test_a_pooled_clients_pipelines_stay_redis_pys(services: TestServices) -> None:
    client = redis_from_url(services.redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        assert not isinstance(pipe, SharedConnectionPipeline)
        pipe.ping()
        assert await pipe.execute() == [True]
    finally:
        await client.aclose()


async def test_watch_is_refused_on_a_shared_connection_pipeline(services: TestServices) -> None:
    client = redis_from_url(services.redis_url, single_connection_client=True)
    try:
        async with client.pipeline() as pipe:
            with pytest.raises(RedisError):
                await pipe.watch("philia:test:watched")
    finally:
        await client.aclose()


async def test_a_reply_failing_to_convert_midway_leaves_no_reply_behind(
    services: TestServices,
) -> None:
    client = redis_from_url(services.redis_url, single_connection_client=True)
    key = f"philia:test:convert:{uuid.uuid4().hex[:8]}"
    try:
        await client.zadd(key, {"a": 1.5})
        await client.set(f"{key}:mine", "mine", ex=60)
        async with client.pipeline(transaction=False) as pipe:
            # int(b"1.5") raises in redis-py's conversion of the first reply, before the
            # SET's and the INCR's replies are read.
            pipe.zrange(key, 0, -1, withscores=True, score_cast_func=int)
            pipe.set(f"{key}:other", "x", ex=60)
            pipe.incr(f"{key}:count")
            with pytest.raises(ValueError):
                await pipe.execute()
        # Not the SET's "OK" left on the connection: this GET's own answer.
        assert await client.get(f"{key}:mine") == b"mine"
    finally:
        await client.delete(key, f"{key}:mine", f"{key}:other", f"{key}:count")
        await client.aclose()


async def test_an_empty_pipeline_left_unclosed_does_not_take_the_connection_with_it(
    services: TestServices,
) -> None:
    client = redis_from_url(services.redis_url, single_connection_client=True)
    try:
        await client.ping()
        pipe = client.pipeline(transaction=False)
        assert await pipe.execute() == []
        del pipe  # no `async with`: redis-py's finaliser closes whatever connection it holds
        gc.collect()
        assert client.connection is not None and client.connection.is_connected
        assert await client.ping()
    finally:
        await client.aclose()
