"""The SQL a block of code sends: for tests that pin what a path reads or writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession


@contextmanager
def statements_sent(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements sent to PostgreSQL while the block runs, whitespace collapsed."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def engine_of(session: AsyncSession) -> AsyncEngine:
    """The engine a test's session runs on."""
    return session.bind.engine  # type: ignore[union-attr,return-value]


async def in_transaction_block(session: AsyncSession) -> bool:
    """What PostgreSQL's last answer said of the session's connection (asyncpg reads it off
    the protocol): inside a BEGIN ... COMMIT or not."""
    raw = await (await session.connection()).get_raw_connection()
    return bool(raw.driver_connection.is_in_transaction())  # type: ignore[union-attr]
