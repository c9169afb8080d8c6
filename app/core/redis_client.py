"""The asyncio Redis client of the API and the worker processes."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.connection import HiredisRespSerializer
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


def redis_from_url(url: str, **options: Any) -> aioredis.Redis:
    client: aioredis.Redis = aioredis.Redis.from_url(
        url, connection_class=HiredisPackedConnection, **options
    )
    return client
