"""Who sent an `im_send_msg` echo (../shared/spec/tiktok-api.md, "Who sent a message"):
the bot itself, TikTok's automations, another tool on the account, or a person. Only a
person takes the conversation over; every message the business sends spends the quota."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.db.models import (
    Conversation,
    ConversationMode,
    Direction,
    Message,
    MessageStatus,
    OutboxEntry,
    OutboxStatus,
)
from app.services import replies
from app.services.messaging.inbound import Outcome
from tests.conftest import LoggedEvents
from tests.factories import CUSTOMER_ID, echo, reaction_echo, text_message
from tests.services.pipeline.conftest import Harness

MakeHarness = Callable[..., Harness]


async def the_conversation(engine: AsyncEngine) -> Conversation:
    async with AsyncSession(engine) as session:
        (conversation,) = (await session.scalars(select(Conversation))).all()
        return conversation


async def shop_side(engine: AsyncEngine) -> list[Message]:
    async with AsyncSession(engine) as session:
        found = await session.scalars(
            select(Message).where(Message.direction == Direction.OUTBOUND).order_by(Message.id)
        )
        return list(found.all())


async def quota_used(redis: aioredis.Redis) -> int:
    return int(await redis.get(redis_keys.quota(CUSTOMER_ID)) or 0)


async def answered_once(harness: Harness) -> None:
    """The customer wrote and the bot answered (TikTok's id of the answer: tt-1)."""
    await harness.receive(text_message("hi"))
    await harness.deliver_queued()
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]


# --- ours ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [None, "API"])
async def test_the_echo_of_our_own_reply_changes_nothing(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    source: str | None,
) -> None:
    harness = make_harness()
    await answered_once(harness)
    assert await harness.receive(echo(replies.MENU, message_id="tt-1", source=source)) is (
        Outcome.ECHO
    )
    assert (await the_conversation(committed_db)).mode is ConversationMode.BOT
    assert [m.sent_by for m in await shop_side(committed_db)] == ["bot"]
    assert await quota_used(redis_client) == 1  # counted once, when it was sent


async def test_an_api_echo_confirms_our_interrupted_send(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness(resend_unconfirmed_after_seconds=None)
    await harness.receive(text_message("hi"))
    (outbox_id,) = harness.queued
    await harness.delivery._claim(outbox_id)  # the worker dies mid-call
    body = echo(replies.MENU, message_id="tt-lost", source="API")
    assert await harness.receive(body) is Outcome.ECHO
    async with AsyncSession(committed_db) as session:
        entry = await session.get(OutboxEntry, outbox_id)
        assert entry is not None and entry.status is OutboxStatus.SENT
    (reply,) = await shop_side(committed_db)
    assert (reply.tiktok_message_id, reply.sent_by) == ("tt-lost", "bot")
    assert (await the_conversation(committed_db)).mode is ConversationMode.BOT


@pytest.mark.parametrize(
    ("source", "auto_message_type"),
    [("APP", None), ("WEB", None), (None, "AUTO_REPLY")],
)
async def test_the_same_words_from_a_person_or_an_automation_confirm_no_send_of_ours(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    source: str | None,
    auto_message_type: str | None,
) -> None:
    harness = make_harness(resend_unconfirmed_after_seconds=None)
    await harness.receive(text_message("hi"))
    (outbox_id,) = harness.queued
    await harness.delivery._claim(outbox_id)
    body = echo(replies.MENU, source=source, auto_message_type=auto_message_type)
    assert await harness.receive(body) is Outcome.ECHO
    async with AsyncSession(committed_db) as session:
        entry = await session.get(OutboxEntry, outbox_id)
        assert entry is not None and entry.status is OutboxStatus.SENDING


# --- TikTok's automations: recorded, no hand-off, quota spent -------------------------------------


@pytest.mark.parametrize("kind", ["WELCOME_MESSAGE", "SUGGESTED_QUESTION", "AUTO_REPLY"])
async def test_an_automation_echo_is_recorded_without_a_handoff(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    kind: str,
) -> None:
    harness = make_harness()
    await answered_once(harness)
    body = echo("Welcome to Philia!", source="APP", auto_message_type=kind)
    assert await harness.receive(body) is Outcome.ECHO
    conversation = await the_conversation(committed_db)
    assert conversation.mode is ConversationMode.BOT and conversation.human_since is None
    automated = (await shop_side(committed_db))[-1]
    assert (automated.sent_by, automated.text, automated.status) == (
        "tiktok_automation",
        "Welcome to Philia!",
        MessageStatus.SENT,
    )
    assert automated.payload["auto_message_type"] == kind
    # TikTok counts it against the window's ten messages, as it counts ours
    assert await quota_used(redis_client) == 2
    assert conversation.replies_in_window == 2
    # and the bot goes on answering
    await harness.receive(text_message("do you ship?"))
    await harness.deliver_queued()
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU, replies.MENU]


async def test_a_welcome_message_at_the_start_of_a_chat_leaves_the_bot_answering(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    welcome = echo("Hi! Welcome to Philia", auto_message_type="WELCOME_MESSAGE")
    assert await harness.receive(welcome) is Outcome.ECHO
    await harness.receive(text_message("hi"))
    await harness.deliver_queued()
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]
    assert harness.handoffs == []
    assert (await the_conversation(committed_db)).mode is ConversationMode.BOT


# --- another tool on the account: recorded, no hand-off, quota spent ------------------------------


async def test_an_api_echo_that_is_not_ours_is_another_tool(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    logged_events: LoggedEvents,
) -> None:
    harness = make_harness()
    await answered_once(harness)
    logged_events()
    body = echo("Your order shipped!", message_id="crm-1", source="API")
    assert await harness.receive(body) is Outcome.ECHO
    assert (await the_conversation(committed_db)).mode is ConversationMode.BOT
    other = (await shop_side(committed_db))[-1]
    assert (other.sent_by, other.tiktok_message_id) == ("other_api_tool", "crm-1")
    assert await quota_used(redis_client) == 2
    (event,) = [e for e in logged_events() if e["event"] == "echo_recorded"]
    assert (event["author"], event["source"]) == ("other_api_tool", "API")


# --- a person typing: recorded, and the conversation is theirs -----------------------------------


@pytest.mark.parametrize("source", ["APP", "WEB", None])
async def test_a_person_typing_takes_the_conversation_over(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    source: str | None,
) -> None:
    harness = make_harness()
    await answered_once(harness)
    assert await harness.receive(echo("hey it's Mia!", source=source)) is Outcome.ECHO
    conversation = await the_conversation(committed_db)
    assert conversation.mode is ConversationMode.HUMAN and conversation.human_since is not None
    assert (await shop_side(committed_db))[-1].sent_by == "staff_app"
    assert await quota_used(redis_client) == 2
    await harness.receive(text_message("oh hi Mia"))
    assert harness.queued == []


async def test_an_echo_of_another_source_is_recorded_without_a_handoff(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    # `OTHERS`: neither the API nor a person's app or web inbox (tiktok-api.md).
    harness = make_harness()
    await answered_once(harness)
    assert await harness.receive(echo("(system)", source="OTHERS")) is Outcome.ECHO
    assert (await the_conversation(committed_db)).mode is ConversationMode.BOT
    assert (await shop_side(committed_db))[-1].sent_by == "other_source"
    assert await quota_used(redis_client) == 2


async def test_a_redelivered_echo_is_counted_once(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    await answered_once(harness)
    body = echo("hey it's Mia!", message_id="staff-9", source="APP")
    assert await harness.receive(body) is Outcome.ECHO
    await redis_client.delete(redis_keys.event_handled("staff-9"))  # Redis forgot it
    assert await harness.receive(body) is Outcome.ECHO  # known by its TikTok id
    assert await quota_used(redis_client) == 2
    assert (await the_conversation(committed_db)).replies_in_window == 2
    assert [m.sent_by for m in await shop_side(committed_db)] == ["bot", "staff_app"]


# --- the shop's own reaction: recorded, no hand-off, no quota ------------------------------------


async def test_the_shops_reaction_is_recorded_and_spends_nothing(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    await answered_once(harness)
    assert await harness.receive(reaction_echo(source="APP")) is Outcome.ECHO
    conversation = await the_conversation(committed_db)
    assert conversation.mode is ConversationMode.BOT
    assert conversation.replies_in_window == 1
    reaction = (await shop_side(committed_db))[-1]
    assert (reaction.message_type, reaction.sent_by) == ("reaction", "staff_app")
    assert await quota_used(redis_client) == 1
