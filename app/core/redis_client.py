"""The asyncio Redis client of the API and the worker processes."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection
from redis.connection import HiredisRespSerializer
from redis.exceptions import RedisError, ResponseError, WatchError
from redis.typing import EncodableT


class HiredisPackedConnection(Connection):
    """Commands packed by hiredis, in C, as redis-py's blocking client packs them when
    hiredis is installed; its asyncio client still packs every argument in a Python loop
    (redis-py 6.4): 5-10 µs of CPU a command here, and a DM sends about 13 of them. TLS
    and Unix-socket URLs keep redis-py's own connection classes (`from_url` picks those by
    the scheme)."""

    _packer: Any = HiredisRespSerializer()

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        packed: list[bytes] = self._packer.pack(*args)
        return packed


class SharedConnectionPipeline(Pipeline):
    """A pipeline of a client that keeps one connection (`single_connection_client`), run on
    that connection and taking turns with the client's commands through the client's lock.
    redis-py's pipelines check a connection out of the pool instead, and a checkout first
    polls the socket for a stray reply (a turn of the event loop with a timeout of zero):
    about 100 µs of CPU each in a worker's turn, which sends two pipelines per DM. WATCH
    is not supported (nothing here uses it): it would hold the connection across awaits."""

    def __init__(self, client: aioredis.Redis, *, transaction: bool) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, transaction, None)
        self._client = client

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if not self.command_stack:
            return []  # as redis-py answers it, without taking the connection
        client = self._client
        await client.initialize()  # its connection, made on first use
        async with client._single_conn_lock:
            connection = client.connection
            self.connection = connection
            try:
                return await super().execute(raise_on_error)
            except (ResponseError, WatchError):
                raise  # raised once every reply was read: the connection is in step
            except BaseException:
                # A reply that failed to convert midway (its callback raised), a cancelled
                # read, a lost connection: replies may be left unread where the client's
                # next command would read them as its own. (A pool's checkout would find
                # them; this connection is never checked out.) The next command reconnects.
                if connection is not None:
                    await connection.disconnect(nowait=True)
                raise
            finally:
                self.connection = None  # the client's, whatever happened

    async def watch(self, *names: Any) -> None:  # type: ignore[override]  # sync and async typed as one
        raise RedisError("WATCH is not supported on a shared-connection pipeline")

    async def reset(self) -> None:
        # The client's connection: not given back to the pool as a checked-out one would be.
        if self.connection is self._client.connection:
            self.connection = None
        await super().reset()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped


class PhiliaRedis(aioredis.Redis):
    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        if self.single_connection_client and shard_hint is None:
            return SharedConnectionPipeline(self, transaction=transaction)
        return super().pipeline(transaction, shard_hint)


def redis_from_url(url: str, **options: Any) -> aioredis.Redis:
    client: aioredis.Redis = PhiliaRedis.from_url(
        url, connection_class=HiredisPackedConnection, **options
    )
    return client
