"""A turn's own writes ride in the statements it runs anyway: the window's mirror in the
one that records the message, the messages' settling in the one that queues the first
reply. The ORM has nothing left to flush, and the loaded objects agree with the rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.core.clock import unix_now
from app.db.models import Conversation, Message
from app.db.repositories import conversations
from app.db.repositories.conversations import (
    ConversationRepository,
    MessageRepository,
    OutboxRepository,
    SettledTurn,
)
from app.db.session import create_session_factory, transaction
from app.services.turns import Reply, TurnResult
from tests.factories import CONVERSATION_ID, CUSTOMER_ID, text_message
from tests.services.pipeline.conftest import Harness
from tests.statements import statements_sent

MakeHarness = Callable[..., Harness]
WINDOW = timedelta(hours=48)


async def conversation_row(engine: AsyncEngine) -> Conversation:
    async with AsyncSession(engine) as session:
        return (await session.scalars(select(Conversation))).one()


def stamp(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class EntitiesBrain:
    async def respond(self, session, conversation, customer, turn):  # type: ignore[no-untyped-def]
        return TurnResult(
            "availability", "local", entities={"sku": "PT-0001"}, replies=[Reply("yes")]
        )


async def test_a_returning_customers_dm_costs_three_statements_and_no_orm_write(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness(brain=EntitiesBrain())
    sent_at = datetime.now(UTC).replace(microsecond=0)
    earlier = stamp(sent_at - timedelta(hours=1))
    await harness.receive(text_message("is PT-0001 here", message_id="first", timestamp_ms=earlier))
    await harness.deliver_queued()
    with statements_sent(committed_db) as seen:
        await harness.receive(
            text_message("and PT-0001?", message_id="again", timestamp_ms=stamp(sent_at))
        )
    # Lock the conversation; record the message (and move the window); queue the reply
    # (and settle the turn). Nothing else: no UPDATE of a loaded row at the flush.
    assert [statement.split()[0:3] for statement in seen] == [
        ["WITH", "existing", "AS"],
        ["WITH", "new_message", "AS"],
        ["WITH", "settled", "AS"],
    ]
    conversation = await conversation_row(committed_db)
    assert conversation.window_expires_at == sent_at + WINDOW
    assert conversation.last_customer_message_at == sent_at
    assert conversation.replies_in_window == 0  # a new message, a fresh quota
    async with AsyncSession(committed_db) as session:
        again = (await session.scalars(select(Message).where(Message.event_id == "again"))).one()
    assert (again.status, again.status_reason) == ("processed", None)
    assert (again.intent, again.router_source, again.entities) == (
        "availability",
        "local",
        {"sku": "PT-0001"},
    )


class RememberingBrain:
    """Remembers the last words in the conversation's context, as the shop's brain
    remembers the piece talked about."""

    async def respond(self, session, conversation, customer, turn):  # type: ignore[no-untyped-def]
        conversation.context = {**conversation.context, "last": turn[-1].text}
        return TurnResult("other", "local", replies=[Reply("noted")])


async def test_the_context_a_turn_changed_is_written_with_its_reply(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness(brain=RememberingBrain())
    await harness.receive(text_message("first", message_id="c1"))
    with statements_sent(committed_db) as seen:
        await harness.receive(text_message("second", message_id="c2"))
    assert [statement.split()[0:3] for statement in seen] == [
        ["WITH", "existing", "AS"],
        ["WITH", "new_message", "AS"],
        ["WITH", "settled", "AS"],  # the reply, the messages and the context
    ]
    assert (await conversation_row(committed_db)).context == {"last": "second"}


async def test_a_late_older_message_moves_neither_the_window_nor_the_quota_back(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    newer = datetime.now(UTC).replace(microsecond=0)
    older = newer - timedelta(hours=2)
    await harness.receive(text_message("newer", message_id="newer", timestamp_ms=stamp(newer)))
    await harness.deliver_queued()  # one reply out: one slot spent in this window
    await harness.receive(text_message("older", message_id="older", timestamp_ms=stamp(older)))
    conversation = await conversation_row(committed_db)
    assert conversation.window_expires_at == newer + WINDOW
    assert conversation.last_customer_message_at == newer
    assert conversation.replies_in_window == 1
    assert int(await redis_client.get(redis_keys.window(CUSTOMER_ID)) or 0) == stamp(newer + WINDOW)
    assert int(await redis_client.get(redis_keys.quota(CUSTOMER_ID)) or 0) == 1


async def test_a_message_recorded_past_its_window_leaves_the_mirror_alone(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    recent = datetime.now(UTC).replace(microsecond=0)
    await harness.receive(text_message("hi", message_id="recent", timestamp_ms=stamp(recent)))
    closed_at = recent - WINDOW - timedelta(hours=1)
    await harness.receive(text_message("x", message_id="stale", timestamp_ms=stamp(closed_at)))
    conversation = await conversation_row(committed_db)
    assert conversation.window_expires_at == recent + WINDOW


async def test_the_loaded_objects_agree_with_what_the_statements_wrote(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    make_harness()
    sessions = create_session_factory(committed_db)
    sent_at = datetime.now(UTC).replace(microsecond=0)
    window_end = sent_at + WINDOW
    assert unix_now() < window_end.timestamp()
    async with transaction(sessions) as session:
        conversation, _ = await ConversationRepository(session).ensure_locked(
            CONVERSATION_ID, CUSTOMER_ID, "someone"
        )
        conversation.replies_in_window = 0
        message, others_waiting = await MessageRepository(session).record_inbound(
            conversation.id, "event-1", "text", "hi", {}, sent_at, window_end
        )
        assert message is not None and not others_waiting
        assert (conversation.window_expires_at, conversation.last_customer_message_at) == (
            window_end,
            sent_at,
        )
        assert not session.is_modified(conversation)
        await OutboxRepository(session).queue(
            conversation.id,
            "text",
            "hello",
            {},
            "bot",
            settling=SettledTurn([message], None, "menu", "menu", {"n": 1}),
        )
        assert (message.status, message.intent, message.entities) == ("processed", "menu", {"n": 1})
        assert not session.is_modified(message)
        # A later change of the conversation writes only itself, never the window back.
        conversation.context = {"greeted": True}
    row = await conversation_row(committed_db)
    assert (row.window_expires_at, row.context) == (window_end, {"greeted": True})


async def test_a_turn_with_nothing_to_say_is_settled_by_a_statement_of_its_own(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    await harness.receive(text_message("3", message_id="handover"))  # a person follows up
    with statements_sent(committed_db) as seen:
        await harness.receive(text_message("hello?", message_id="silenced"))
    async with AsyncSession(committed_db) as session:
        silenced = (
            await session.scalars(select(Message).where(Message.event_id == "silenced"))
        ).one()
    assert silenced.status == "processed"
    assert silenced.status_reason is not None and "human mode" in silenced.status_reason
    assert silenced.intent is None  # the brain never read it
    assert [statement.split()[0:2] for statement in seen][-1] == ["WITH", "context_saved"]


@pytest.mark.parametrize(
    "name",
    [
        "_LOCKED_OR_CREATED",
        "_RECORD_INBOUND",
        "_QUEUE",
        "_QUEUE_SETTLING",
        "_SETTLE",
        "_CLAIM",
        "_MARK_SENT",
    ],
)
def test_a_statement_of_every_dm_is_rendered_once_not_at_every_execution(name: str) -> None:
    # An IN list is a "post-compile" parameter: SQLAlchemy renders it into the statement
    # again at each execution, which cost the claim a third of its time in Python.
    compiled = getattr(conversations, name).compile(dialect=asyncpg.dialect())
    assert not compiled.post_compile_params
