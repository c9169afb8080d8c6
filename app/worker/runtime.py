"""Async code inside Celery's synchronous tasks.

Each worker process owns one event loop, and the engine, Redis client and HTTP
clients are created on it and live as long as the process. Prefork workers fork from
a parent that may already hold connections: after the fork the child abandons the
inherited engine (without closing the parent's sockets) and builds its own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import httpx
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings, get_settings
from app.core.redis_client import redis_from_url
from app.db.session import SessionFactory, create_engine, create_session_factory
from app.services.tiktok.transport import build_http_client

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it runs: a DM turns the loop over a hundred times (database,
    Redis, TikTok), and asyncio's own loop spends a share of the worker's CPU on that."""
    try:
        import uvloop
    except ImportError:  # no uvloop for this platform: asyncio's loop does the same work
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        self.pid = os.getpid()
        self.settings = settings
        self.loop = new_event_loop()
        self.engine: AsyncEngine = create_engine(settings)
        self.session_factory: SessionFactory = create_session_factory(self.engine)
        # One connection for every command: a pool's checkout (with its check that the
        # connection holds no stray reply) cost ~3 % of a DM's instructions. The turns of a
        # batch (`process_events`) take turns on it through its lock, one short command at
        # a time (nothing on the event path blocks on Redis). A cancelled command closes the
        # connection rather than leave its reply to the next (tests/worker/test_runtime.py).
        # Its pipelines run on that connection too (`SharedConnectionPipeline`).
        self.redis: aioredis.Redis = redis_from_url(
            settings.redis_url or "",
            socket_timeout=5.0,
            socket_connect_timeout=2.0,
            single_connection_client=True,
        )
        self.http = httpx.AsyncClient(timeout=settings.tiktok_http_timeout_seconds)
        self._tiktok_http: aiohttp.ClientSession | None = None
        self.services: dict[str, Any] = {}  # per-process singletons built on this loop

    @property
    def tiktok_http(self) -> aiohttp.ClientSession:
        """The HTTP client for TikTok's API, built at first use: on this loop, running."""
        if self._tiktok_http is None:
            self._tiktok_http = build_http_client(self.settings)
        return self._tiktok_http

    def run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)

    def service(self, name: str, build: Callable[[WorkerRuntime], T]) -> T:
        """A per-process singleton (TikTok client, router...), built once on first use."""
        if name not in self.services:
            self.services[name] = build(self)
        built: T = self.services[name]
        return built

    def abandon_after_fork(self) -> None:
        # close=False: the sockets belong to the parent; closing them here would break it.
        # The old pool stays referenced (and so does this runtime, see `_abandoned`): if
        # the child garbage-collected it, asyncpg's finalizers would terminate the
        # parent's connections through the shared sockets.
        self._parent_pool = self.engine.sync_engine.pool
        self.engine.sync_engine.dispose(close=False)

    def close(self) -> None:
        async def _close() -> None:
            for service in self.services.values():
                closer = getattr(service, "aclose", None)
                if closer is not None:
                    await closer()
            await self.http.aclose()
            if self._tiktok_http is not None:
                await self._tiktok_http.close()
            await self.redis.aclose()
            await self.engine.dispose()

        try:
            self.loop.run_until_complete(_close())
        finally:
            self.loop.close()


_runtime: WorkerRuntime | None = None
# Runtimes inherited from a parent process are kept referenced forever in the child: if
# they were garbage-collected here, their connections' finalizers would act on sockets
# that still belong to the parent.
_abandoned: list[WorkerRuntime] = []


def get_runtime() -> WorkerRuntime:
    global _runtime
    if _runtime is not None and _runtime.pid != os.getpid():
        reset_after_fork()
    if _runtime is None:
        _runtime = WorkerRuntime(get_settings())
    return _runtime


def run_async(work: Callable[[WorkerRuntime], Awaitable[T]]) -> T:
    """The one way tasks run async code: on this process's loop, with its clients."""
    runtime = get_runtime()
    return runtime.run(work(runtime))


def reset_after_fork() -> None:
    global _runtime
    if _runtime is not None and _runtime.pid != os.getpid():
        _runtime.abandon_after_fork()
        _abandoned.append(_runtime)
        _runtime = None


def shutdown_runtime() -> None:
    global _runtime
    if _runtime is not None and _runtime.pid == os.getpid():
        _runtime.close()
    _runtime = None
