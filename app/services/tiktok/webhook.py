"""The inbound webhook's shapes (tiktok-api.md), parsed twice: envelope, then `content`."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from itertools import accumulate
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


class TooDeeplyNested(InvalidEnvelope):
    pass


# TikTok's payloads nest 3-4 levels. Anything deep enough to matter is an attack: a parsed
# value nested hundreds of levels overflows the stack of the recursive walks after the
# parse (the NUL filter, validation, serialisation), and a RecursionError is not a verdict
# the worker can park, only a crash it retries.
MAX_JSON_DEPTH = 32

_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
# Opening brackets to +1, closing ones to -1, as signed bytes: the running sum is the depth.
_AS_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_OPEN = b"\x01"


def nested_deeper_than(document: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `document`'s brackets nest deeper than `limit`, brackets inside JSON strings
    not counted. Linear, iterative and mostly in C: it runs before anything is parsed.

    Not a validator: for malformed JSON the answer is only what the brackets say, and the
    parser refuses the document anyway."""
    data = document.encode("utf-8", "surrogatepass") if isinstance(document, str) else document
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # nearly every real payload: no need to look closer
    # In UTF-8 the bytes of `\`, `"` and the brackets never occur inside a multi-byte
    # character. Escaped backslashes go first (left to right, as a parser pairs them), then
    # escaped quotes: what is left of each string is a plain "...", dropped whole.
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    steps = b"".join(unescaped.split(b'"')[::2]).translate(_AS_STEPS, _NOT_BRACKETS)
    if steps.count(_OPEN) <= limit:
        return False  # brackets in a message text, say
    if _OPEN * (limit + 1) in steps:
        return True  # the usual attack, `[[[[...`, without summing a million steps
    return max(accumulate(memoryview(steps).cast("b")), default=0) > limit


def _load(document: bytes | str, what: str) -> Any:
    if nested_deeper_than(document):
        raise TooDeeplyNested(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return orjson.loads(document)
    except orjson.JSONDecodeError as error:
        raise InvalidEnvelope(f"{what} is not JSON") from error


def parse_envelope(body: bytes) -> WebhookEnvelope:
    data = _load(body, "body")
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


def load_content(envelope: WebhookEnvelope) -> dict[str, Any]:
    """`content`, a JSON document inside a JSON string, parsed under the same depth limit."""
    content = _load(envelope.content, "content")
    if not isinstance(content, dict):
        raise InvalidEnvelope("content is not a JSON object")
    return content


def parse_content(envelope: WebhookEnvelope) -> MessageContent:
    content = load_content(envelope)
    try:
        return MessageContent.model_validate(_without_nul(content))
    except ValidationError as error:
        raise InvalidEnvelope(f"content of {envelope.event} is not a message: {error}") from None


def event_id_for(body: bytes, content: MessageContent | None) -> str:
    """`content.message_id`, or a SHA-256 of the raw body for events without one."""
    if content is not None and content.message_id:
        return content.message_id
    return "sha256:" + hashlib.sha256(body).hexdigest()
