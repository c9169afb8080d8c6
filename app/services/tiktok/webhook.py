"""The inbound webhook's shapes (tiktok-api.md), parsed twice: envelope, then `content`."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class EventType(StrEnum):
    RECEIVE = "im_receive_msg"
    SEND = "im_send_msg"
    MARK_READ = "im_mark_read_msg"


class WebhookEnvelope(BaseModel):
    """What the ingress checks before queueing: enough to know it is TikTok's shape."""

    model_config = ConfigDict(extra="allow")

    client_key: str
    event: str = Field(min_length=1, max_length=64)
    create_time: int
    user_openid: str | None = None
    content: str


class UserRef(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    role: str | None = None


class TextBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    body: str = ""


class ImageBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    media_id: str | None = None


class SharePostBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    video_id: str | None = None
    embed_url: str | None = None


class ReferencedMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    referenced_message_id: str | None = None


class MessageContent(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    timestamp: int  # milliseconds
    conversation_id: str
    message_id: str | None = None
    unique_identifier: str | None = None
    sender: str | None = Field(default=None, alias="from")
    recipient: str | None = Field(default=None, alias="to")
    from_user: UserRef
    to_user: UserRef | None = None
    type: str
    text: TextBody | None = None
    image: ImageBody | None = None
    share_post: SharePostBody | None = None
    referenced_message_info: ReferencedMessage | None = None


class InvalidEnvelope(ValueError):
    pass


def parse_envelope(body: bytes) -> WebhookEnvelope:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidEnvelope("body is not JSON") from error
    if not isinstance(data, dict):
        raise InvalidEnvelope("body is not a JSON object")
    try:
        return WebhookEnvelope.model_validate(data)
    except ValidationError as error:
        raise InvalidEnvelope(
            f"not a TikTok webhook envelope: {error.errors()[0]['loc']}"
        ) from None


def _without_nul(value: Any) -> Any:
    # PostgreSQL text and jsonb cannot hold U+0000: a DM with one would fail every attempt
    # to record it and the customer would never be answered. It carries no meaning: drop it.
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


def parse_content(envelope: WebhookEnvelope) -> MessageContent:
    try:
        return MessageContent.model_validate(_without_nul(orjson.loads(envelope.content)))
    except (orjson.JSONDecodeError, ValidationError) as error:
        raise InvalidEnvelope(f"content of {envelope.event} is not a message: {error}") from None


def event_id_for(body: bytes, content: MessageContent | None) -> str:
    """`content.message_id`, or a SHA-256 of the raw body for events without one."""
    if content is not None and content.message_id:
        return content.message_id
    return "sha256:" + hashlib.sha256(body).hexdigest()
