from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings

SessionFactory = async_sessionmaker[AsyncSession]

# A connection back in the pool for longer than this is pinged before it is lent again.
# SQLAlchemy's pre-ping pings at every checkout: three round trips (BEGIN, a query,
# ROLLBACK) per transaction, nine of a DM's 23. A connection in steady use needs none:
# one that died under it (PostgreSQL restarted) fails its statement, which SQLAlchemy
# sees as a disconnect and which invalidates the whole pool, and the task's retry runs on
# new connections. The ping is for the quiet hours, when connections sit long enough for
# PostgreSQL or a proxy to have dropped them.
PING_AFTER_IDLE_SECONDS = 1.0
_RETURNED_AT = "philia_returned_at"


def create_engine(settings: Settings, database_url: str | None = None) -> AsyncEngine:
    url = database_url or settings.database_url
    if url is None:
        raise RuntimeError("DATABASE_URL is not set and no embedded database was started")
    engine = create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_recycle=1800,
    )
    ping_idle_connections(engine)
    return engine


def ping_idle_connections(
    engine: AsyncEngine, idle_seconds: float = PING_AFTER_IDLE_SECONDS
) -> None:
    """Ping a pooled connection at checkout when it has been idle over `idle_seconds`; a
    failed ping invalidates the pool (every connection as old is replaced), as
    SQLAlchemy's own pre-ping does."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        # `info` lives as long as the DBAPI connection: a replacement starts without it.
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _lent(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at <= idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool replaces this connection and tries again (twice at most).
            raise InvalidatePoolError(f"idle connection failed its ping: {error!r}") from error


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    # expire_on_commit=False: objects stay readable after the boundary commits.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """The unit of work of a request or task: commit on success, roll back on error."""
    async with factory() as session, session.begin():
        yield session


@asynccontextmanager
async def single_statement(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """For a write that is one statement, atomic by itself (a reply recorded as sent):
    run without BEGIN and COMMIT, which PostgreSQL does for the statement on its own. One
    round trip instead of three, on the path of every reply. A second statement in it
    would commit apart from the first: where two must stand or fall together, use
    `transaction`."""
    async with factory() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session
