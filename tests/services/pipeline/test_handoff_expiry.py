"""A hand-off nobody followed up lapses: the next customer message hands the conversation
back to the bot, which answers it. Until then the bot stays silent. Time is moved with the
app's clock rather than waited for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import Conversation, ConversationMode, Message
from app.services import replies
from app.services.messaging.inbound import Outcome
from tests.conftest import Clock, LoggedEvents
from tests.factories import echo, text_message
from tests.services.pipeline.conftest import Harness

MakeHarness = Callable[..., Harness]


async def the_conversation(engine: AsyncEngine) -> Conversation:
    async with AsyncSession(engine) as session:
        (conversation,) = (await session.scalars(select(Conversation))).all()
        return conversation


async def status_reason_of(engine: AsyncEngine, event_id: str) -> str | None:
    async with AsyncSession(engine) as session:
        return await session.scalar(
            select(Message.status_reason).where(Message.event_id == event_id)
        )


async def hand_off(harness: Harness) -> None:
    asked = len(harness.handoffs)
    await harness.receive(text_message("3"))  # the menu's "talk to a person"
    await harness.deliver_queued()
    assert harness.handoffs[asked:] == ["customer asked for a person"]


def timeout_of(harness: Harness) -> timedelta:
    return timedelta(hours=harness.settings.human_inactivity_timeout_hours)


async def test_after_the_timeout_the_bot_takes_the_conversation_back_and_answers(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    clock: Clock,
    logged_events: LoggedEvents,
) -> None:
    harness = make_harness()
    await hand_off(harness)
    taken_over = await the_conversation(committed_db)
    assert taken_over.mode is ConversationMode.HUMAN and taken_over.human_since is not None

    clock.advance(timeout_of(harness) + timedelta(minutes=1))
    assert await harness.receive(text_message("hello? anyone?")) is Outcome.HANDLED
    await harness.deliver_queued()

    assert [sent.text for sent in harness.sender.sent] == [replies.HANDOFF_CONFIRM, replies.MENU]
    released = await the_conversation(committed_db)
    assert released.mode is ConversationMode.BOT
    assert released.human_since is None
    assert "handoff_expired" in [line["event"] for line in logged_events()]


async def test_before_the_timeout_the_bot_stays_silent(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    clock: Clock,
    logged_events: LoggedEvents,
) -> None:
    harness = make_harness()
    await hand_off(harness)
    human_since = (await the_conversation(committed_db)).human_since

    clock.advance(timeout_of(harness) - timedelta(minutes=1))
    assert await harness.receive(text_message("hello?", message_id="waiting")) is Outcome.HANDLED

    assert harness.queued == []
    assert [sent.text for sent in harness.sender.sent] == [replies.HANDOFF_CONFIRM]
    still = await the_conversation(committed_db)
    assert (still.mode, still.human_since) == (ConversationMode.HUMAN, human_since)
    assert await status_reason_of(committed_db, "waiting") == "human mode: the bot stays silent"
    events = [line["event"] for line in logged_events()]
    assert "turn_silenced" in events and "handoff_expired" not in events


async def test_the_customer_writing_meanwhile_does_not_restart_the_timeout(
    make_harness: MakeHarness, committed_db: AsyncEngine, clock: Clock
) -> None:
    harness = make_harness()
    await hand_off(harness)
    timeout = timeout_of(harness)

    clock.advance(timeout / 2)
    await harness.receive(text_message("are you there?"))
    assert harness.queued == []
    clock.advance(timeout / 2 + timedelta(minutes=1))
    await harness.receive(text_message("hello?"))
    await harness.deliver_queued()

    assert [sent.text for sent in harness.sender.sent] == [replies.HANDOFF_CONFIRM, replies.MENU]
    assert (await the_conversation(committed_db)).mode is ConversationMode.BOT


async def test_a_staff_reply_from_the_app_restarts_the_timeout(
    make_harness: MakeHarness, committed_db: AsyncEngine, clock: Clock
) -> None:
    harness = make_harness()
    await hand_off(harness)
    timeout = timeout_of(harness)

    clock.advance(timeout / 2)
    assert await harness.receive(echo("Mia here, one moment!")) is Outcome.ECHO
    clock.advance(timeout / 2 + timedelta(minutes=1))
    await harness.receive(text_message("ok, waiting"))

    assert harness.queued == []
    assert (await the_conversation(committed_db)).mode is ConversationMode.HUMAN
    # ...until the timeout has passed since that reply.
    clock.advance(timeout / 2)
    await harness.receive(text_message("hello?"))
    await harness.deliver_queued()
    assert [sent.text for sent in harness.sender.sent] == [replies.HANDOFF_CONFIRM, replies.MENU]
