"""`single_statement` runs its statement without BEGIN and COMMIT: PostgreSQL starts the
transaction with the statement and commits it at its end. What it saves is the two round
trips; what it gives up is atomicity across statements, which these tests pin down."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.models import Customer
from app.db.session import create_session_factory, single_statement, transaction
from tests.statements import in_transaction_block


async def test_its_statement_commits_by_itself_with_no_transaction_block(
    committed_db: AsyncEngine,
) -> None:
    sessions = create_session_factory(committed_db)
    async with single_statement(sessions) as session:
        await session.execute(select(func.now()))
        assert not await in_transaction_block(session)
    async with transaction(sessions) as session:
        await session.execute(select(func.now()))
        assert await in_transaction_block(session)


async def test_what_it_wrote_stays_written_when_the_block_fails_later(
    committed_db: AsyncEngine,
) -> None:
    sessions = create_session_factory(committed_db)
    with pytest.raises(RuntimeError):
        async with single_statement(sessions) as session:
            await session.execute(
                text("INSERT INTO customers (tiktok_user_id) VALUES ('on-its-own')")
            )
            raise RuntimeError("after the statement")
    with pytest.raises(RuntimeError):
        async with transaction(sessions) as session:
            await session.execute(text("INSERT INTO customers (tiktok_user_id) VALUES ('in-one')"))
            raise RuntimeError("after the statement")
    async with sessions() as session:
        names = (await session.scalars(select(Customer.tiktok_user_id))).all()
        assert names == ["on-its-own"]
        # The connection went back to the pool as it came: the next user gets a BEGIN.
        assert await in_transaction_block(session)
