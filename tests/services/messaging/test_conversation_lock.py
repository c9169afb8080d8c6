"""The statement every customer message starts with: lock the conversation, creating it
(and its customer) on the first message. One statement either way; what it returns are the
session's own objects, and the row is locked until the transaction ends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import Conversation, ConversationMode, Customer
from app.db.repositories.conversations import ConversationRepository
from tests.conftest import TestServices


async def lock(engine: AsyncEngine, conversation: str, user: str) -> tuple[int, int, bool]:
    async with AsyncSession(engine) as session, session.begin():
        found, customer, created = await ConversationRepository(session).locked_or_created(
            conversation, user, "mia"
        )
        return found.id, customer.id, created


async def test_the_first_message_creates_both_and_the_next_finds_them(
    committed_db: AsyncEngine,
) -> None:
    async with AsyncSession(committed_db) as session, session.begin():
        conversation, customer, created = await ConversationRepository(session).locked_or_created(
            "conv-1", "user-1", "mia"
        )
        assert created
        assert (conversation.tiktok_conversation_id, conversation.mode) == (
            "conv-1",
            ConversationMode.BOT,
        )
        assert (conversation.replies_in_window, conversation.context) == (0, {})
        assert (customer.tiktok_user_id, customer.username) == ("user-1", "mia")
        assert conversation.customer_id == customer.id
        # The session's own objects, as if loaded: nothing to flush, found by identity.
        assert not session.dirty and not session.new
        assert await session.get(Conversation, conversation.id) is conversation
        assert await session.get(Customer, customer.id) is customer
        conversation.context = {"shop": {"last_sku": "PT-0001"}}  # a change is flushed
        ids = (conversation.id, customer.id)
    assert await lock(committed_db, "conv-1", "user-1") == (*ids, False)
    async with AsyncSession(committed_db) as session:
        stored = await session.scalar(select(Conversation.context))
        assert stored == {"shop": {"last_sku": "PT-0001"}}
    # The same customer writing from another conversation is the same customer.
    other, same_customer, created = await lock(committed_db, "conv-2", "user-1")
    assert created and other != ids[0] and same_customer == ids[1]


async def test_a_conversation_the_session_holds_already_is_the_one_returned_and_refreshed(
    committed_db: AsyncEngine,
) -> None:
    await lock(committed_db, "conv-1", "user-1")
    async with AsyncSession(committed_db) as session, session.begin():
        held = (await session.scalars(select(Conversation))).one()
        async with AsyncSession(committed_db) as other, other.begin():
            await other.execute(text("UPDATE conversations SET replies_in_window = 4"))
        conversation, customer, created = await ConversationRepository(session).locked_or_created(
            "conv-1", "user-1", "mia"
        )
        assert conversation is held and not created
        assert conversation.replies_in_window == 4  # as the locked row has it
        assert not session.dirty and await session.get(Customer, customer.id) is customer


@pytest.mark.parametrize("existing", [False, True], ids=["created", "found"])
async def test_the_row_stays_locked_until_the_transaction_ends(
    committed_db: AsyncEngine, existing: bool
) -> None:
    if existing:
        await lock(committed_db, "conv-1", "user-1")
    async with AsyncSession(committed_db) as holder, holder.begin():
        conversation, _, _ = await ConversationRepository(holder).locked_or_created(
            "conv-1", "user-1", None
        )
        await holder.flush()
        async with AsyncSession(committed_db) as other, other.begin():
            await other.execute(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await ConversationRepository(other).locked_or_created("conv-1", "user-1", None)
        assert conversation.tiktok_conversation_id == "conv-1"


async def test_two_first_messages_at_once_create_one_conversation(
    committed_db: AsyncEngine,
) -> None:
    results = await asyncio.gather(
        *(lock(committed_db, "conv-race", "user-race") for _ in range(6))
    )
    assert len({(conversation, customer) for conversation, customer, _ in results}) == 1
    assert [created for _, _, created in results].count(True) == 1
    async with AsyncSession(committed_db) as session:
        assert len((await session.scalars(select(Conversation))).all()) == 1
        assert len((await session.scalars(select(Customer))).all()) == 1


# What a worker process does first with its database: before any ORM query has run in it.
_FIRST_THING_IN_A_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from app.db.repositories.conversations import ConversationRepository, MessageRepository

    async def main() -> None:
        engine = create_async_engine(sys.argv[1])
        async with AsyncSession(engine) as session, session.begin():
            conversation, customer, _ = await ConversationRepository(
                session
            ).locked_or_created("conv-fresh", "user-fresh", None)
            message, _ = await MessageRepository(session).record_inbound(
                conversation.id, "fresh-1", "text", "hi", {}, conversation.created_at, None
            )
            assert message is not None and message.conversation_id == conversation.id
            print(customer.tiktok_user_id)
        await engine.dispose()

    asyncio.run(main())
    """
)


async def test_the_first_statement_of_a_fresh_process_returns_session_objects(
    committed_db: AsyncEngine, services: TestServices
) -> None:
    # The rows become objects without a constructor, which is what would otherwise have
    # set the mappers up: a worker's first DM is the first use of the ORM in its process.
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _FIRST_THING_IN_A_PROCESS, services.database_url],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "user-fresh"
