"""TikTok's webhook: verify, queue, answer. No database, no model, no business logic here:
the only promise a 200 makes is that the event is safely in the queue."""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from fastapi import APIRouter, Request
from redis.exceptions import RedisError

from app.api.metrics import observe_webhook
from app.core import redis_keys
from app.core.config import Settings
from app.core.errors import BadPayload, PayloadTooLarge, PhiliaError, Unauthorized
from app.core.logging import get_logger
from app.services.messaging.inbound import Outcome
from app.services.tiktok.signature import SIGNATURE_HEADERS, InvalidSignature, verify_signature
from app.services.tiktok.webhook import (
    EventType,
    InvalidEnvelope,
    load_content,
    parse_envelope,
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
    if envelope.event == EventType.SEND and await _echo_of_own_send(request, content, settings):
        return {"status": "known"}
    await enqueue_event(
        request.app.state.producer, body, received_at, settings.webhook_enqueue_timeout_seconds
    )
    return {"status": "queued"}


# One round trip: when the send's marker is there, mark the echo's event handled as the
# worker would have (readers of that marker, the scenario runner among them, see no
# difference) and say so.
_SETTLE_OWN_ECHO = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2], 'NX')
return 1
"""


async def _echo_of_own_send(request: Request, content: object, settings: Settings) -> bool:
    """TikTok echoes every message the shop sends, the bot's own replies included: one
    per DM. The delivery that sent a reply left a marker under TikTok's message id, and
    the worker would only find it and stop; the marker is what the event would have told
    it, so the echo is settled here without a task. Any doubt (no marker yet, since TikTok
    may echo before its answer to the send is read; Redis failing) queues it."""
    message_id = content.get("message_id") if isinstance(content, dict) else None
    if not isinstance(message_id, str) or not message_id:
        return False
    state = request.app.state
    if getattr(state, "settle_own_echo", None) is None:
        redis: aioredis.Redis = state.redis
        state.settle_own_echo = redis.register_script(_SETTLE_OWN_ECHO)
    try:
        settled = await state.settle_own_echo(
            keys=[redis_keys.sent_by_tiktok_id(message_id), redis_keys.event_handled(message_id)],
            args=[Outcome.ECHO.value, settings.idempotency_ttl_hours * 3600],
        )
    except RedisError:
        return False
    if settled:
        log.debug("echo_of_own_send", tiktok_message_id=message_id)
    return bool(settled)
