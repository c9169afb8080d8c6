"""Webhooks, sent to the bot as TikTok sends them: the event envelope (with the message
nested as a JSON string), signed with the app's client secret, posted to the configured
webhook URL, and posted again while the bot does not answer 2xx, if redelivery is on.
Every event and the status of each attempt go to the state's webhook log
(`GET /_sandbox/webhooks`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import aiohttp
import orjson
from fastapi import HTTPException
from pydantic import BaseModel, computed_field

from app.core.logging import get_logger
from app.sandbox.tiktok.config import SandboxConfig
from app.sandbox.tiktok.state import RecordedMessage, SandboxState, WebhookDeliveryRecord
from app.services.tiktok.signature import signature_header

log = get_logger(__name__)


class Delivery(BaseModel):
    status: int | None
    error: str | None = None
    elapsed_ms: float


class WebhookResult(BaseModel):
    event: str
    message_id: str
    conversation_id: str
    user_id: str
    timestamp_ms: int
    body: str  # the exact bytes posted, for tests that check the shape
    deliveries: list[Delivery]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bot_status(self) -> int | None:
        return self.deliveries[0].status if self.deliveries else None


def acknowledged(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


class EventResult(BaseModel):
    """A webhook posted for an event that carries no message (`POST /_sandbox/events`)."""

    event: str
    create_time: int
    body: str
    deliveries: list[Delivery]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bot_status(self) -> int | None:
        return self.deliveries[0].status if self.deliveries else None


# `content.message_tag.source`: who sent a shop-side message (tiktok-api.md, "Who sent a
# message"). API for the Business API, whoever called it.
MessageSource = Literal["API", "APP", "WEB", "OTHERS"]


def business_content(
    config: SandboxConfig,
    message: RecordedMessage,
    *,
    user_id: str,
    username: str,
    source: MessageSource | None = None,
) -> dict[str, Any]:
    """`content` of an `im_send_msg` echo: the customer message shape, sender and recipient
    swapped, tagged with who sent it (`source` None: no tag, as in older payloads)."""
    content = shop_side_content(
        config,
        conversation_id=message.conversation_id,
        message_id=message.message_id,
        timestamp_ms=int(message.received_at * 1000),
        user_id=user_id,
        username=username,
        source=source,
    )
    if message.message_type == "TEXT":
        content["type"] = "text"
        content["text"] = {"body": message.text or ""}
    else:
        content["type"] = "image"
        content["image"] = {"media_id": message.media_id}
    return content


def shop_side_content(
    config: SandboxConfig,
    *,
    conversation_id: str,
    message_id: str,
    timestamp_ms: int,
    user_id: str,
    username: str,
    source: MessageSource | None,
) -> dict[str, Any]:
    """The envelope part of a shop-side message's `content`, without its type and body."""
    content: dict[str, Any] = {
        "timestamp": timestamp_ms,
        "unique_identifier": str(uuid.uuid4()),
        "conversation_id": conversation_id,
        "message_id": message_id,
        "from": config.shop_username,
        "to": username,
        "from_user": {"id": config.business_id, "role": "business_account"},
        "to_user": {"id": user_id, "role": "personal_account"},
    }
    if source is not None:
        content["message_tag"] = {"source": source}
    return content


class WebhookSender:
    """Posts webhooks to the bot for one sandbox app. Its HTTP client lives as long as the
    app does (`running()`, entered from the app's lifespan); redeliveries and echoes run
    as background tasks, cancelled when the app stops."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._config = state.config
        self._http: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        # aiohttp rather than httpx: a quarter of the CPU per post, and the sandbox shares
        # the machine with the bot it echoes to (`make bench` measures that machine).
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._config.webhook_timeout_seconds)
        )
        try:
            yield
        finally:
            for task in list(self._background):
                task.cancel()
            await self._http.close()

    def envelope(
        self,
        event: str,
        content: dict[str, Any],
        create_time: int,
        *,
        client_key: str | None = None,
        user_openid: str | None = None,
    ) -> bytes:
        """The webhook body; `client_key` and `user_openid` default to this sandbox's app
        and account (another app's or account's events reach the same callback URL)."""
        return orjson.dumps(
            {
                "client_key": client_key or self._config.client_key,
                "event": event,
                "create_time": create_time,
                "user_openid": user_openid or self._config.business_id,
                # TikTok nests the message as a JSON document inside a string.
                "content": orjson.dumps(content).decode("utf-8"),
            }
        )

    async def post(
        self, body: bytes, copies: int, *, event: str = "", message_id: str | None = None
    ) -> list[Delivery]:
        """Post `body` `copies` times at once (concurrent duplicate deliveries) and answer
        how each first attempt went; redeliveries, if any, go on in the background.
        Raises HTTPException 409 when no webhook URL is configured."""
        url = self._state.settings.webhook_url
        if url is None:
            raise HTTPException(status_code=409, detail="no webhook_url configured")
        http = self._http
        if http is None:
            raise RuntimeError("the sandbox app is not running: no HTTP client for webhooks")

        async def deliver() -> Delivery:
            # Signed at each attempt, as TikTok does: a redelivery carries a fresh timestamp.
            headers = {
                "Content-Type": "application/json",
                "TikTok-Signature": signature_header(self._config.client_secret, body),
            }
            started = time.perf_counter()
            try:
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                elapsed = (time.perf_counter() - started) * 1000
                return Delivery(status=None, error=repr(error), elapsed_ms=elapsed)
            elapsed = (time.perf_counter() - started) * 1000
            return Delivery(status=status, elapsed_ms=elapsed)

        first = list(await asyncio.gather(*(deliver() for _ in range(copies))))
        record = WebhookDeliveryRecord(
            event=event,
            message_id=message_id,
            statuses=[d.status for d in first],
            acknowledged=any(acknowledged(d.status) for d in first),
        )
        self._state.webhook_log.append(record)
        redelivery = self._state.settings.webhook_redelivery_seconds
        if not record.acknowledged and redelivery > 0:
            self.spawn(self._redeliver(record, deliver, time.monotonic() + redelivery))
        return first

    async def _redeliver(
        self,
        record: WebhookDeliveryRecord,
        deliver: Callable[[], Awaitable[Delivery]],
        give_up_at: float,
    ) -> None:
        pause = 0.25
        while time.monotonic() < give_up_at:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 4.0)
            delivery = await deliver()
            record.statuses.append(delivery.status)
            if acknowledged(delivery.status):
                record.acknowledged = True
                return
        log.warning(
            "sandbox_webhook_abandoned", webhook_event=record.event, message_id=record.message_id
        )

    def spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        # Held until done: the event loop keeps only weak references to tasks.
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def echo_send(self, message: RecordedMessage) -> None:
        """Post the `im_send_msg` echo TikTok sends for a message sent through the API."""
        conversation = self._state.conversation(message.conversation_id)
        content = business_content(
            self._config,
            message,
            user_id=conversation.user_id if conversation else "unknown",
            username=conversation.username if conversation else "unknown",
            source="API",
        )
        body = self.envelope("im_send_msg", content, int(message.received_at))
        try:
            await self.post(body, 1, event="im_send_msg", message_id=message.message_id)
        except HTTPException:
            log.info("sandbox_echo_skipped_no_webhook")
