"""The beat task that gives idle hand-offs back to the bot: a conversation a person took
over and then left alone longer than HUMAN_INACTIVITY_TIMEOUT_HOURS is the bot's again
even if the customer never writes (the inbound pipeline covers the case where they do)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import get_settings
from app.db.models import Conversation, ConversationMode
from app.db.repositories.conversations import ConversationRepository
from app.worker import runtime as runtime_module
from app.worker.tasks import release_idle_handoffs
from tests.conftest import Clock, LoggedEvents, TestServices
from tests.factories import add_conversation_for, add_customer


@pytest.fixture
def fresh_runtime(services: TestServices) -> Iterator[None]:
    # The task builds its runtime from the settings of the moment: the test database's.
    runtime_module.shutdown_runtime()
    yield
    runtime_module.shutdown_runtime()


def timeout() -> timedelta:
    return timedelta(hours=get_settings().human_inactivity_timeout_hours)


async def add_handoff(engine: AsyncEngine, user_id: str, clock: Clock) -> int:
    """A conversation a person takes over now."""
    async with AsyncSession(engine) as session, session.begin():
        customer = await add_customer(session, user_id)
        conversation = await add_conversation_for(
            session, customer, mode=ConversationMode.HUMAN, human_since=clock.now()
        )
        return conversation.id


async def conversations(engine: AsyncEngine) -> dict[int, Conversation]:
    async with AsyncSession(engine) as session:
        return {row.id: row for row in (await session.scalars(select(Conversation))).all()}


async def test_idle_handoffs_go_back_to_the_bot_and_recent_ones_stay(
    fresh_runtime: None, committed_db: AsyncEngine, clock: Clock, logged_events: LoggedEvents
) -> None:
    idle = await add_handoff(committed_db, "cust-idle", clock)
    clock.advance(timeout() - timedelta(hours=1))
    recent = await add_handoff(committed_db, "cust-recent", clock)
    async with AsyncSession(committed_db) as session, session.begin():
        bot = (await add_conversation_for(session, await add_customer(session, "cust-bot"))).id
    before = await conversations(committed_db)
    clock.advance(timedelta(hours=1, minutes=1))

    # The task as beat has the worker run it; in a thread, as it drives a loop of its own.
    result = await asyncio.to_thread(release_idle_handoffs.apply)

    assert result.successful(), result.traceback
    assert result.get() == 1
    after = await conversations(committed_db)
    assert (after[idle].mode, after[idle].human_since) == (ConversationMode.BOT, None)
    assert (after[recent].mode, after[recent].human_since) == (
        ConversationMode.HUMAN,
        before[recent].human_since,
    )
    assert (after[bot].mode, after[bot].human_since) == (ConversationMode.BOT, None)
    released = [line for line in logged_events() if line["event"] == "handoffs_released"]
    assert [line["count"] for line in released] == [1]


async def test_nothing_idle_nothing_released(
    fresh_runtime: None, committed_db: AsyncEngine, clock: Clock
) -> None:
    await add_handoff(committed_db, "cust-recent", clock)
    clock.advance(timeout() - timedelta(minutes=1))
    result = await asyncio.to_thread(release_idle_handoffs.apply)
    assert result.get() == 0
    (conversation,) = (await conversations(committed_db)).values()
    assert conversation.mode is ConversationMode.HUMAN


async def test_idle_means_strictly_longer_than_the_timeout(
    session: AsyncSession, clock: Clock
) -> None:
    # The same boundary as transitions.handoff_lapsed, which the inbound pipeline asks:
    # the task and a customer's message must never disagree about one conversation.
    customer = await add_customer(session)
    taken_over = clock.now()
    conversation = await add_conversation_for(
        session, customer, mode=ConversationMode.HUMAN, human_since=taken_over
    )
    repository = ConversationRepository(session)
    assert await repository.idle_handoffs(taken_over) == []
    assert await repository.idle_handoffs(taken_over + timedelta(microseconds=1)) == [conversation]
