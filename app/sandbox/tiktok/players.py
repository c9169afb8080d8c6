"""Playing the people and machines on the other side of the shop's DMs, through the control
API. Each becomes the webhook TikTok would send, posted to the bot; the answer says how the
bot took it.

    POST /_sandbox/customer/messages    a customer writes, in any of TikTok's message shapes
                                        (tiktok-api.md, "What production integrations show")
    POST /_sandbox/staff/messages       staff type (or react) in the TikTok app or web inbox
    POST /_sandbox/automation/messages  TikTok's own automations (welcome, suggested question,
                                        auto-reply) write for the shop
    POST /_sandbox/other_tool/messages  another tool sharing the account sends through the API
    POST /_sandbox/events               any other event, by name (authorization.removed, ...)

A shop-side message comes back as `im_send_msg`, tagged with who sent it. With a
`welcome_message` set (`PATCH /_sandbox/config`), every new chat starts with TikTok's
WELCOME_MESSAGE echo, posted just before the customer's first message.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.sandbox.tiktok.protocol import conversation_id_for, tiktok_id
from app.sandbox.tiktok.state import Conversation, SandboxState
from app.sandbox.tiktok.webhooks import (
    EventResult,
    MessageSource,
    WebhookResult,
    WebhookSender,
    business_content,
    shop_side_content,
)

AutoMessageType = Literal["WELCOME_MESSAGE", "SUGGESTED_QUESTION", "AUTO_REPLY"]
ReactionOperation = Literal["ADD", "REMOVE"]
# How a shared post names its video: `video_id` as a string (the documented shape) or as a
# JSON number, or no `video_id` at all and only an `embed_url`, an embed link or a video link.
SharePostForm = Literal["string", "number", "embed_url", "video_url"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _media_id() -> str:
    return "v0f044g" + secrets.token_hex(12)


class CustomerMessage(BaseModel):
    """Play a customer writing a DM: exactly one of `text`, `share_post_video_id`, `image`,
    `video`, `sticker_url`, `emoji_url`, `button_text`, `reaction_emoji`, `unknown_type`."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1)
    conversation_id: str | None = None  # None: derived stably from user_id
    username: str | None = None
    text: str | None = None
    share_post_video_id: str | None = None
    share_post_form: SharePostForm = "string"
    image: bool = False
    image_media_id: str | None = None
    # An image carried by its link instead of a media id, in `image.media_url` or, as one
    # source reads it, in a top-level `media_url`.
    image_media_url: str | None = None
    image_url_top_level: bool = False
    video: bool = False
    video_media_id: str | None = None
    sticker_url: str | None = None
    emoji_url: str | None = None
    # A tapped suggested-question button: a `qa_button_card` template holding that button.
    button_text: str | None = None
    button_id: str | None = None
    card_title: str = "Questions you may have"
    reaction_emoji: str | None = None
    reaction_operation: ReactionOperation = "ADD"
    reaction_to: str | None = None  # default: the shop's last message in the conversation
    # A `content.type` TikTok may add one day, with a body of its own under that name.
    unknown_type: str | None = Field(default=None, min_length=1, max_length=64)
    # Fields production payloads carry beyond the docs (`scene_type`, `is_follower`).
    with_extras: bool = False
    # Leave out the optional `from`, `to` and the users' `role`, as some payloads do.
    omit_optional: bool = False
    # Another app's or another account's event, posted to the same callback URL.
    client_key: str | None = None
    user_openid: str | None = None
    message_id: str | None = None  # give one to simulate a redelivery of the same message
    timestamp_ms: int | None = None  # when the customer wrote; default now
    referenced_message_id: str | None = None
    copies: int = Field(default=1, ge=1, le=100)  # concurrent identical deliveries

    @model_validator(mode="after")
    def _one_kind(self) -> CustomerMessage:
        kinds = [
            self.text is not None,
            self.share_post_video_id is not None,
            self.image,
            self.video,
            self.sticker_url is not None,
            self.emoji_url is not None,
            self.button_text is not None,
            self.reaction_emoji is not None,
            self.unknown_type is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "give exactly one of text, share_post_video_id, image, video, sticker_url, "
                "emoji_url, button_text, reaction_emoji, unknown_type"
            )
        video_id = self.share_post_video_id
        if video_id is not None and self.share_post_form != "string" and not video_id.isdigit():
            # A JSON number, and the id a link carries, are digits only.
            raise ValueError("share_post_form other than string needs a numeric video id")
        return self

    @property
    def for_another_account(self) -> bool:
        return self.client_key is not None or self.user_openid is not None


class StaffMessage(BaseModel):
    """Play a staff member in the TikTok app or web inbox: typing a message, or reacting to
    one. TikTok echoes either as `im_send_msg`."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str
    user_id: str | None = None
    text: str | None = Field(default=None, min_length=1)
    # APP: the TikTok app; WEB: TikTok's web inbox; None: no `message_tag` (older payloads).
    source: MessageSource | None = "APP"
    reaction_emoji: str | None = None
    reaction_operation: ReactionOperation = "ADD"
    reaction_to: str | None = None  # default: the customer's last message

    @model_validator(mode="after")
    def _text_or_reaction(self) -> StaffMessage:
        if (self.text is None) == (self.reaction_emoji is None):
            raise ValueError("give exactly one of text, reaction_emoji")
        return self


class AutomationMessage(BaseModel):
    """Play one of TikTok's automations the shop switched on in the TikTok app."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str
    user_id: str | None = None
    auto_message_type: AutoMessageType = "AUTO_REPLY"
    text: str = Field(min_length=1)
    # Suggested questions offered with the message: sent as a `qa_button_card` template
    # titled `text`, as a welcome message with questions is.
    buttons: list[str] | None = Field(default=None, min_length=1)
    # Where the sources do not say what tag TikTok puts on its automations: none by default.
    source: MessageSource | None = None


class OtherToolMessage(BaseModel):
    """Play another tool that shares the account's API access sending a text."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str
    user_id: str | None = None
    text: str = Field(min_length=1)


class NamedEvent(BaseModel):
    """Post any event by name, with the content it usually carries unless one is given."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(min_length=1, max_length=64)
    content: dict[str, Any] | None = None
    client_key: str | None = None
    user_openid: str | None = None


def _reaction(emoji: str, operation: ReactionOperation, original_msg_id: str) -> dict[str, Any]:
    return {
        "operation": operation,
        "type": "EMOJI",
        "emoji": emoji,
        "original_msg_id": original_msg_id,
        "unique_identifier": str(uuid.uuid4()),
        "timestamp": _now_ms(),
    }


def _qa_button_card(title: str, buttons: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "qa_button_card",
        "elements": [
            {
                "title": title,
                "buttons": [
                    {"text": text, "type": "REPLY", "id": button_id} for text, button_id in buttons
                ],
            }
        ],
    }


def players_router(state: SandboxState, webhooks: WebhookSender) -> APIRouter:
    config = state.config
    router = APIRouter()
    # What the shop reacts to by default; the state keeps no order of customer messages.
    customers_last_message: dict[str, str] = {}

    def shops_last_message(conversation_id: str) -> str | None:
        sent = [m for m in state.messages if m.conversation_id == conversation_id]
        return sent[-1].message_id if sent else None

    def customer_body(body: CustomerMessage, content: dict[str, Any], conversation_id: str) -> None:
        """Put the message's type and body into `content`."""
        if body.text is not None:
            content["type"] = "text"
            content["text"] = {"body": body.text}
        elif body.share_post_video_id is not None:
            content["type"] = "share_post"
            content["share_post"] = _share_post(
                body.share_post_video_id, body.share_post_form, config.shop_username
            )
        elif body.image:
            content["type"] = "image"
            if body.image_media_url is None:
                content["image"] = {"media_id": body.image_media_id or _media_id()}
            elif body.image_url_top_level:
                content["media_url"] = body.image_media_url
            else:
                content["image"] = {"media_url": body.image_media_url}
        elif body.video:
            content["type"] = "video"
            content["video"] = {"media_id": body.video_media_id or _media_id()}
        elif body.sticker_url is not None:
            content["type"] = "sticker"
            content["sticker"] = {"url": body.sticker_url}
        elif body.emoji_url is not None:
            content["type"] = "emoji"
            content["emoji"] = {"url": body.emoji_url}
        elif body.button_text is not None:
            content["type"] = "template"
            button_id = body.button_id or secrets.token_hex(8)
            content["template"] = _qa_button_card(body.card_title, [(body.button_text, button_id)])
        elif body.reaction_emoji is not None:
            content["type"] = "reaction"
            original = body.reaction_to or shops_last_message(conversation_id) or tiktok_id()
            content["reaction"] = [
                _reaction(body.reaction_emoji, body.reaction_operation, original)
            ]
        else:
            assert body.unknown_type is not None  # the validator saw to it
            content["type"] = body.unknown_type
            content[body.unknown_type] = {"id": secrets.token_hex(8)}

    async def post_welcome(conversation_id: str, user_id: str, username: str, at_ms: int) -> None:
        text = state.settings.welcome_message
        if text is None:
            return
        content, _ = new_shop_side(conversation_id, user_id, username, None, at_ms=at_ms)
        content.update(type="text", text={"body": text}, auto_message_type="WELCOME_MESSAGE")
        raw = webhooks.envelope("im_send_msg", content, at_ms // 1000)
        await webhooks.post(raw, 1, event="im_send_msg", message_id=content["message_id"])

    @router.post("/_sandbox/customer/messages")
    async def play_customer(body: CustomerMessage) -> WebhookResult:
        business_id = body.user_openid or config.business_id
        conversation_id = body.conversation_id or conversation_id_for(body.user_id, business_id)
        username = body.username or f"customer_{body.user_id[:12]}"
        message_id = body.message_id or tiktok_id()
        timestamp_ms = body.timestamp_ms if body.timestamp_ms is not None else _now_ms()
        content: dict[str, Any] = {
            "timestamp": timestamp_ms,
            "unique_identifier": str(uuid.uuid4()),
            "conversation_id": conversation_id,
            "message_id": message_id,
            "from": username,
            "to": config.shop_username,
            "from_user": {"id": body.user_id, "role": "personal_account"},
            "to_user": {"id": business_id, "role": "business_account"},
        }
        customer_body(body, content, conversation_id)
        if body.referenced_message_id is not None:
            content["referenced_message_info"] = {
                "referenced_message_id": body.referenced_message_id
            }
        if body.with_extras:
            # Only their presence matters: no source says what values they take.
            content.update(scene_type=1, is_follower=True)
        if body.omit_optional:
            for name in ("from", "to"):
                del content[name]
            for user in ("from_user", "to_user"):
                del content[user]["role"]
        if not body.for_another_account:
            new_chat = conversation_id not in state.conversations
            if body.reaction_emoji is not None:
                # Whether TikTok counts a reaction as a message is undocumented: the window
                # and the quota are left alone, as the bot is told to assume.
                state.conversations.setdefault(
                    conversation_id, Conversation(user_id=body.user_id, username=username)
                )
            else:
                # Noted before posting: the bot may answer while the webhook is still in
                # flight, and its reply must find the window open.
                state.note_customer_message(
                    conversation_id, message_id, body.user_id, username, timestamp_ms / 1000
                )
            customers_last_message[conversation_id] = message_id
            if new_chat:
                # TikTok greets the customer as the chat opens, a moment before they write.
                await post_welcome(conversation_id, body.user_id, username, timestamp_ms - 1000)
        raw = webhooks.envelope(
            "im_receive_msg",
            content,
            timestamp_ms // 1000,
            client_key=body.client_key,
            user_openid=body.user_openid,
        )
        deliveries = await webhooks.post(
            raw, body.copies, event="im_receive_msg", message_id=message_id
        )
        return WebhookResult(
            event="im_receive_msg",
            message_id=message_id,
            conversation_id=conversation_id,
            user_id=body.user_id,
            timestamp_ms=timestamp_ms,
            body=raw.decode("utf-8"),
            deliveries=deliveries,
        )

    def customer_of(conversation_id: str, user_id: str | None) -> tuple[str, str]:
        conversation = state.conversation(conversation_id)
        return (
            user_id or (conversation.user_id if conversation else "unknown"),
            conversation.username if conversation else "unknown",
        )

    def spend_quota(conversation_id: str) -> None:
        # TikTok counts every business message against the window's quota, whoever sent
        # it; only the bot's own sends and staff typing are in the record of messages.
        conversation = state.conversation(conversation_id)
        if conversation is not None:
            conversation.replies += 1

    def new_shop_side(
        conversation_id: str,
        user_id: str,
        username: str,
        source: MessageSource | None,
        *,
        at_ms: int | None = None,
    ) -> tuple[dict[str, Any], int]:
        """The common part of a new message from the shop's side, and its time."""
        timestamp_ms = _now_ms() if at_ms is None else at_ms
        content = shop_side_content(
            config,
            conversation_id=conversation_id,
            message_id=tiktok_id(),
            timestamp_ms=timestamp_ms,
            user_id=user_id,
            username=username,
            source=source,
        )
        return content, timestamp_ms

    async def post_shop_side(
        content: dict[str, Any], user_id: str, timestamp_ms: int
    ) -> WebhookResult:
        raw = webhooks.envelope("im_send_msg", content, timestamp_ms // 1000)
        message_id: str = content["message_id"]
        deliveries = await webhooks.post(raw, 1, event="im_send_msg", message_id=message_id)
        return WebhookResult(
            event="im_send_msg",
            message_id=message_id,
            conversation_id=content["conversation_id"],
            user_id=user_id,
            timestamp_ms=timestamp_ms,
            body=raw.decode("utf-8"),
            deliveries=deliveries,
        )

    @router.post("/_sandbox/staff/messages")
    async def play_staff(body: StaffMessage) -> WebhookResult:
        user_id, username = customer_of(body.conversation_id, body.user_id)
        if body.text is not None:
            # Recorded with the API's sends, so it takes a reply number too.
            message = state.record_message(
                body.conversation_id, "TEXT", text=body.text, source="app"
            )
            content = business_content(
                config, message, user_id=user_id, username=username, source=body.source
            )
            return await post_shop_side(content, user_id, int(message.received_at * 1000))
        assert body.reaction_emoji is not None  # the validator saw to it
        # A reaction is no message: not recorded with the sends, no reply number.
        original = (
            body.reaction_to or customers_last_message.get(body.conversation_id) or tiktok_id()
        )
        content, timestamp_ms = new_shop_side(body.conversation_id, user_id, username, body.source)
        content["type"] = "reaction"
        content["reaction"] = [_reaction(body.reaction_emoji, body.reaction_operation, original)]
        return await post_shop_side(content, user_id, timestamp_ms)

    @router.post("/_sandbox/automation/messages")
    async def play_automation(body: AutomationMessage) -> WebhookResult:
        user_id, username = customer_of(body.conversation_id, body.user_id)
        content, timestamp_ms = new_shop_side(body.conversation_id, user_id, username, body.source)
        if body.buttons:
            content["type"] = "template"
            content["template"] = _qa_button_card(
                body.text, [(text, secrets.token_hex(8)) for text in body.buttons]
            )
        else:
            content["type"] = "text"
            content["text"] = {"body": body.text}
        content["auto_message_type"] = body.auto_message_type
        spend_quota(body.conversation_id)
        return await post_shop_side(content, user_id, timestamp_ms)

    @router.post("/_sandbox/other_tool/messages")
    async def play_other_tool(body: OtherToolMessage) -> WebhookResult:
        user_id, username = customer_of(body.conversation_id, body.user_id)
        content, timestamp_ms = new_shop_side(body.conversation_id, user_id, username, "API")
        content["type"] = "text"
        content["text"] = {"body": body.text}
        spend_quota(body.conversation_id)
        return await post_shop_side(content, user_id, timestamp_ms)

    def usual_content(event: str, timestamp_ms: int) -> dict[str, Any]:
        if event == "authorization.removed":
            return {"reason": 1}  # TikTok's code for "the user disconnected in the app"
        if event == "im_receive_msg_eu":
            return {
                "to": config.shop_username,
                "to_user": {"id": config.business_id, "role": "business_account"},
                "timestamp": timestamp_ms,
            }
        # The others' content is undocumented; the bot must not need it.
        return {"timestamp": timestamp_ms}

    @router.post("/_sandbox/events")
    async def play_event(body: NamedEvent) -> EventResult:
        timestamp_ms = _now_ms()
        content = (
            body.content if body.content is not None else usual_content(body.event, timestamp_ms)
        )
        raw = webhooks.envelope(
            body.event,
            content,
            timestamp_ms // 1000,
            client_key=body.client_key,
            user_openid=body.user_openid,
        )
        deliveries = await webhooks.post(raw, 1, event=body.event)
        return EventResult(
            event=body.event,
            create_time=timestamp_ms // 1000,
            body=raw.decode("utf-8"),
            deliveries=deliveries,
        )

    return router


def _share_post(video_id: str, form: SharePostForm, shop_username: str) -> dict[str, Any]:
    if form == "embed_url":
        return {"embed_url": f"https://www.tiktok.com/embed/{video_id}"}
    if form == "video_url":
        return {"embed_url": f"https://www.tiktok.com/@{shop_username}/video/{video_id}"}
    embed_url = f"https://www.tiktok.com/embed/v2/{video_id}"
    if form == "number":
        return {"video_id": int(video_id), "embed_url": embed_url}
    return {"video_id": video_id, "embed_url": embed_url}
