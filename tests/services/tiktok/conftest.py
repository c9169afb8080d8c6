"""The TikTok client against the sandbox over real HTTP, with the run's real Redis and
PostgreSQL. Each client gets its own HTTP pool and Redis connection, like a worker process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import aiohttp
import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.core.config import Settings, get_settings
from app.db.session import SessionFactory
from app.sandbox.control import SandboxControl
from app.sandbox.server import BackgroundServer, start_tiktok_sandbox
from app.services.tiktok.client import TikTokClient
from app.services.tiktok.tokens import DbTokenStore, TokenStore
from app.services.tiktok.transport import build_http_client
from tests.conftest import TestServices


@pytest.fixture(scope="session")
def sandbox_server(services: TestServices) -> Iterator[BackgroundServer]:
    server = start_tiktok_sandbox(get_settings(), webhook_url=None)
    yield server
    server.stop()


@pytest.fixture
async def sandbox(sandbox_server: BackgroundServer) -> AsyncIterator[SandboxControl]:
    async with SandboxControl(sandbox_server.url) as control:
        await control.reset()
        yield control


@pytest.fixture
def tiktok_settings(sandbox_server: BackgroundServer) -> Settings:
    # A high rate keeps the tests quick; the rate-limit test sets its own.
    return get_settings().model_copy(
        update={
            "tiktok_api_base": sandbox_server.url,
            "send_rate_per_second": 100,
            "tiktok_http_timeout_seconds": 5.0,
        }
    )


@pytest.fixture
def token_sessions(committed_db: AsyncEngine) -> SessionFactory:
    # Committed sessions: several clients share the credential row concurrently, which the
    # savepoint-per-test factory (one connection) cannot do.
    return async_sessionmaker(committed_db, expire_on_commit=False, autoflush=False)


class ClientFactory(Protocol):
    def __call__(
        self,
        settings: Settings | None = None,
        *,
        store: TokenStore | None = None,
        http: aiohttp.ClientSession | None = None,
        **kwargs: Any,
    ) -> TikTokClient: ...


@pytest.fixture
async def make_client(
    services: TestServices,
    tiktok_settings: Settings,
    token_sessions: SessionFactory,
    redis_client: aioredis.Redis,
) -> AsyncIterator[ClientFactory]:
    """Builds clients that look like separate worker processes; `redis_client` is only
    requested so that its flush runs after these clients are closed."""
    opened: list[tuple[aiohttp.ClientSession, aioredis.Redis]] = []

    def factory(
        settings: Settings | None = None,
        *,
        store: TokenStore | None = None,
        http: aiohttp.ClientSession | None = None,
        **kwargs: Any,
    ) -> TikTokClient:
        chosen = settings or tiktok_settings
        http = http or build_http_client(chosen)
        redis: aioredis.Redis = aioredis.Redis.from_url(services.redis_url)
        opened.append((http, redis))
        return TikTokClient(
            chosen,
            http,
            redis,
            store or DbTokenStore.from_settings(token_sessions, chosen),
            **kwargs,
        )

    yield factory
    for http, redis in opened:
        await http.close()
        await redis.aclose()
