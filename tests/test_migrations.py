"""Data migrations keep what the shop already has: a migration that moves history is run
from the revision before it, over rows written the way that revision wrote them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.migrate import alembic_config, create_scratch_database, drop_database

if TYPE_CHECKING:
    from tests.conftest import TestServices


@pytest.fixture
def blank_database(services: TestServices) -> Iterator[str]:
    url = asyncio.run(create_scratch_database(services.database_url, "philia_migration"))
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))


async def _run(url: str, *statements: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            results = [await connection.execute(text(statement)) for statement in statements]
            return [result.all() if result.returns_rows else None for result in results]
    finally:
        await engine.dispose()


def test_0005_makes_every_earlier_request_for_a_person_a_handoff(blank_database: str) -> None:
    config = alembic_config(blank_database)
    command.upgrade(config, "0004")
    asyncio.run(
        _run(
            blank_database,
            "INSERT INTO customers (id, tiktok_user_id, usual_size) VALUES (1, 'cust-1', NULL)",
            "INSERT INTO conversations (id, tiktok_conversation_id, customer_id, mode, "
            "replies_in_window, last_inbound_sequence, context) "
            "VALUES (7, 'conv-1', 1, 'human', 0, 0, '{}')",
            "INSERT INTO messages (conversation_id, direction, message_type, payload, entities, "
            "status, intent, created_at) VALUES "
            "(7, 'inbound', 'text', '{}', '{}', 'processed', 'availability', "
            " '2026-11-01T10:00:00Z'),"
            "(7, 'inbound', 'text', '{}', '{}', 'processed', 'human', '2026-11-01T10:05:00Z'),"
            "(7, 'outbound', 'text', '{}', '{}', 'sent', 'human', '2026-11-01T10:05:01Z')",
        )
    )
    command.upgrade(config, "head")
    (handoffs,) = asyncio.run(
        _run(
            blank_database,
            "SELECT conversation_id, (started_at AT TIME ZONE 'UTC')::text, reason FROM handoffs",
        )
    )
    assert [tuple(row) for row in handoffs] == [
        (7, "2026-11-01 10:05:00", "customer asked for a person")
    ]
    # And back: the table goes, the messages stay.
    command.downgrade(config, "0004")
    (tables, messages) = asyncio.run(
        _run(
            blank_database,
            "SELECT to_regclass('handoffs') IS NULL",
            "SELECT count(*) FROM messages",
        )
    )
    assert tables == [(True,)] and messages == [(3,)]
