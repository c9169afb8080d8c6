"""Every `content.type` a customer can send, through the pipeline with real PostgreSQL and
Redis (../shared/spec/tiktok-api.md, "More message types"): what is recorded, what is
answered, and what touches the window and the quota."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.db.models import Conversation, Direction, Message, MessageStatus
from app.services import replies
from app.services.messaging.inbound import Outcome
from app.services.tiktok.webhook import InvalidEnvelope
from app.services.turns import Reply, TurnResult
from tests.factories import (
    CUSTOMER_ID,
    Envelope,
    content_of,
    emoji_message,
    image_by_url,
    media_message,
    now_ms,
    reaction_message,
    share_post,
    sticker_message,
    template_message,
    text_message,
    video_message,
    with_content,
)
from tests.services.pipeline.conftest import Harness

MakeHarness = Callable[..., Harness]


class RecordingBrain:
    """Answers every turn with one line and keeps what it was given."""

    def __init__(self) -> None:
        self.turns: list[list[tuple[str, str | None, dict[str, Any]]]] = []

    async def respond(self, session, conversation, customer, turn):  # type: ignore[no-untyped-def]
        self.turns.append([(m.message_type, m.text, m.payload) for m in turn])
        return TurnResult("other", "local", replies=[Reply("noted")])


async def inbound(engine: AsyncEngine) -> list[Message]:
    async with AsyncSession(engine) as session:
        found = await session.scalars(
            select(Message).where(Message.direction == Direction.INBOUND).order_by(Message.id)
        )
        return list(found.all())


async def the_conversation(engine: AsyncEngine) -> Conversation:
    async with AsyncSession(engine) as session:
        (conversation,) = (await session.scalars(select(Conversation))).all()
        return conversation


async def window_and_quota(redis: aioredis.Redis) -> tuple[bytes | None, bytes | None]:
    window, quota = await redis.mget(redis_keys.window(CUSTOMER_ID), redis_keys.quota(CUSTOMER_ID))
    return window, quota


# --- a reaction: recorded, never answered, window and quota untouched ------------------------


async def test_a_reaction_is_recorded_and_never_answered(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    body = reaction_message("\N{THUMBS UP SIGN}", original_msg_id="tt-1")
    assert await harness.receive(body) is Outcome.IGNORED
    assert harness.queued == [] and harness.handoffs == []
    (message,) = await inbound(committed_db)
    assert message.message_type == "reaction"
    assert message.status is MessageStatus.IGNORED
    assert "reaction" in (message.status_reason or "")
    assert message.payload["reaction"][0]["emoji"] == "\N{THUMBS UP SIGN}"
    assert await harness.receive(body) is Outcome.DUPLICATE


async def test_a_reaction_neither_extends_the_window_nor_resets_the_quota(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    first = now_ms() - 3_600_000  # an hour ago
    await harness.receive(text_message("hi", timestamp_ms=first))
    await harness.deliver_queued()
    before = await window_and_quota(redis_client)
    assert before[1] == b"1"
    mirrored = await the_conversation(committed_db)

    assert await harness.receive(reaction_message(timestamp_ms=now_ms())) is Outcome.IGNORED

    assert await window_and_quota(redis_client) == before
    after = await the_conversation(committed_db)
    assert after.window_expires_at == mirrored.window_expires_at
    assert after.last_customer_message_at == mirrored.last_customer_message_at
    assert after.replies_in_window == mirrored.replies_in_window == 1


async def test_a_reaction_opens_no_window(
    make_harness: MakeHarness, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    await harness.receive(reaction_message())
    assert await window_and_quota(redis_client) == (None, None)


async def test_a_reaction_waits_for_a_turn_in_progress_and_leaves_it_alone(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    brain = RecordingBrain()
    harness = make_harness(brain=brain)
    await harness.receive(text_message("is PT-0001 available?"))
    await harness.receive(reaction_message())
    assert [[text for _, text, _ in turn] for turn in brain.turns] == [["is PT-0001 available?"]]
    statuses = [m.status for m in await inbound(committed_db)]
    assert statuses == [MessageStatus.PROCESSED, MessageStatus.IGNORED]


# --- media the bot cannot see: answered kindly, as photos are ------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda: video_message("vid-1"), id="video"),
        pytest.param(lambda: sticker_message(), id="sticker"),
        pytest.param(lambda: emoji_message(), id="emoji"),
        pytest.param(lambda: image_by_url("https://p16.tiktokcdn.com/a.jpg"), id="image-url"),
        pytest.param(lambda: image_by_url(top_level=True), id="image-top-level-url"),
        pytest.param(lambda: media_message("video"), id="video-without-body"),
    ],
)
async def test_media_the_bot_cannot_see_gets_the_kind_answer(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    body: Callable[[], Envelope],
) -> None:
    harness = make_harness()
    sent = body()
    assert await harness.receive(sent) is Outcome.HANDLED
    await harness.deliver_queued()
    assert [message.text for message in harness.sender.sent] == [replies.CANNOT_READ_MEDIA]
    (message,) = await inbound(committed_db)
    assert message.message_type == content_of(sent)["type"]
    assert message.status is MessageStatus.PROCESSED
    # a customer's message: it opens the window as a text does
    assert (await window_and_quota(redis_client))[0] is not None


# --- a tapped suggested question: the button's text is what the customer said ---------------------


async def test_a_tapped_suggested_question_is_answered_as_its_text(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    brain = RecordingBrain()
    harness = make_harness(brain=brain)
    assert await harness.receive(template_message("Do you ship to Canada?")) is Outcome.HANDLED
    ((message_type, text, payload),) = brain.turns[0]
    assert (message_type, text) == ("text", "Do you ship to Canada?")
    assert payload["type"] == "template"
    assert payload["template"]["elements"][0]["buttons"][0]["id"] == "q1"
    await harness.deliver_queued()
    assert [message.text for message in harness.sender.sent] == ["noted"]
    assert (await window_and_quota(redis_client))[1] == b"1"


async def test_a_suggested_question_gets_the_answer_its_words_get(
    make_harness: MakeHarness,
) -> None:
    harness = make_harness()  # the menu brain: menu digit 3 hands over
    await harness.receive(template_message("3"))
    await harness.deliver_queued()
    assert [message.text for message in harness.sender.sent] == [replies.HANDOFF_CONFIRM]


async def test_a_card_with_several_buttons_is_read_as_its_first_reply_button(
    make_harness: MakeHarness,
) -> None:
    brain = RecordingBrain()
    harness = make_harness(brain=brain)
    await harness.receive(template_message("Do you ship?", "Are returns free?"))
    assert [text for _, text, _ in brain.turns[0]] == ["Do you ship?"]


async def test_a_card_without_a_readable_button_is_answered_as_media(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    assert await harness.receive(template_message()) is Outcome.HANDLED
    await harness.deliver_queued()
    assert [message.text for message in harness.sender.sent] == [replies.CANNOT_READ_MEDIA]
    (message,) = await inbound(committed_db)
    assert (message.message_type, message.text) == ("template", None)


# --- a shared post: the video id, whatever shape it comes in -------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda: share_post(7300000000000000009), id="numeric-video-id"),
        pytest.param(
            lambda: share_post(None, embed_url="https://www.tiktok.com/embed/7300000000000000009"),
            id="embed-url-only",
        ),
        pytest.param(
            lambda: share_post(
                None, embed_url="https://www.tiktok.com/embed/v2/7300000000000000009?lang=en"
            ),
            id="embed-v2-url-with-query",
        ),
        pytest.param(
            lambda: share_post(
                None, embed_url="https://www.tiktok.com/@philiathrifts/video/7300000000000000009"
            ),
            id="video-url",
        ),
    ],
)
async def test_a_shared_post_reaches_the_brain_with_its_video_id(
    make_harness: MakeHarness, committed_db: AsyncEngine, body: Callable[[], Envelope]
) -> None:
    brain = RecordingBrain()
    harness = make_harness(brain=brain)
    # A numeric video_id once failed validation: the message was dead-lettered, unanswered.
    assert await harness.receive(body()) is Outcome.HANDLED
    ((message_type, _, payload),) = brain.turns[0]
    assert message_type == "share_post"
    assert payload["share_post"]["video_id"] == "7300000000000000009"
    (message,) = await inbound(committed_db)
    assert message.payload["share_post"]["video_id"] == "7300000000000000009"
    assert len(harness.queued) == 1


# --- a type TikTok adds later: recorded, never a crash, never answered --------------------------


async def test_an_unknown_type_is_recorded_and_not_answered(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    body = media_message("voice_note", {"media_id": "v-1", "duration": 3})
    assert await harness.receive(body) is Outcome.IGNORED
    assert harness.queued == [] and harness.handoffs == []
    (message,) = await inbound(committed_db)
    assert (message.message_type, message.status) == ("voice_note", MessageStatus.IGNORED)
    assert message.payload["voice_note"] == {"media_id": "v-1", "duration": 3}
    assert await window_and_quota(redis_client) == (None, None)


async def test_an_unknown_type_with_a_long_name_is_recorded_cut_short(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    assert await harness.receive(media_message("x" * 200)) is Outcome.IGNORED
    (message,) = await inbound(committed_db)
    assert message.message_type == "x" * 32
    assert message.payload["type"] == "x" * 200


# --- lenient where TikTok varies, strict where it matters -----------------------------------------


async def test_oddly_typed_optional_fields_lose_themselves_not_the_message(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    body = text_message("hi")
    content = content_of(body)
    content.update(
        {"from": {"odd": 1}, "to": 5, "referenced_message_info": "msg-0"},
        scene_type=1,
        is_follower="yes",
        message_tag="API",
    )
    content["from_user"]["role"] = ["personal_account"]
    del content["to_user"]
    assert await harness.receive(with_content(body, content)) is Outcome.HANDLED
    await harness.deliver_queued()
    assert [message.text for message in harness.sender.sent] == [replies.MENU]
    (message,) = await inbound(committed_db)
    assert (message.text, message.payload["from"], message.payload["scene_type"]) == (
        "hi",
        None,
        1,
    )


async def test_a_message_missing_what_the_bot_needs_is_refused_for_the_dead_letters(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    body = text_message("hi")
    content = content_of(body)
    content["text"] = {"body": ["hi"]}
    with pytest.raises(InvalidEnvelope):
        await harness.receive(with_content(body, content))
    assert await inbound(committed_db) == []
