"""Playing the people on the other side of the shop's DMs, through the control API: a
customer writing (`POST /_sandbox/customer/messages`) and a member of staff typing in the
TikTok app (`POST /_sandbox/staff/messages`). Each becomes the webhook TikTok would send,
`im_receive_msg` or `im_send_msg`, posted to the bot; the answer says how the bot took it.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.sandbox.tiktok.protocol import conversation_id_for, tiktok_id
from app.sandbox.tiktok.state import SandboxState
from app.sandbox.tiktok.webhooks import WebhookResult, WebhookSender, business_content


class CustomerMessage(BaseModel):
    """Play a customer writing a DM: exactly one of `text`, `share_post_video_id`, `image`."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1)
    conversation_id: str | None = None  # None: derived stably from user_id
    username: str | None = None
    text: str | None = None
    share_post_video_id: str | None = None
    image: bool = False
    image_media_id: str | None = None
    message_id: str | None = None  # give one to simulate a redelivery of the same message
    timestamp_ms: int | None = None  # when the customer wrote; default now
    referenced_message_id: str | None = None
    copies: int = Field(default=1, ge=1, le=100)  # concurrent identical deliveries

    @model_validator(mode="after")
    def _one_kind(self) -> CustomerMessage:
        kinds = [self.text is not None, self.share_post_video_id is not None, self.image]
        if sum(kinds) != 1:
            raise ValueError("give exactly one of text, share_post_video_id, image")
        return self


class StaffMessage(BaseModel):
    """Play a staff member typing in the TikTok app: TikTok echoes it as `im_send_msg`."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str
    user_id: str | None = None
    text: str = Field(min_length=1)


def players_router(state: SandboxState, webhooks: WebhookSender) -> APIRouter:
    config = state.config
    router = APIRouter()

    @router.post("/_sandbox/customer/messages")
    async def play_customer(body: CustomerMessage) -> WebhookResult:
        conversation_id = body.conversation_id or conversation_id_for(
            body.user_id, config.business_id
        )
        username = body.username or f"customer_{body.user_id[:12]}"
        message_id = body.message_id or tiktok_id()
        timestamp_ms = (
            body.timestamp_ms if body.timestamp_ms is not None else int(time.time() * 1000)
        )
        content: dict[str, Any] = {
            "timestamp": timestamp_ms,
            "unique_identifier": str(uuid.uuid4()),
            "conversation_id": conversation_id,
            "message_id": message_id,
            "from": username,
            "to": config.shop_username,
            "from_user": {"id": body.user_id, "role": "personal_account"},
            "to_user": {"id": config.business_id, "role": "business_account"},
        }
        if body.text is not None:
            content["type"] = "text"
            content["text"] = {"body": body.text}
        elif body.share_post_video_id is not None:
            content["type"] = "share_post"
            content["share_post"] = {
                "video_id": body.share_post_video_id,
                "embed_url": f"https://www.tiktok.com/embed/v2/{body.share_post_video_id}",
            }
        else:
            content["type"] = "image"
            content["image"] = {
                "media_id": body.image_media_id or "v0f044g" + secrets.token_hex(12)
            }
        if body.referenced_message_id is not None:
            content["referenced_message_info"] = {
                "referenced_message_id": body.referenced_message_id
            }
        # Noted before posting: the bot may answer while the webhook is still in flight,
        # and its reply must find the window open.
        state.note_customer_message(
            conversation_id, message_id, body.user_id, username, timestamp_ms / 1000
        )
        raw = webhooks.envelope("im_receive_msg", content, timestamp_ms // 1000)
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

    @router.post("/_sandbox/staff/messages")
    async def play_staff(body: StaffMessage) -> WebhookResult:
        conversation = state.conversation(body.conversation_id)
        user_id = body.user_id or (conversation.user_id if conversation else "unknown")
        # Recorded with the API's sends (source "app"), so it takes a reply number too.
        message = state.record_message(body.conversation_id, "TEXT", text=body.text, source="app")
        content = business_content(
            config,
            message,
            user_id=user_id,
            username=conversation.username if conversation else "unknown",
        )
        raw = webhooks.envelope("im_send_msg", content, int(message.received_at))
        deliveries = await webhooks.post(raw, 1, event="im_send_msg", message_id=message.message_id)
        return WebhookResult(
            event="im_send_msg",
            message_id=message.message_id,
            conversation_id=body.conversation_id,
            user_id=user_id,
            timestamp_ms=int(message.received_at * 1000),
            body=raw.decode("utf-8"),
            deliveries=deliveries,
        )

    return router
