"""Test services: real PostgreSQL and Redis.

With DATABASE_URL/REDIS_URL set (CI) the tests use those servers; otherwise they start
the embedded ones. Either way the session gets a database of its own, built by Alembic,
and a Redis database index of its own, so parallel runs never see each other's rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

os.environ["ENVIRONMENT"] = "test"
os.environ.setdefault("LOG_JSON", "true")

from app.core import clock as app_clock
from app.core.config import get_settings, normalize_database_url
from app.core.embedded import EmbeddedServices
from app.core.logging import configure_logging
from app.db.migrate import create_scratch_database, drop_database, upgrade_to_head
from app.db.session import SessionFactory
from app.sandbox.redis_claims import CLAIM_TTL_SECONDS, claim_key

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The chaos suite restarts databases and runs minutes of load: `make chaos` runs it
    (PHILIA_CHAOS=1), `make test` leaves it out."""
    if os.environ.get("PHILIA_CHAOS") == "1":
        return
    chaos = [item for item in items if item.get_closest_marker("chaos") is not None]
    if chaos:
        config.hook.pytest_deselected(items=chaos)
        items[:] = [item for item in items if item.get_closest_marker("chaos") is None]


@dataclass(frozen=True)
class TestServices:
    __test__ = False  # a fixture's value, not a test class

    database_url: str
    redis_url: str
    embedded: bool


def _with_redis_db(url: str, index: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{index}", parts.query, parts.fragment))


# Test sessions running side by side on one Redis (a CI rehearsal beside a developer's run,
# a scenario run inside a session) must not share a database index: one's flush would wipe
# the other's keys. Each claims its index in database 0 (app.sandbox.redis_claims).
def _claim_redis_db(url: str) -> tuple[int, Callable[[], None]]:
    claims = redis.Redis.from_url(_with_redis_db(url, 0))
    token = f"{os.getpid()}-{random.random()}"
    indexes = random.sample(range(1, 16), 15)
    for index in indexes:
        key = claim_key(index)
        if claims.set(key, token, nx=True, ex=CLAIM_TTL_SECONDS):

            def release(key: str = key) -> None:
                if claims.get(key) == token.encode():
                    claims.delete(key)
                claims.close()

            return index, release
    claims.close()
    # Fifteen sessions at once: share one rather than refuse to run.
    return indexes[0], lambda: None


@pytest.fixture(scope="session")
def services() -> Iterator[TestServices]:
    server_db = os.environ.get("DATABASE_URL") or None
    server_redis = os.environ.get("REDIS_URL") or None
    embedded: EmbeddedServices | None = None
    scratch: Path | None = None
    if server_db is None or server_redis is None:
        scratch = Path(tempfile.mkdtemp(prefix="philia-test-"))
        embedded = EmbeddedServices(scratch)
        embedded.start(need_postgres=server_db is None, need_redis=server_redis is None)
        server_db = server_db or (embedded.postgres.url if embedded.postgres else None)
        server_redis = server_redis or (embedded.redis.url if embedded.redis else None)
    assert server_db is not None and server_redis is not None
    database_url = asyncio.run(
        create_scratch_database(normalize_database_url(server_db), "philia_test")
    )
    redis_index, release_redis_db = _claim_redis_db(server_redis)
    redis_url = _with_redis_db(server_redis, redis_index)
    upgrade_to_head(database_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    get_settings.cache_clear()
    try:
        yield TestServices(database_url, redis_url, embedded is not None)
    finally:
        release_redis_db()
        asyncio.run(drop_database(database_url))
        if embedded is not None:
            embedded.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
async def engine(services: TestServices) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(services.database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session_factory(engine: AsyncEngine) -> AsyncIterator[SessionFactory]:
    """Sessions whose commits are savepoints of one outer transaction rolled back after
    the test: code under test owns its transactions, the test leaves nothing behind."""
    async with engine.connect() as connection:
        outer = await connection.begin()
        yield async_sessionmaker(
            bind=connection,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        )
        await outer.rollback()


@pytest.fixture
async def session(session_factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    async with session_factory() as session:
        yield session


async def truncate_all(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        tables = (
            await connection.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
        ).scalars()
        names = ", ".join(f'"{name}"' for name in tables)
        if names:
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def committed_db(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """For tests whose other processes must see the rows: truncate everything afterwards."""
    yield engine
    await truncate_all(engine)


@pytest.fixture
async def redis_client(services: TestServices) -> AsyncIterator[aioredis.Redis]:
    client: aioredis.Redis = aioredis.Redis.from_url(services.redis_url)
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.exists():
        pytest.skip("../shared is not beside this checkout")
    return SHARED_DIR


@dataclass
class Clock:
    """The app's clock as a test drives it: `moved_by` for a block, `advance` for the rest
    of the test. In-process only (see app/core/clock.py): Redis expiries and processes the
    test starts keep real time."""

    _moves: ExitStack = field(default_factory=ExitStack)

    def now(self) -> datetime:
        return app_clock.utc_now()

    def moved_by(self, delta: timedelta) -> AbstractContextManager[None]:
        return app_clock.moved_by(delta)

    def advance(self, delta: timedelta) -> None:
        self._moves.enter_context(app_clock.moved_by(delta))


@pytest.fixture
def clock() -> Iterator[Clock]:
    moved = Clock()
    with moved._moves:
        yield moved
    # A test that left time moved would shift every later test's "now" without a trace.
    assert abs(app_clock.utc_now() - datetime.now(UTC)) < timedelta(seconds=5)


LoggedEvents = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logged_events(capfd: pytest.CaptureFixture[str]) -> Iterator[LoggedEvents]:
    """The JSON records this process logged since the last call, as the app writes them:
    configured here because a test run in isolation would otherwise log through
    structlog's defaults, not through the app's handler."""
    configure_logging(get_settings().model_copy(update={"log_json": True, "log_level": "INFO"}))
    capfd.readouterr()

    def read() -> list[dict[str, Any]]:
        out = capfd.readouterr().out
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    yield read
    configure_logging(get_settings())
