"""The API's and the worker's Redis connections pack commands with hiredis: the bytes on
the wire must be what redis-py's own packer sends, and a client built with them must work
against a real Redis (commands, pipelines, scripts)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from app.core.redis_client import HiredisPackedConnection, redis_from_url
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
