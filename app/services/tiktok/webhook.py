"""The inbound webhook's shapes (tiktok-api.md), parsed twice: envelope, then `content`.

Strict where the bot depends on a field, lenient where TikTok varies (tiktok-api.md, "What
production integrations show beyond the docs"). Checked: the envelope's event and account,
and a message's conversation, sender, message id, timestamp and type, and the text of a
text message. Any other field that is missing or oddly typed is read as absent (`Lenient`):
it loses that field, never the message. Ids are strings whatever their JSON type.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from itertools import accumulate
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from app.core.logging import get_logger

log = get_logger(__name__)

_T = TypeVar("_T")


class EventType(StrEnum):
    RECEIVE = "im_receive_msg"
    SEND = "im_send_msg"
    MARK_READ = "im_mark_read_msg"
    # Seen in production, none of them a message the bot answers.
    RECEIVE_EU = "im_receive_msg_eu"  # its content carries only `to`, `to_user`, `timestamp`
    REFERRAL = "im_referral_msg"
    AUTO_MESSAGE_CONFIG_UPDATE = "im_auto_message_config_update"
    AUTO_MESSAGE_AUDIT_UPDATE = "im_auto_message_audit_update"
    HIGH_INTENT_COMMENT = "im_receive_high_intent_comment"
    PING = "tiktok.ping"
    AUTHORIZATION_REMOVED = "authorization.removed"  # the shop disconnected the app


class ContentType(StrEnum):
    """`content.type` values the bot knows; more may come, and an unknown one is no error."""

    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    STICKER = "sticker"
    EMOJI = "emoji"
    SHARE_POST = "share_post"
    TEMPLATE = "template"  # a tapped suggested-question button
    REACTION = "reaction"


class EchoAuthor(StrEnum):
    """Who sent a message from the shop's side, as its echo tells: the `sent_by` it is
    recorded with. Whether it was the bot itself is decided from our own records, not here."""

    TIKTOK_AUTOMATION = "tiktok_automation"  # welcome message, suggested question, auto-reply
    OTHER_API_TOOL = "other_api_tool"  # another tool that shares the account's API access
    STAFF_APP = "staff_app"  # a person typing in the TikTok app or web inbox
    OTHER_SOURCE = "other_source"  # `message_tag.source` OTHERS, or one TikTok adds later


def _id_as_str(value: Any) -> Any:
    # TikTok's ids are strings, but some payloads carry a numeric one as a JSON number.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def tiktok_id(value: Any) -> str | None:
    """An id read from raw content as `TikTokId` reads it; None when absent or not an id."""
    value = _id_as_str(value)
    return value if isinstance(value, str) and value else None


TikTokId = Annotated[str, BeforeValidator(_id_as_str)]


def _absent_if_invalid(
    value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> Any:
    try:
        return handler(value)
    except ValidationError:
        log.info("webhook_field_unreadable", field=info.field_name)
        return None


# An optional field the bot can do without: a value of another shape reads as absent.
Lenient = Annotated[_T | None, WrapValidator(_absent_if_invalid)]


class WebhookEnvelope(BaseModel):
    """What the ingress checks before queueing: enough to know it is TikTok's shape."""

    model_config = ConfigDict(extra="allow")

    client_key: TikTokId
    event: str = Field(min_length=1, max_length=64)
    create_time: int
    user_openid: TikTokId | None = None
    content: str


class UserRef(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: TikTokId
    role: Lenient[str] = None


class TextBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    body: str = ""


class ImageBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    media_id: Lenient[TikTokId] = None
    media_url: Lenient[str] = None


class VideoBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    media_id: Lenient[TikTokId] = None


class UrlBody(BaseModel):
    """A sticker's or an emoji's picture."""

    model_config = ConfigDict(extra="allow")
    url: Lenient[str] = None


# `https://www.tiktok.com/embed/<id>`, `…/embed/v2/<id>`, `…/@shop/video/<id>`.
_VIDEO_PATH = re.compile(r"/(?:embed(?:/v2)?|video)/([0-9]+)(?:/|$)")


def video_id_in(url: str) -> str | None:
    """The id of the TikTok video a link points to, if it is a link to one."""
    try:
        path = urlsplit(url.strip()).path
    except ValueError:
        return None
    found = _VIDEO_PATH.search(path)
    return found.group(1) if found else None


class SharePostBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    video_id: Lenient[TikTokId] = None
    embed_url: Lenient[str] = None

    @model_validator(mode="after")
    def _video_id_from_embed_url(self) -> SharePostBody:
        # Some payloads carry only the link: the id in it is the one the shop's videos
        # are filed under, so the bot can still tell which piece the customer means.
        if not self.video_id and self.embed_url:
            self.video_id = video_id_in(self.embed_url)
        return self


class TemplateButton(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: Lenient[str] = None
    type: Lenient[str] = None
    id: Lenient[TikTokId] = None


class TemplateElement(BaseModel):
    model_config = ConfigDict(extra="allow")
    title: Lenient[str] = None
    buttons: Lenient[list[Lenient[TemplateButton]]] = None


class TemplateBody(BaseModel):
    """A suggested-question card (`qa_button_card`) the customer tapped."""

    model_config = ConfigDict(extra="allow")
    type: Lenient[str] = None
    elements: Lenient[list[Lenient[TemplateElement]]] = None

    def tapped_text(self) -> str | None:
        """What the customer said by tapping: the text of the card's REPLY button.

        A tap sends one question, so the card carries the button tapped; should it carry
        several, the first REPLY button is read (then the first button with a text at
        all), never all of them joined: the router would read a mix of questions. The card's
        title is the shop's question, not the customer's words."""
        buttons = [
            button
            for element in self.elements or []
            if element is not None
            for button in element.buttons or []
            if button is not None and button.text and button.text.strip()
        ]
        replies = [b for b in buttons if (b.type or "").upper() == "REPLY"]
        chosen = (replies or buttons)[:1]
        return chosen[0].text.strip() if chosen and chosen[0].text else None


class ReactionBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    operation: Lenient[str] = None  # ADD | REMOVE
    type: Lenient[str] = None
    emoji: Lenient[str] = None
    original_msg_id: Lenient[TikTokId] = None
    unique_identifier: Lenient[TikTokId] = None
    timestamp: Lenient[int] = None


class ReferencedMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    referenced_message_id: Lenient[TikTokId] = None


class MessageTag(BaseModel):
    model_config = ConfigDict(extra="allow")
    source: Lenient[str] = None  # API | APP | WEB | OTHERS


class MessageContent(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    # What the bot needs: checked.
    timestamp: int  # milliseconds
    conversation_id: TikTokId
    message_id: TikTokId | None = None
    from_user: UserRef
    type: str
    # What it can do without: lost alone when unreadable.
    unique_identifier: Lenient[TikTokId] = None
    sender: Lenient[str] = Field(default=None, alias="from")
    recipient: Lenient[str] = Field(default=None, alias="to")
    to_user: Lenient[UserRef] = None
    text: TextBody | None = None  # checked for a text message only, see below
    image: Lenient[ImageBody] = None
    media_url: Lenient[str] = None  # one source puts an image's link here
    video: Lenient[VideoBody] = None
    sticker: Lenient[UrlBody] = None
    emoji: Lenient[UrlBody] = None
    share_post: Lenient[SharePostBody] = None
    template: Lenient[TemplateBody] = None
    reaction: Lenient[list[Lenient[ReactionBody]]] = None
    referenced_message_info: Lenient[ReferencedMessage] = None
    message_tag: Lenient[MessageTag] = None
    auto_message_type: Lenient[str] = None  # WELCOME_MESSAGE, SUGGESTED_QUESTION, AUTO_REPLY

    @field_validator("text", mode="wrap")
    @classmethod
    def _text_checked_for_text_messages(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        # `type` is declared before `text`, so it is already read here.
        if info.data.get("type") == ContentType.TEXT:
            return handler(value)
        return _absent_if_invalid(value, handler, info)

    @model_validator(mode="after")
    def _a_text_message_has_its_text(self) -> MessageContent:
        if self.type == ContentType.TEXT and self.text is None:
            raise ValueError("a text message without `text`")
        return self

    @property
    def said(self) -> str | None:
        """What the customer said in words: a text's body, or a tapped button's text."""
        if self.type == ContentType.TEMPLATE:
            return self.template.tapped_text() if self.template is not None else None
        return self.text.body if self.text is not None else None

    @property
    def image_reference(self) -> str | None:
        """The image's media id, or its link (sources disagree on where it is)."""
        image = self.image or ImageBody()
        return image.media_id or image.media_url or self.media_url

    @property
    def source(self) -> str | None:
        source = self.message_tag.source if self.message_tag is not None else None
        if source is None or not source.strip():
            return None
        return source.strip().upper()

    @property
    def could_be_ours(self) -> bool:
        """An echo the bot may have sent: through the API (or of unknown source, as in older
        payloads), and not one of TikTok's automations."""
        return not self.auto_message_type and self.source in (None, "API")

    def echo_author(self) -> EchoAuthor:
        """Who sent this shop-side message, when it is not the bot's own (tiktok-api.md,
        "Who sent a message"): a person only for APP or WEB, or no source at all."""
        if self.auto_message_type:
            return EchoAuthor.TIKTOK_AUTOMATION
        source = self.source
        if source == "API":
            return EchoAuthor.OTHER_API_TOOL
        if source in (None, "APP", "WEB"):
            return EchoAuthor.STAFF_APP
        return EchoAuthor.OTHER_SOURCE


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


def conversation_id_in(content: dict[str, Any]) -> str | None:
    """The conversation of an event's raw content, read as the webhook reads it when it
    queues the event (and the worker, to keep the conversation's events in line)."""
    return tiktok_id(content.get("conversation_id"))


def conversation_of(body: bytes) -> str | None:
    """`conversation_id_in` the body's content; None when there is none. Never raises."""
    try:
        return conversation_id_in(load_content(parse_envelope(body)))
    except InvalidEnvelope:
        return None


def identify(body: bytes) -> tuple[str, str | None]:
    """(event id, conversation id) of an event's body, as far as it can be read: what a
    person looking at a parked event searches by. Never raises."""
    try:
        content = parse_content(parse_envelope(body))
    except InvalidEnvelope:
        return event_id_for(body, None), None
    return event_id_for(body, content), content.conversation_id
