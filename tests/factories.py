"""What the tests feed the bot: TikTok's webhook bodies and the customer and conversation
rows a test starts from, built in one place so that a change of TikTok's shape (or of our
tables) is one edit here, not one per suite.

The shapes are those of ../shared/spec/tiktok-api.md: an envelope whose `content` is a
JSON document serialised as a string. Message factories answer the envelope as a dict, so
a test that needs a broken body starts from a genuine one and breaks it; `encode`,
`as_queued` and `signed` turn it into what the webhook or the worker receives.

Timestamps come from the app's clock (`app.core.clock`), so a test that moves time gets
messages written at the moved "now", as a customer writing then would.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import unix_now
from app.core.config import Settings
from app.db.models import Conversation, ConversationMode, Customer
from app.services.tiktok.signature import signature_header
from app.services.tiktok.webhook import EventType

Envelope = dict[str, Any]
Content = dict[str, Any]

# The app and the account the tests' settings configure (TIKTOK_CLIENT_KEY and
# TIKTOK_BUSINESS_ID, unset under test): the bot ignores any other account's events.
CLIENT_KEY: str = Settings.model_fields["tiktok_client_key"].default
SHOP_ID: str = Settings.model_fields["tiktok_business_id"].default  # `user_openid`, `to_user.id`
OTHER_CLIENT_KEY = "another-app"
OTHER_SHOP_ID = "another-shop"  # a second account that authorised the app
SHOP_USERNAME = "shop"
CUSTOMER_ID = "cust-1"
CONVERSATION_ID = "conv-1"
SIGNATURE_HEADER = "TikTok-Signature"

_message_ids = itertools.count(1)


def new_message_id() -> str:
    """Unique within the run: two messages a test writes are two messages, as on TikTok,
    unless it passes the same id on purpose (a redelivery)."""
    return f"msg-{next(_message_ids)}"


def now_ms() -> int:
    return int(unix_now() * 1000)


def username_of(user_id: str) -> str:
    return f"{user_id}-name"


# --- content --------------------------------------------------------------------------------


def message_content(
    type_: str,
    *,
    message_id: str | None = None,
    user_id: str = CUSTOMER_ID,
    conversation_id: str = CONVERSATION_ID,
    timestamp_ms: int | None = None,
    **fields: Any,
) -> Content:
    """`content` of a message from the customer to the shop; `fields` carry the body of
    its type (`text={"body": ...}`) and any extra field TikTok adds."""
    return {
        "timestamp": now_ms() if timestamp_ms is None else timestamp_ms,
        "conversation_id": conversation_id,
        "message_id": new_message_id() if message_id is None else message_id,
        "from": username_of(user_id),
        "to": SHOP_USERNAME,
        "from_user": {"id": user_id, "role": "personal_account"},
        "to_user": {"id": SHOP_ID, "role": "business_account"},
        "type": type_,
        **fields,
    }


def _serialised(content: Mapping[str, Any] | str) -> str:
    # TikTok nests the message as a JSON document inside a string.
    return content if isinstance(content, str) else orjson.dumps(content).decode()


def envelope(
    content: Mapping[str, Any] | str,
    *,
    event: str = EventType.RECEIVE,
    create_time: int | None = None,
    client_key: str = CLIENT_KEY,
    user_openid: str | None = SHOP_ID,
) -> Envelope:
    """The envelope around `content`. A string is used as it is: the way to nest a
    document orjson refuses to write, or one that is not JSON at all."""
    if create_time is None:
        stamp = content.get("timestamp") if isinstance(content, Mapping) else None
        # TikTok's create_time is the message's own timestamp, in seconds.
        create_time = stamp // 1000 if isinstance(stamp, int) else int(unix_now())
    body: Envelope = {
        "client_key": client_key,
        "event": event,
        "create_time": create_time,
        "user_openid": user_openid,
        "content": _serialised(content),
    }
    if user_openid is None:
        del body["user_openid"]  # older payloads and the other events leave it out
    return body


# --- the events ----------------------------------------------------------------------------


def text_message(
    text: str = "hi",
    *,
    message_id: str | None = None,
    user_id: str = CUSTOMER_ID,
    conversation_id: str = CONVERSATION_ID,
    timestamp_ms: int | None = None,
    **fields: Any,
) -> Envelope:
    """`im_receive_msg`: the customer wrote `text`."""
    return envelope(
        message_content(
            "text",
            message_id=message_id,
            user_id=user_id,
            conversation_id=conversation_id,
            timestamp_ms=timestamp_ms,
            text={"body": text},
            **fields,
        )
    )


def image_message(
    media_id: str = "img-1",
    *,
    message_id: str | None = None,
    user_id: str = CUSTOMER_ID,
    conversation_id: str = CONVERSATION_ID,
    timestamp_ms: int | None = None,
    **fields: Any,
) -> Envelope:
    """`im_receive_msg`: the customer sent a photo."""
    return envelope(
        message_content(
            "image",
            message_id=message_id,
            user_id=user_id,
            conversation_id=conversation_id,
            timestamp_ms=timestamp_ms,
            image={"media_id": media_id},
            **fields,
        )
    )


def share_post(
    video_id: str | int | None = "7300000000000000001",
    *,
    embed_url: str | None = None,
    message_id: str | None = None,
    user_id: str = CUSTOMER_ID,
    conversation_id: str = CONVERSATION_ID,
    timestamp_ms: int | None = None,
    **fields: Any,
) -> Envelope:
    """`im_receive_msg`: the customer shared one of the shop's videos. TikTok may send
    either field alone (None leaves it out), and the id as a JSON number."""
    post = {"video_id": video_id, "embed_url": embed_url}
    return envelope(
        message_content(
            "share_post",
            message_id=message_id,
            user_id=user_id,
            conversation_id=conversation_id,
            timestamp_ms=timestamp_ms,
            share_post={key: value for key, value in post.items() if value is not None},
            **fields,
        )
    )


def media_message(
    type_: str,
    body: Mapping[str, Any] | None = None,
    *,
    message_id: str | None = None,
    user_id: str = CUSTOMER_ID,
    conversation_id: str = CONVERSATION_ID,
    timestamp_ms: int | None = None,
    **fields: Any,
) -> Envelope:
    """`im_receive_msg` of a type the bot cannot see: `video` (`{"media_id": ...}`),
    `sticker` and `emoji` (`{"url": ...}`), or one TikTok adds later. `body` goes under
    the field named after the type; None leaves it out."""
    if body is not None:
        fields[type_] = dict(body)
    return envelope(
        message_content(
            type_,
            message_id=message_id,
            user_id=user_id,
            conversation_id=conversation_id,
            timestamp_ms=timestamp_ms,
            **fields,
        )
    )


def video_message(media_id: str = "vid-1", **options: Any) -> Envelope:
    return media_message("video", {"media_id": media_id}, **options)


def sticker_message(url: str = "https://p16.tiktokcdn.com/sticker.png", **options: Any) -> Envelope:
    return media_message("sticker", {"url": url}, **options)


def emoji_message(url: str = "https://p16.tiktokcdn.com/emoji.png", **options: Any) -> Envelope:
    return media_message("emoji", {"url": url}, **options)


def image_by_url(
    media_url: str = "https://p16.tiktokcdn.com/photo.jpg",
    *,
    top_level: bool = False,
    **options: Any,
) -> Envelope:
    """`im_receive_msg`: a photo named by its link, as one source reads it: in
    `image.media_url`, or (`top_level`) in a `media_url` beside an empty `image`."""
    if top_level:
        return media_message("image", {}, media_url=media_url, **options)
    return media_message("image", {"media_url": media_url}, **options)


def reaction_message(
    emoji: str = "\N{THUMBS UP SIGN}",
    *,
    original_msg_id: str = "tt-1",
    operation: str = "ADD",
    **options: Any,
) -> Envelope:
    """`im_receive_msg`: the customer reacted to a message (`original_msg_id`)."""
    reaction = {
        "operation": operation,
        "type": "EMOJI",
        "emoji": emoji,
        "original_msg_id": original_msg_id,
        "unique_identifier": f"react-{original_msg_id}",
        "timestamp": now_ms(),
    }
    return media_message("reaction", None, reaction=[reaction], **options)


def template_message(
    *buttons: str,
    title: str = "Questions we get a lot",
    **options: Any,
) -> Envelope:
    """`im_receive_msg`: the customer tapped a suggested-question button; `buttons` are
    the texts of the card's REPLY buttons."""
    card = {
        "type": "qa_button_card",
        "elements": [
            {
                "title": title,
                "buttons": [
                    {"text": text, "type": "REPLY", "id": f"q{number}"}
                    for number, text in enumerate(buttons, 1)
                ],
            }
        ],
    }
    return media_message("template", card, **options)


def echo(
    text: str,
    *,
    message_id: str | None = None,
    user_id: str = CUSTOMER_ID,
    conversation_id: str = CONVERSATION_ID,
    timestamp_ms: int | None = None,
    source: str | None = None,
    auto_message_type: str | None = None,
) -> Envelope:
    """`im_send_msg`: TikTok's echo of a text the shop sent, to the customer `user_id`.
    `source` (`message_tag.source`: API, APP, WEB) and `auto_message_type` are left out
    unless given, as in older payloads."""
    content: Content = {
        "timestamp": now_ms() if timestamp_ms is None else timestamp_ms,
        "conversation_id": conversation_id,
        "message_id": new_message_id() if message_id is None else message_id,
        "from": SHOP_USERNAME,
        "to": username_of(user_id),
        "from_user": {"id": SHOP_ID, "role": "business_account"},
        "to_user": {"id": user_id, "role": "personal_account"},
        "type": "text",
        "text": {"body": text},
    }
    if source is not None:
        content["message_tag"] = {"source": source}
    if auto_message_type is not None:
        content["auto_message_type"] = auto_message_type
    return envelope(content, event=EventType.SEND)


def reaction_echo(
    emoji: str = "\N{HEAVY BLACK HEART}",
    *,
    original_msg_id: str = "msg-1",
    user_id: str = CUSTOMER_ID,
    conversation_id: str = CONVERSATION_ID,
    source: str | None = "APP",
) -> Envelope:
    """`im_send_msg` of the shop's own reaction to a customer's message."""
    content = content_of(echo("", user_id=user_id, conversation_id=conversation_id, source=source))
    del content["text"]
    content["type"] = "reaction"
    content["reaction"] = [
        {"operation": "ADD", "type": "EMOJI", "emoji": emoji, "original_msg_id": original_msg_id}
    ]
    return envelope(content, event=EventType.SEND)


def event_of(event: str, content: Mapping[str, Any] | None = None) -> Envelope:
    """Any other event (`tiktok.ping`, `authorization.removed`, ...) with its content."""
    return envelope({} if content is None else content, event=event)


def for_account(
    body: Envelope, *, client_key: str = CLIENT_KEY, user_openid: str | None = OTHER_SHOP_ID
) -> Envelope:
    """The same event, as TikTok sends it for another account or app that shares the
    callback URL (None: without `user_openid`, as older payloads)."""
    moved = {**body, "client_key": client_key, "user_openid": user_openid}
    if user_openid is None:
        del moved["user_openid"]
    return moved


def read_receipt(
    *,
    user_id: str = CUSTOMER_ID,
    conversation_id: str = CONVERSATION_ID,
    timestamp_ms: int | None = None,
) -> Envelope:
    """`im_mark_read_msg`: the customer read the chat. The spec gives no shape for its
    content; the bot goes by the event name alone."""
    return envelope(
        {
            "timestamp": now_ms() if timestamp_ms is None else timestamp_ms,
            "conversation_id": conversation_id,
            "from_user": {"id": user_id, "role": "personal_account"},
            "to_user": {"id": SHOP_ID, "role": "business_account"},
        },
        event=EventType.MARK_READ,
    )


# --- reading and breaking a body -----------------------------------------------------------


def content_of(body: Envelope) -> Content:
    content: Content = orjson.loads(body["content"])
    return content


def with_content(body: Envelope, content: Mapping[str, Any] | str) -> Envelope:
    """The same envelope around other content (a string as it is, see `envelope`)."""
    return {**body, "content": _serialised(content)}


def without_content_fields(body: Envelope, *fields: str) -> Envelope:
    content = content_of(body)
    for field in fields:
        del content[field]
    return with_content(body, content)


# --- what the webhook and the worker receive ---------------------------------------------------


def encode(body: Envelope) -> bytes:
    """The raw bytes TikTok posts."""
    return orjson.dumps(body)


def as_queued(body: Envelope) -> str:
    """The body as the webhook queues it for the worker (`InboundPipeline.handle`)."""
    return encode(body).decode()


class SignedBody(NamedTuple):
    body: bytes
    headers: dict[str, str]


def signed(
    body: Envelope | bytes,
    secret: str,
    timestamp: int | None = None,
    *,
    header: str = SIGNATURE_HEADER,
) -> SignedBody:
    """The bytes to post and the headers TikTok sends with them. `timestamp` defaults to
    the real time, which the webhook checks the signature against."""
    raw = body if isinstance(body, bytes) else encode(body)
    return SignedBody(
        raw,
        {header: signature_header(secret, raw, timestamp), "Content-Type": "application/json"},
    )


# --- rows ----------------------------------------------------------------------------------


async def add_customer(
    session: AsyncSession, user_id: str = CUSTOMER_ID, *, username: str | None = None
) -> Customer:
    """A customer row, flushed so its id is known."""
    customer = Customer(tiktok_user_id=user_id, username=username)
    session.add(customer)
    await session.flush()
    return customer


async def add_conversation_for(
    session: AsyncSession,
    customer: Customer,
    *,
    conversation_id: str | None = None,
    mode: ConversationMode | str = ConversationMode.BOT,
    human_since: datetime | None = None,
    **columns: Any,
) -> Conversation:
    """The customer's conversation row, flushed; `columns` set any other column (the
    window's bookkeeping, say). `conversation_id` is TikTok's id of it."""
    fields: dict[str, Any] = {
        "replies_in_window": 0,
        "last_inbound_sequence": 0,
        "context": {},
        **columns,
    }
    conversation = Conversation(
        tiktok_conversation_id=conversation_id or f"conv-{customer.tiktok_user_id}",
        customer_id=customer.id,
        # A member, not its string: the app compares modes with `is`.
        mode=ConversationMode(mode),
        human_since=human_since,
        **fields,
    )
    session.add(conversation)
    await session.flush()
    return conversation
