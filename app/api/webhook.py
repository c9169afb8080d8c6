"""TikTok's webhook: verify, queue, answer. No database, no model, no business logic here:
the only promise a 200 makes is that the event is safely in the queue."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from redis.exceptions import RedisError

from app.api.metrics import observe_webhook
from app.core.config import Settings
from app.core.errors import BadPayload, PayloadTooLarge, PhiliaError, Unauthorized
from app.core.logging import get_logger
from app.services.messaging.echoes import EchoLedger
from app.services.messaging.inbound import Outcome
from app.services.tiktok.signature import SIGNATURE_HEADERS, InvalidSignature, verify_signature
from app.services.tiktok.webhook import (
    EventType,
    InvalidEnvelope,
    conversation_id_in,
    load_content,
    parse_envelope,
    tiktok_id,
)
from app.worker.enqueue import enqueue_event

router = APIRouter(tags=["webhook"])
log = get_logger(__name__)


async def read_body_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _signature_header(request: Request) -> str | None:
    for name in SIGNATURE_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            return value
    return None


@router.post(
    "/webhook/tiktok",
    responses={
        400: {"description": "signed, but not a TikTok envelope"},
        401: {"description": "missing, malformed, wrong or stale signature"},
        413: {"description": "body over the limit"},
        503: {"description": "the queue cannot take the event now; TikTok retries"},
    },
)
async def tiktok_webhook(request: Request) -> dict[str, str]:
    started = time.perf_counter()
    # Read from the app, not through a dependency: resolving one costs a tenth of a
    # millisecond, a third of what the rest of this handler does.
    settings: Settings = request.app.state.settings
    status = 500
    try:
        answer = await _accept(request, settings)
        status = 200
        return answer
    except PhiliaError as error:
        status = error.status_code
        raise
    finally:
        observe_webhook(status, time.perf_counter() - started)


async def _accept(request: Request, settings: Settings) -> dict[str, str]:
    received_at = time.time()
    body = await read_body_limited(request, settings.webhook_max_body_bytes)
    try:
        verify_signature(
            settings.tiktok_client_secret.get_secret_value(),
            _signature_header(request),
            body,
            settings.signature_tolerance_seconds,
        )
    except InvalidSignature as error:
        log.info("webhook_rejected", reason=error.problem.value)
        raise Unauthorized(str(error)) from None
    try:
        # The same parse, depth limit included, as the worker's: what is queued, it can read.
        envelope = parse_envelope(body)
        content = load_content(envelope)
    except InvalidEnvelope as error:
        raise BadPayload(str(error)) from None
    if envelope.event == EventType.SEND and await _echo_of_own_send(
        request, content, received_at, settings
    ):
        return {"status": "known"}
    await enqueue_event(
        request.app.state.producer,
        body,
        received_at,
        settings.webhook_enqueue_timeout_seconds,
        conversation_id=conversation_id_in(content),
    )
    return {"status": "queued"}


# TikTok may echo a reply before the delivery that sent it has read TikTok's answer and
# written its marker (a few milliseconds later). A second look after this pause settles most
# such echoes here: without it, about half of them cost the worker a task.
OWN_ECHO_SECOND_LOOK_SECONDS = 0.1


async def _echo_of_own_send(
    request: Request, content: dict[str, Any], received_at: float, settings: Settings
) -> bool:
    """TikTok echoes every message the shop sends, the bot's own replies included: one
    per DM. The delivery that sent a reply left a marker under TikTok's message id, and
    the worker would only find it and stop; the marker is what the event would have told
    it, so the echo is settled here without a task. Any doubt (no marker yet, since TikTok
    may echo before its answer to the send is read) queues it, recorded as queued for its
    conversation (services/messaging/echoes.py); Redis failing queues it too."""
    message_id = tiktok_id(content.get("message_id"))
    conversation_id = tiktok_id(content.get("conversation_id"))
    if message_id is None or conversation_id is None:
        return False
    state = request.app.state
    if getattr(state, "echo_ledger", None) is None:
        state.echo_ledger = EchoLedger(state.redis)
    ledger: EchoLedger = state.echo_ledger
    for pause in (0.0, OWN_ECHO_SECOND_LOOK_SECONDS):
        if pause:
            await asyncio.sleep(pause)
        try:
            settled = await ledger.settle_at_ingress(
                tiktok_message_id=message_id,
                conversation_id=conversation_id,
                received_at=received_at,
                outcome=Outcome.ECHO.value,
                marker_ttl_seconds=settings.idempotency_ttl_hours * 3600,
                queued_ttl_seconds=settings.queued_echo_wait_seconds,
            )
        except RedisError:
            return False
        if settled:
            log.debug("echo_of_own_send", tiktok_message_id=message_id, pause=pause)
            return True
    return False
