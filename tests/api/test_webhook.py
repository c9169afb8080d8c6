from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from app.api.webhook import OWN_ECHO_SECOND_LOOK_SECONDS
from app.core import redis_keys
from app.core.config import Settings, get_settings
from app.core.embedded import EmbeddedRedis
from app.main import create_app
from app.services.tiktok.connection import mark_disconnected
from tests.conftest import TestServices
from tests.factories import CONVERSATION_ID, echo, encode, signed, text_message

SECRET = "test-client-secret"


def headers(body: bytes, **kwargs: Any) -> dict[str, str]:
    return signed(body, SECRET, **kwargs).headers


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            yield client


def settings_for(services: TestServices, **overrides: object) -> Settings:
    base = get_settings().model_dump()
    base.update(
        database_url=services.database_url,
        redis_url=services.redis_url,
        tiktok_client_secret=SECRET,
        webhook_max_body_bytes=4096,
    )
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
async def bot(
    services: TestServices, redis_client: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(settings_for(services)) as client:
        yield client


async def queued(redis_client: aioredis.Redis) -> int:
    return int(await redis_client.llen("events"))


async def test_valid_event_is_queued_and_acknowledged(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    body, signature = signed(text_message(conversation_id="conv+/=1"), SECRET)
    response = await bot.post("/webhook/tiktok", content=body, headers=signature)
    assert response.status_code == 200
    assert await queued(redis_client) == 1
    # only in its own queue: a shared binding would copy it into every queue
    assert await redis_client.llen("sends") == 0
    assert await redis_client.llen("maintenance") == 0
    message = orjson.loads(await redis_client.lindex("events", 0))
    assert message["headers"]["task"] == "philia.process_events"
    # On the ledger of accepted events until a worker finishes it (app/worker/accepted.py).
    task_id = message["headers"]["id"]
    recorded = await redis_client.hget(redis_keys.ACCEPTED_EVENTS_TASKS, task_id)
    assert recorded == await redis_client.lindex("events", 0)
    accepted_at = await redis_client.zscore(redis_keys.ACCEPTED_EVENTS_AT, task_id)
    (_, received_at), _, _ = orjson.loads(base64.b64decode(message["body"]))
    assert accepted_at == received_at
    # In its conversation's line, so that no later message of it overtakes it
    # (app/worker/turn_order.py).
    in_line = await redis_client.zscore(redis_keys.events_in_flight("conv+/=1"), task_id)
    assert in_line == received_at


async def test_the_echo_of_the_bots_own_reply_needs_no_task(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    """A reply the bot sent left a marker under TikTok's message id: its echo is answered
    200 and not queued. An echo of anything else (staff typing in the app, an automation,
    a reply whose send is not recorded yet) is queued for the worker as before."""
    await redis_client.set(redis_keys.sent_by_tiktok_id("tt-ours"), 7)
    body, signature = signed(echo("here you go", message_id="tt-ours"), SECRET)
    response = await bot.post("/webhook/tiktok", content=body, headers=signature)
    assert response.status_code == 200 and await queued(redis_client) == 0
    # Settled as the worker would have settled it: its event is marked handled, as an echo.
    assert await redis_client.get(redis_keys.event_handled("tt-ours")) == b"echo"
    for other in ("tt-typed-in-the-app", "tt-not-recorded-yet"):
        body, signature = signed(echo("hi, it's Sam", message_id=other), SECRET)
        assert (
            await bot.post("/webhook/tiktok", content=body, headers=signature)
        ).status_code == 200
    # A customer's message with the same id as a marker is never skipped.
    body, signature = signed(text_message(message_id="tt-ours"), SECRET)
    assert (await bot.post("/webhook/tiktok", content=body, headers=signature)).status_code == 200
    assert await queued(redis_client) == 3
    # The queued echoes are on record for their conversation until a worker handles them:
    # one may confirm a send whose answer was lost (services/messaging/echoes.py).
    waiting = await redis_client.hgetall(redis_keys.queued_echoes(CONVERSATION_ID))
    assert set(waiting) == {b"tt-typed-in-the-app", b"tt-not-recorded-yet"}
    assert 0 < await redis_client.ttl(redis_keys.queued_echoes(CONVERSATION_ID)) <= 3600


async def test_an_echo_that_beats_its_sends_marker_is_settled_on_a_second_look(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    """TikTok may echo a reply before the delivery has read TikTok's answer and written the
    send's marker: the webhook looks again a moment later before it queues a task."""

    async def delivery_records_its_send() -> None:
        await asyncio.sleep(OWN_ECHO_SECOND_LOOK_SECONDS / 4)
        await redis_client.set(redis_keys.sent_by_tiktok_id("tt-just-sent"), 8)

    body, signature = signed(echo("here you go", message_id="tt-just-sent"), SECRET)
    recording = asyncio.create_task(delivery_records_its_send())
    response = await bot.post("/webhook/tiktok", content=body, headers=signature)
    await recording
    assert response.status_code == 200 and response.json() == {"status": "known"}
    assert await queued(redis_client) == 0
    assert await redis_client.get(redis_keys.event_handled("tt-just-sent")) == b"echo"
    # Not left on record as an echo waiting for a worker.
    assert await redis_client.exists(redis_keys.queued_echoes(CONVERSATION_ID)) == 0


async def test_alternative_header_name_is_accepted(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    body, signature = signed(text_message(), SECRET, header="X-TikTok-Signature")
    assert (await bot.post("/webhook/tiktok", content=body, headers=signature)).status_code == 200


async def test_unknown_event_types_are_acknowledged(bot: httpx.AsyncClient) -> None:
    body, signature = signed({**text_message(), "event": "im_referral_msg"}, SECRET)
    assert (await bot.post("/webhook/tiktok", content=body, headers=signature)).status_code == 200


BadHeaders = Callable[[bytes], dict[str, str]]


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda body: {}, id="missing"),
        pytest.param(lambda body: {"TikTok-Signature": "garbage"}, id="malformed"),
        pytest.param(lambda body: {"TikTok-Signature": "t=abc,s=" + "0" * 64}, id="bad-t"),
        pytest.param(lambda body: signed(body, "wrong").headers, id="wrong-secret"),
        pytest.param(lambda body: headers(body, timestamp=int(time.time()) - 360), id="stale"),
        pytest.param(lambda body: headers(body, timestamp=int(time.time()) + 360), id="future"),
        pytest.param(lambda body: headers(body + b" "), id="body-changed"),
    ],
)
async def test_bad_signatures_get_401_and_nothing_is_queued(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis, make_headers: BadHeaders
) -> None:
    body = encode(text_message())
    response = await bot.post("/webhook/tiktok", content=body, headers=make_headers(body))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    assert await queued(redis_client) == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'{"event": "im_receive_msg"}', id="no-envelope"),
        pytest.param(encode({**text_message(), "content": "{"}), id="content-not-json"),
    ],
)
async def test_signed_garbage_gets_400(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis, body: bytes
) -> None:
    response = await bot.post("/webhook/tiktok", content=body, headers=headers(body))
    assert response.status_code == 400
    assert await queued(redis_client) == 0


async def test_oversized_body_gets_413_declared_or_streamed(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    big = b"x" * 5000
    assert (await bot.post("/webhook/tiktok", content=big, headers=headers(big))).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    streamed = await bot.post("/webhook/tiktok", content=chunks(), headers=headers(b""))
    assert streamed.status_code == 413
    assert await queued(redis_client) == 0


async def test_redis_down_gives_503_then_200_when_back(
    services: TestServices, tmp_path: Path
) -> None:
    broker = EmbeddedRedis(tmp_path / "redis")
    broker.start()
    try:
        settings = settings_for(services, redis_url=broker.url, webhook_enqueue_timeout_seconds=1.0)
        async with running(settings) as client:
            body = encode(text_message())
            ok = await client.post("/webhook/tiktok", content=body, headers=headers(body))
            assert ok.status_code == 200
            broker.stop()
            started = time.monotonic()
            down = await client.post("/webhook/tiktok", content=body, headers=headers(body))
            assert down.status_code == 503
            assert down.json()["error"] == "queue_unavailable"
            assert time.monotonic() - started < 5  # TikTok is not kept waiting
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["failing"] == ["redis"]
            broker.start()
            back = await client.post("/webhook/tiktok", content=body, headers=headers(body))
            assert back.status_code == 200
            probe = aioredis.Redis.from_url(broker.url)
            # Both acknowledged events, the first across the restart; not the refused one.
            assert await probe.llen("events") == 2
            assert await probe.zcard(redis_keys.ACCEPTED_EVENTS_AT) == 2
            await probe.aclose()
    finally:
        broker.stop()


async def test_health_endpoints(bot: httpx.AsyncClient) -> None:
    assert (await bot.get("/healthz")).json() == {"status": "ok"}
    ready = await bot.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "failing": [], "warnings": []}


async def test_readiness_warns_about_tiktok_but_stays_ready(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    # Webhooks must still be accepted: a TikTok problem never takes the API out of service.
    await mark_disconnected(redis_client)
    await redis_client.set(redis_keys.TIKTOK_OTHER_ACCOUNT, "open-id-of-another-account")
    ready = await bot.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["failing"]) == ("ready", [])
    disconnected, mismatch = body["warnings"]
    assert disconnected["code"] == "tiktok_disconnected"
    assert "reconnect" in disconnected["message"] and disconnected["since"]
    assert mismatch["code"] == "tiktok_account_mismatch"
    assert mismatch["seen_open_id"] == "open-id-of-another-account"
    assert mismatch["configured_business_id"] == get_settings().tiktok_business_id
