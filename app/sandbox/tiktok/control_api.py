"""The control API under `/_sandbox`, for tests, the scenario runner, the customer
simulator and benchmarks (their typed client is app.sandbox.control.SandboxControl): read
what the sandbox recorded, script failures and random faults, flip capabilities, expire
tokens, change settings, reset, and serve images (the shop's CDN mirror and uploads).
Playing customers and staff is in `players`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from app.sandbox.media import placeholder_png
from app.sandbox.tiktok.config import ConfigUpdate, ConfigView
from app.sandbox.tiktok.faults import (
    FailureRequest,
    FailuresView,
    RandomFaults,
    RandomFaultsView,
)
from app.sandbox.tiktok.protocol import Endpoint, validation_message
from app.sandbox.tiktok.state import (
    RecordedCall,
    RecordedMessage,
    SandboxState,
    TokensView,
    WebhookDeliveryRecord,
)

# Under the control client's own timeout (30 s), so a long wait is answered, not cut.
MAX_TALLY_WAIT_SECONDS = 20.0


class MessagesView(BaseModel):
    messages: list[RecordedMessage]


class MessagesTally(BaseModel):
    """How many messages were sent through the API, and to how many conversations."""

    messages: int
    conversations: int


class CallsView(BaseModel):
    calls: list[RecordedCall]


class WebhookDeliveriesView(BaseModel):
    deliveries: list[WebhookDeliveryRecord]


class CapabilityUpdate(BaseModel):
    image_send: bool
    conversation_id: str | None = None  # None: the default for every conversation


class CapabilitiesView(BaseModel):
    image_send: bool
    overrides: dict[str, bool]


def control_api_router(state: SandboxState) -> APIRouter:
    router = APIRouter()

    @router.get("/_sandbox/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @router.get("/_sandbox/media/{path:path}")
    async def media(path: str) -> Response:
        """The shop's CDN, as a mirror the worker may fetch through (MEDIA_MIRROR_URL)."""
        return Response(placeholder_png(path), media_type="image/png")

    @router.get("/_sandbox/uploads/{media_id}")
    async def uploaded(media_id: str) -> Response:
        """The bytes of an image uploaded through the media API, as TikTok would show it."""
        stored = state.media.get(media_id)
        if stored is None:
            raise HTTPException(status_code=404, detail="no upload with this media_id")
        return Response(stored.content, media_type=stored.content_type)

    @router.post("/_sandbox/reset")
    async def reset() -> dict[str, bool]:
        state.reset()
        return {"ok": True}

    # what the sandbox recorded

    @router.get("/_sandbox/messages")
    async def list_messages(
        conversation_id: str | None = None, since: float | None = None
    ) -> MessagesView:
        return MessagesView(
            messages=[
                message
                for message in state.messages
                if (conversation_id is None or message.conversation_id == conversation_id)
                and (since is None or message.received_at >= since)
            ]
        )

    @router.get("/_sandbox/messages/tally")
    async def tally_messages(
        until_conversations: Annotated[int | None, Query(ge=1)] = None,
        wait_seconds: Annotated[float, Query(gt=0, le=MAX_TALLY_WAIT_SECONDS)] = 10.0,
    ) -> MessagesTally:
        """Counts without the messages. `until_conversations`: answers once messages were
        sent to that many conversations, or after `wait_seconds` with the counts so far: a
        benchmark waiting for its replies then costs the sandbox and itself, which share
        the machine with the bot, one request instead of a poll every few milliseconds."""
        if until_conversations is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_seconds):
                    await state.until_conversations(until_conversations)
        return MessagesTally(
            messages=len(state.messages), conversations=len(state.sent_per_conversation)
        )

    @router.get("/_sandbox/calls")
    async def list_calls(
        endpoint: Annotated[list[Endpoint] | None, Query()] = None, since: float | None = None
    ) -> CallsView:
        return CallsView(
            calls=[
                call
                for call in state.calls
                if (endpoint is None or call.endpoint in endpoint)
                and (since is None or call.received_at >= since)
            ]
        )

    # faults

    @router.get("/_sandbox/failures")
    async def list_failures() -> FailuresView:
        return state.faults.failures_view()

    @router.post("/_sandbox/failures")
    async def add_failures(body: FailureRequest) -> FailuresView:
        try:
            state.faults.add_failures(body)
        except ValidationError as error:
            raise HTTPException(status_code=422, detail=validation_message(error)) from None
        return state.faults.failures_view()

    @router.delete("/_sandbox/failures")
    async def clear_failures() -> FailuresView:
        state.faults.clear_failures()
        return FailuresView(pending=[])

    @router.get("/_sandbox/faults/random")
    async def random_faults_view() -> RandomFaultsView:
        return state.faults.random_faults_view()

    @router.put("/_sandbox/faults/random")
    async def set_random_faults(body: RandomFaults) -> RandomFaultsView:
        state.faults.set_random_faults(body)
        return state.faults.random_faults_view()

    @router.delete("/_sandbox/faults/random")
    async def clear_random_faults() -> RandomFaultsView:
        state.faults.clear_random_faults()
        return state.faults.random_faults_view()

    # webhooks, capabilities, tokens, settings

    @router.get("/_sandbox/webhooks")
    async def webhook_deliveries(event: str | None = None) -> WebhookDeliveriesView:
        return WebhookDeliveriesView(
            deliveries=[
                record for record in state.webhook_log if event is None or record.event == event
            ]
        )

    @router.get("/_sandbox/capabilities")
    async def capabilities_view() -> CapabilitiesView:
        return CapabilitiesView(
            image_send=state.image_send, overrides=dict(state.image_send_overrides)
        )

    @router.post("/_sandbox/capabilities")
    async def set_capabilities(body: CapabilityUpdate) -> CapabilitiesView:
        if body.conversation_id is None:
            state.image_send = body.image_send
        else:
            state.image_send_overrides[body.conversation_id] = body.image_send
        return await capabilities_view()

    @router.get("/_sandbox/tokens")
    async def tokens() -> TokensView:
        return state.tokens_view()

    @router.post("/_sandbox/tokens/expire")
    async def expire_access_token() -> TokensView:
        state.access_expires_at = time.time() - 1
        return state.tokens_view()

    @router.get("/_sandbox/config")
    async def config_view() -> ConfigView:
        return state.settings

    @router.patch("/_sandbox/config")
    async def update_config(body: ConfigUpdate) -> ConfigView:
        # Only the fields sent change; an explicit null clears webhook_url or the rate limit.
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        for name in ("echo_sends", "webhook_redelivery_seconds"):
            if name in changes and changes[name] is None:
                del changes[name]
        state.settings = state.settings.model_copy(update=changes)
        return state.settings

    return router
