"""The pool pings a connection only after it sat idle (app.db.session.ping_idle_connections):
a dead idle connection is replaced before anyone uses it; one in steady use is not pinged,
and its death costs one failed statement, after which the pool is new."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.db.session import ping_idle_connections
from tests.conftest import TestServices


@pytest.fixture
async def admin(services: TestServices) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(services.database_url, pool_size=1)
    yield engine
    await engine.dispose()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(admin: AsyncEngine, pid: int) -> None:
    async with admin.connect() as connection:
        # With a timeout it returns once the backend is gone, not when signalled.
        await connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        await connection.commit()


@pytest.fixture
def pool_whose_connection_died(
    services: TestServices, admin: AsyncEngine
) -> Callable[[float], AbstractAsyncContextManager[tuple[AsyncEngine, int]]]:
    """An engine of one pooled connection, pinged after `idle_seconds`, whose connection's
    backend was terminated after it went back to the pool; with that backend's pid."""

    @asynccontextmanager
    async def build(idle_seconds: float) -> AsyncIterator[tuple[AsyncEngine, int]]:
        engine = create_async_engine(services.database_url, pool_size=1, max_overflow=0)
        ping_idle_connections(engine, idle_seconds=idle_seconds)
        try:
            dead = await _backend_pid(engine)
            await _terminate(admin, dead)
            yield engine, dead
        finally:
            await engine.dispose()

    return build


async def test_an_idle_connection_that_died_is_replaced_at_checkout(
    pool_whose_connection_died: Callable[
        [float], AbstractAsyncContextManager[tuple[AsyncEngine, int]]
    ],
) -> None:
    async with pool_whose_connection_died(0.0) as (engine, dead):
        # The ping finds it dead: the statement runs on a new connection, no error seen.
        replacement = await _backend_pid(engine)
        assert replacement != dead
        assert await _backend_pid(engine) == replacement  # the new one is kept and lent


async def test_a_connection_in_steady_use_is_not_pinged_and_its_death_renews_the_pool(
    pool_whose_connection_died: Callable[
        [float], AbstractAsyncContextManager[tuple[AsyncEngine, int]]
    ],
) -> None:
    async with pool_whose_connection_died(3600.0) as (engine, dead):
        # Returned a moment ago, so not pinged: its statement meets the dead backend.
        with pytest.raises(DBAPIError) as failed:
            await _backend_pid(engine)
        assert failed.value.connection_invalidated
        # The retry (the task's, the next request's) gets a new connection.
        assert await _backend_pid(engine) != dead
