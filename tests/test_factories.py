"""The factories build what TikTok sends, as the bot reads it: if they drifted from the
parser, every suite built on them would test something TikTok never sends."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ConversationMode
from app.services.tiktok.signature import verify_signature
from app.services.tiktok.webhook import (
    EventType,
    InvalidEnvelope,
    event_id_for,
    parse_content,
    parse_envelope,
)
from tests.conftest import Clock
from tests.factories import (
    SHOP_ID,
    add_conversation_for,
    add_customer,
    as_queued,
    content_of,
    echo,
    encode,
    image_message,
    read_receipt,
    share_post,
    signed,
    text_message,
    without_content_fields,
)

SECRET = "factory-secret"


def test_a_text_message_reads_as_tiktok_documents_it() -> None:
    body = text_message("is PT-0001 available?", user_id="+ZMM6u/1=", conversation_id="c+/=")
    raw = encode(body)
    envelope = parse_envelope(raw)
    content = parse_content(envelope)
    assert set(body) == {"client_key", "event", "create_time", "user_openid", "content"}
    assert (envelope.event, envelope.user_openid) == (EventType.RECEIVE, SHOP_ID)
    assert envelope.create_time == content.timestamp // 1000  # seconds and milliseconds
    assert content.text is not None and content.text.body == "is PT-0001 available?"
    assert (content.conversation_id, content.from_user.id) == ("c+/=", "+ZMM6u/1=")
    assert content.from_user.role == "personal_account"
    assert content.to_user is not None
    assert (content.to_user.id, content.to_user.role) == (SHOP_ID, "business_account")
    assert event_id_for(raw, content) == content.message_id
    assert as_queued(body) == raw.decode()


def test_the_other_message_types_read_as_their_type() -> None:
    image = parse_content(parse_envelope(encode(image_message("media-7"))))
    assert image.image is not None and image.image.media_id == "media-7"
    video = parse_content(parse_envelope(encode(share_post("7301"))))
    assert video.share_post is not None and video.share_post.video_id == "7301"
    linked = content_of(share_post(None, embed_url="https://www.tiktok.com/embed/7302"))
    assert linked["share_post"] == {"embed_url": "https://www.tiktok.com/embed/7302"}


def test_an_echo_goes_from_the_shop_to_the_customer() -> None:
    body = echo("see you!", user_id="cust-9", source="APP")
    content = parse_content(parse_envelope(encode(body)))
    assert body["event"] == EventType.SEND
    assert content.from_user.id == SHOP_ID
    assert content.to_user is not None and content.to_user.id == "cust-9"
    assert content_of(body)["message_tag"] == {"source": "APP"}
    assert "auto_message_type" not in content_of(echo("hi"))


def test_a_read_receipt_is_its_own_event() -> None:
    assert parse_envelope(encode(read_receipt())).event == EventType.MARK_READ


def test_two_messages_are_two_events_unless_told_otherwise() -> None:
    first, second = content_of(text_message()), content_of(text_message())
    assert first["message_id"] != second["message_id"]
    assert content_of(text_message(message_id="same"))["message_id"] == "same"


def test_messages_are_written_at_the_moved_time(clock: Clock) -> None:
    clock.advance(timedelta(hours=30))
    stamp = content_of(text_message())["timestamp"] / 1000
    assert abs(stamp - (time.time() + 30 * 3600)) < 5


def test_signed_bodies_verify_with_the_webhook_check() -> None:
    body, headers = signed(text_message(), SECRET)
    verify_signature(SECRET, headers["TikTok-Signature"], body, tolerance_seconds=300)
    alternative = signed(body, SECRET, header="X-TikTok-Signature").headers
    verify_signature(SECRET, alternative["X-TikTok-Signature"], body, tolerance_seconds=300)
    assert headers["Content-Type"] == "application/json"


def test_a_broken_body_is_broken_only_where_asked() -> None:
    broken = without_content_fields(text_message(), "from_user")
    envelope = parse_envelope(encode(broken))  # the envelope is still TikTok's
    with pytest.raises(InvalidEnvelope):
        parse_content(envelope)


async def test_rows_hold_enum_members_and_the_columns_given(
    session: AsyncSession, clock: Clock
) -> None:
    customer = await add_customer(session, "cust-rows", username="ada")
    conversation = await add_conversation_for(
        session, customer, mode="human", human_since=clock.now(), replies_in_window=3
    )
    assert conversation.mode is ConversationMode.HUMAN
    assert conversation.tiktok_conversation_id == "conv-cust-rows"
    assert (conversation.customer_id, conversation.replies_in_window) == (customer.id, 3)
    assert (conversation.last_inbound_sequence, conversation.context) == (0, {})
