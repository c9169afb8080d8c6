"""Every shape of tiktok-api.md's "What production integrations show beyond the docs",
played by the TikTok stand-in through the real pipeline (API, queue, worker): what the bot
answered, what it recorded, and who it believes is talking."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.db.models import (
    Conversation,
    ConversationMode,
    DeadLetter,
    Direction,
    Item,
    ItemVideo,
    Message,
    MessageStatus,
    OutboxEntry,
    OutboxStatus,
)
from app.sandbox.control import SandboxControl
from app.sandbox.stack import Stack
from app.services import replies
from app.services.tiktok.webhook import EchoAuthor
from tests.e2e.conftest import eventually, settle
from tests.e2e.test_pipeline_e2e import cli, replies_to

pytestmark = pytest.mark.e2e

SHARED_VIDEO_ID = "7300000000000000777"


async def recorded(engine: AsyncEngine, conversation_id: str) -> list[Message]:
    async with AsyncSession(engine) as session:
        found = await session.scalars(
            select(Message)
            .join(Conversation, Message.conversation_id == Conversation.id)
            .where(Conversation.tiktok_conversation_id == conversation_id)
            .order_by(Message.id)
        )
        return list(found.all())


async def conversation(engine: AsyncEngine, conversation_id: str) -> Conversation | None:
    async with AsyncSession(engine) as session:
        found: Conversation | None = await session.scalar(
            select(Conversation).where(Conversation.tiktok_conversation_id == conversation_id)
        )
        return found


async def dead_letters(engine: AsyncEngine) -> int:
    async with AsyncSession(engine) as session:
        return int(await session.scalar(select(func.count()).select_from(DeadLetter)) or 0)


async def answered(sandbox: SandboxControl, conversation_id: str, count: int = 1) -> list[str]:
    got = await eventually(
        lambda: replies_to(sandbox, conversation_id), lambda texts: len(texts) >= count
    )
    return [text or "" for text in got]


async def test_media_and_a_tapped_suggested_question_are_answered(
    sandbox: SandboxControl, committed_db: AsyncEngine
) -> None:
    video, sticker, emoji, in_image, top_level, button = await asyncio.gather(
        sandbox.play_customer("e2e-video", video=True),
        sandbox.play_customer("e2e-sticker", sticker_url="https://cdn.example/s.webp"),
        sandbox.play_customer("e2e-emoji", emoji_url="https://cdn.example/e.png"),
        sandbox.play_customer("e2e-image-url", image_media_url="https://cdn.example/a.jpg"),
        sandbox.play_customer(
            "e2e-image-top", image_media_url="https://cdn.example/b.jpg", image_url_top_level=True
        ),
        sandbox.play_customer("e2e-button", button_text="Show me the menu"),
    )
    for media in (video, sticker, emoji, in_image, top_level):
        assert await answered(sandbox, media.conversation_id) == [replies.CANNOT_READ_MEDIA]
    assert await answered(sandbox, button.conversation_id) == [replies.MENU]

    expected_types = ["video", "sticker", "emoji", "image", "image"]
    for media, message_type in zip(
        (video, sticker, emoji, in_image, top_level), expected_types, strict=True
    ):
        [inbound] = [
            m
            for m in await recorded(committed_db, media.conversation_id)
            if m.direction is Direction.INBOUND
        ]
        assert (inbound.message_type, inbound.status) == (message_type, MessageStatus.PROCESSED)
    [tapped] = [
        m
        for m in await recorded(committed_db, button.conversation_id)
        if m.direction is Direction.INBOUND
    ]
    # Read as the customer saying the button's words; the payload keeps the card.
    assert (tapped.message_type, tapped.text) == ("text", "Show me the menu")
    assert tapped.payload["template"]["type"] == "qa_button_card"
    [image] = [
        m
        for m in await recorded(committed_db, top_level.conversation_id)
        if m.message_type == "image"
    ]
    assert image.payload["media_url"] == "https://cdn.example/b.jpg"


async def test_a_shared_post_is_read_in_every_form(
    sandbox: SandboxControl, committed_db: AsyncEngine
) -> None:
    async with AsyncSession(committed_db) as session, session.begin():
        item = Item(
            sku="PT-0777",
            title="Corduroy jacket",
            category="outerwear",
            gender="unisex",
            condition="good",
            currency="USD",
            price=30,
        )
        session.add(item)
        await session.flush()
        session.add(ItemVideo(item_id=item.id, video_id=SHARED_VIDEO_ID))

    shared = await asyncio.gather(
        *(
            sandbox.play_customer(
                f"e2e-share-{form}", share_post_video_id=SHARED_VIDEO_ID, share_post_form=form
            )
            for form in ("string", "number", "embed_url", "video_url")
        )
    )

    answers = [(await answered(sandbox, sent.conversation_id))[0] for sent in shared]
    assert len(set(answers)) == 1 and answers[0] != replies.VIDEO_UNKNOWN
    assert "PT-0777" in answers[0] or "Corduroy" in answers[0]
    for sent in shared:
        inbound = (await recorded(committed_db, sent.conversation_id))[0]
        assert inbound.payload["share_post"]["video_id"] == SHARED_VIDEO_ID  # a string


async def test_reactions_are_recorded_never_answered_and_spend_no_quota(
    sandbox: SandboxControl, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    sent = await sandbox.play_customer("e2e-react", text="hi")
    [reply] = await eventually(
        lambda: sandbox.messages(conversation_id=sent.conversation_id), lambda m: len(m) >= 1
    )
    await settle(1.0)  # the reply's own echo settled
    quota = await redis_client.get(redis_keys.quota("e2e-react"))
    window = await redis_client.get(redis_keys.window("e2e-react"))
    before = await conversation(committed_db, sent.conversation_id)

    added = await sandbox.play_customer("e2e-react", reaction_emoji="😍")
    removed = await sandbox.play_customer(
        "e2e-react", reaction_emoji="😍", reaction_operation="REMOVE"
    )
    shop = await sandbox.play_staff(sent.conversation_id, reaction_emoji="🙏")
    assert (added.bot_status, removed.bot_status, shop.bot_status) == (200, 200, 200)

    messages = await eventually(
        lambda: recorded(committed_db, sent.conversation_id),
        lambda found: sum(m.message_type == "reaction" for m in found) == 3,
    )
    await settle(2.0)
    assert await replies_to(sandbox, sent.conversation_id) == [replies.MENU]
    reactions = [m for m in messages if m.message_type == "reaction"]
    theirs = [m for m in reactions if m.direction is Direction.INBOUND]
    assert [m.status for m in theirs] == [MessageStatus.IGNORED] * 2
    assert all("never answered" in (m.status_reason or "") for m in theirs)
    assert theirs[0].payload["reaction"][0]["original_msg_id"] == reply.message_id
    [ours] = [m for m in reactions if m.direction is Direction.OUTBOUND]
    assert ours.sent_by == EchoAuthor.STAFF_APP
    after = await conversation(committed_db, sent.conversation_id)
    assert before is not None and after is not None
    assert after.mode is ConversationMode.BOT  # the shop's reaction is no one taking over
    assert after.replies_in_window == before.replies_in_window
    assert after.window_expires_at == before.window_expires_at
    assert await redis_client.get(redis_keys.quota("e2e-react")) == quota
    assert await redis_client.get(redis_keys.window("e2e-react")) == window

    await sandbox.play_customer("e2e-react", text="hi again")
    assert await answered(sandbox, sent.conversation_id, 2) == [replies.MENU, replies.MENU]


async def test_unknown_types_are_recorded_and_odd_payloads_still_answered(
    sandbox: SandboxControl, committed_db: AsyncEngine
) -> None:
    parked = await dead_letters(committed_db)
    unknown, extras, bare = await asyncio.gather(
        sandbox.play_customer("e2e-unknown", unknown_type="gift_card"),
        sandbox.play_customer("e2e-extras", text="hi", with_extras=True),
        sandbox.play_customer("e2e-bare", text="hi", omit_optional=True),
    )
    assert await answered(sandbox, extras.conversation_id) == [replies.MENU]
    assert await answered(sandbox, bare.conversation_id) == [replies.MENU]
    [message] = await eventually(
        lambda: recorded(committed_db, unknown.conversation_id), lambda found: len(found) == 1
    )
    assert (message.message_type, message.status) == ("gift_card", MessageStatus.IGNORED)
    assert "does not know" in (message.status_reason or "")
    await settle(1.5)
    assert await replies_to(sandbox, unknown.conversation_id) == []
    assert await dead_letters(committed_db) == parked


async def test_automations_and_another_tool_leave_the_bot_in_charge(
    sandbox: SandboxControl, committed_db: AsyncEngine
) -> None:
    await sandbox.configure(welcome_message="Welcome to Philia Thrifts! 💜")
    try:
        sent = await sandbox.play_customer("e2e-auto", text="hi")
        assert await answered(sandbox, sent.conversation_id) == [replies.MENU]
    finally:
        await sandbox.configure(welcome_message=None)
    await sandbox.play_automation(sent.conversation_id, "We answer within a day.")
    await sandbox.play_automation(
        sent.conversation_id,
        "Ask us anything:",
        auto_message_type="SUGGESTED_QUESTION",
        buttons=["Do you ship abroad?"],
    )
    await sandbox.play_other_tool(sent.conversation_id, "Your order #1042 shipped!")

    def shop_side(found: list[Message]) -> list[Message]:
        # The echoes recorded as sent by someone else than the bot itself.
        return [m for m in found if m.sent_by in set(EchoAuthor)]

    found = await eventually(
        lambda: recorded(committed_db, sent.conversation_id),
        lambda found: len(shop_side(found)) == 4,
    )
    welcome = shop_side(found)[0]
    assert (welcome.text, welcome.payload["auto_message_type"]) == (
        "Welcome to Philia Thrifts! 💜",
        "WELCOME_MESSAGE",
    )
    # TikTok greets as the chat opens, before the customer's first words.
    first_words = next(m for m in found if m.direction is Direction.INBOUND)
    assert welcome.sent_at is not None and first_words.sent_at is not None
    assert welcome.sent_at < first_words.sent_at
    assert [m.sent_by for m in shop_side(found)] == [
        EchoAuthor.TIKTOK_AUTOMATION,
        EchoAuthor.TIKTOK_AUTOMATION,
        EchoAuthor.TIKTOK_AUTOMATION,
        EchoAuthor.OTHER_API_TOOL,
    ]
    state = await conversation(committed_db, sent.conversation_id)
    assert state is not None and state.mode is ConversationMode.BOT

    await sandbox.play_customer("e2e-auto", text="hello?")
    assert await answered(sandbox, sent.conversation_id, 2) == [replies.MENU, replies.MENU]


@pytest.mark.parametrize("source", ["APP", "WEB", None])
async def test_a_person_typing_in_the_app_or_web_inbox_takes_over(
    sandbox: SandboxControl, committed_db: AsyncEngine, source: str | None
) -> None:
    user_id = f"e2e-staff-{source or 'untagged'}"
    sent = await sandbox.play_customer(user_id, text="hi")
    await answered(sandbox, sent.conversation_id)

    typed = await sandbox.play_staff(sent.conversation_id, "Mia here 👋", source=source)  # type: ignore[arg-type]
    assert typed.bot_status == 200
    state = await eventually(
        lambda: conversation(committed_db, sent.conversation_id),
        lambda found: found is not None and found.mode is ConversationMode.HUMAN,
    )
    assert state is not None
    await sandbox.play_customer(user_id, text="oh hi Mia")
    await settle(1.5)
    assert await replies_to(sandbox, sent.conversation_id) == [replies.MENU, "Mia here 👋"]


async def test_events_of_other_accounts_and_apps_and_other_events_are_ignored(
    sandbox: SandboxControl, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    parked = await dead_letters(committed_db)
    other_account = await sandbox.play_customer(
        "e2e-elsewhere", text="hi", user_openid="another-shop"
    )
    other_app = await sandbox.play_customer("e2e-other-app", text="hi", client_key="another-app")
    events = [
        await sandbox.play_event(name)
        for name in (
            "tiktok.ping",
            "im_auto_message_config_update",
            "im_auto_message_audit_update",
            "im_receive_high_intent_comment",
            "im_receive_msg_eu",
            "im_mark_read_msg",
        )
    ]
    # Another shop disconnecting the app says nothing about this one.
    events.append(await sandbox.play_event("authorization.removed", user_openid="another-shop"))
    assert (other_account.bot_status, other_app.bot_status) == (200, 200)
    assert [event.bot_status for event in events] == [200] * len(events)

    seen = await eventually(
        lambda: redis_client.get(redis_keys.TIKTOK_OTHER_ACCOUNT), lambda got: got is not None
    )
    assert seen == b"another-shop"
    await settle(2.0)
    for ignored in (other_account, other_app):
        assert await conversation(committed_db, ignored.conversation_id) is None
        assert await replies_to(sandbox, ignored.conversation_id) == []
    assert await dead_letters(committed_db) == parked
    assert await redis_client.get(redis_keys.TIKTOK_DISCONNECTED) is None


async def test_authorization_removed_holds_replies_until_reconnected(
    sandbox: SandboxControl,
    stack: Stack,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
) -> None:
    removed = await sandbox.play_event("authorization.removed")
    assert removed.bot_status == 200
    try:
        await eventually(
            lambda: redis_client.get(redis_keys.TIKTOK_DISCONNECTED), lambda got: got is not None
        )
        sends_before = len(await sandbox.calls(endpoints=["send"]))
        sent = await sandbox.play_customer("e2e-disconnected", text="hi")

        async def waiting() -> list[OutboxEntry]:
            found = await conversation(committed_db, sent.conversation_id)
            if found is None:
                return []
            async with AsyncSession(committed_db) as session:
                rows = await session.scalars(
                    select(OutboxEntry)
                    .join(Message, OutboxEntry.message_id == Message.id)
                    .where(Message.conversation_id == found.id)
                )
                return list(rows.all())

        [entry] = await eventually(waiting, lambda rows: len(rows) == 1)
        await settle(3.0)  # a few outbox sweeps
        [entry] = await waiting()
        assert entry.status is OutboxStatus.PENDING
        assert len(await sandbox.calls(endpoints=["send"])) == sends_before
        assert await replies_to(sandbox, sent.conversation_id) == []

        assert cli(stack, "tiktok", "reconnected").returncode == 0
        assert await answered(sandbox, sent.conversation_id) == [replies.MENU]
    finally:
        await redis_client.delete(redis_keys.TIKTOK_DISCONNECTED)
