"""Sending as production integrations show TikTok behaves beyond its docs (tiktok-api.md,
"Send: details"): the capabilities query names the conversation type, a send's answer may
carry the message id in either of two places, 51065 is worth retrying, and 40064 is
retried a few times, then parked with its reason. Through the real client against the
stand-in, and for the retry decisions through the delivery service on top of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import Settings, get_settings
from app.db.models import Conversation, DeadLetter, Message, OutboxEntry, OutboxStatus
from app.db.session import create_session_factory
from app.sandbox.control import SandboxControl
from app.sandbox.server import BackgroundServer, start_tiktok_sandbox
from app.sandbox.stack import free_port
from app.services.messaging.delivery import Delivery, DeliveryService
from app.services.messaging.inbound import InboundPipeline
from app.services.tiktok.api import SendData
from app.services.tiktok.client import SendRateLimiter, TikTokClient
from app.services.tiktok.errors import TikTokTransientError, TransientKind
from tests.conftest import TestServices
from tests.factories import as_queued, text_message
from tests.fakes import FixedMedia, MenuBrain
from tests.services.tiktok.conftest import ClientFactory

CONVERSATION = "u5JhpselBAhoPOlnH0tZ9y07kg=="
PARKED_REASON = (
    "TikTok refused repeatedly (40064): sending too fast, "
    "or the customer's DM settings block the shop"
)


# -- capabilities: conversation_type=SINGLE --------------------------------------------------


async def test_capabilities_query_names_a_single_conversation(
    make_client: ClientFactory, sandbox: SandboxControl
) -> None:
    # The stand-in answers 40002 to a query without conversation_type=SINGLE, and a failed
    # query reads as "no images": a True here means the client sent it.
    assert await make_client().can_send_images(CONVERSATION) is True
    assert [(c.endpoint, c.code) for c in await sandbox.calls()] == [("capabilities", 0)]


# -- the message id in either place ----------------------------------------------------------


@pytest.fixture(scope="module")
def flat_answer_sandbox(services: TestServices) -> Iterator[BackgroundServer]:
    server = start_tiktok_sandbox(get_settings(), webhook_url=None, flat_send_answer=True)
    yield server
    server.stop()


async def test_send_reads_a_top_level_message_id(
    make_client: ClientFactory, tiktok_settings: Settings, flat_answer_sandbox: BackgroundServer
) -> None:
    settings = tiktok_settings.model_copy(update={"tiktok_api_base": flat_answer_sandbox.url})

    message_id = await make_client(settings).send_text(CONVERSATION, "Still available!")

    async with SandboxControl(flat_answer_sandbox.url) as flat:
        [message] = await flat.messages()
    assert message_id == message.message_id


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"message": {"message_id": "nested"}}, "nested"),
        ({"message_id": "flat"}, "flat"),
        ({"message": {"message_id": "nested"}, "message_id": "flat"}, "nested"),
        ({"message": {}, "message_id": "flat"}, "flat"),
    ],
)
def test_send_answer_shapes(data: dict[str, Any], expected: str) -> None:
    assert SendData.model_validate(data).sent_message_id == expected


@pytest.mark.parametrize(
    "data", [{}, {"message": {}}, {"message_id": ""}, {"message": {"message_id": ""}}]
)
def test_send_answer_without_a_message_id_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SendData.model_validate(data)


# -- retry decisions, through the delivery service ---------------------------------------------


@pytest.fixture
async def reply_waiting(
    committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> AsyncIterator[Any]:
    """Builds a delivery service on the real client and records a customer DM whose one
    reply waits in the outbox; answers the service and the outbox row's id."""

    async def build(settings: Settings, client: TikTokClient) -> tuple[DeliveryService, int]:
        sessions = create_session_factory(committed_db)
        queued: list[int] = []

        async def enqueue(ids: Sequence[int]) -> None:
            queued.extend(ids)

        async def notify(conversation: Conversation, reason: str) -> None:
            return None

        pipeline = InboundPipeline(settings, sessions, redis_client, MenuBrain(), enqueue, notify)
        await pipeline.handle(as_queued(text_message("hi")))
        (outbox_id,) = queued
        delivery = DeliveryService(settings, sessions, redis_client, client, FixedMedia())
        return delivery, outbox_id

    yield build


async def test_system_error_is_transient(
    make_client: ClientFactory, sandbox: SandboxControl
) -> None:
    await sandbox.fail_next(1, "code_51065", endpoints=["send"])

    with pytest.raises(TikTokTransientError) as caught:
        await make_client().send_text(CONVERSATION, "hello")

    assert (caught.value.code, caught.value.kind) == (51065, TransientKind.SYSTEM_ERROR)
    assert not caught.value.long_backoff and not caught.value.refused_by_restriction


async def test_system_error_is_retried_with_backoff_until_sent(
    make_client: ClientFactory,
    tiktok_settings: Settings,
    sandbox: SandboxControl,
    reply_waiting: Any,
) -> None:
    settings = tiktok_settings.model_copy(
        update={
            "retry_backoff_base_seconds": 0.01,
            "retry_backoff_cap_seconds": 0.05,
            "max_send_attempts": 6,
            "too_fast_max_attempts": 2,  # 40064's cap does not apply to 51065
        }
    )
    delivery, outbox_id = await reply_waiting(settings, make_client(settings))
    await sandbox.fail_next(4, "code_51065", endpoints=["send"])

    results = [await delivery.deliver(outbox_id) for _ in range(5)]

    assert [r.outcome for r in results] == [Delivery.RETRY] * 4 + [Delivery.SENT]
    assert all(r.retry_in is not None and 0 < r.retry_in <= 0.2 for r in results[:4])
    assert [c.code for c in await sandbox.calls(endpoints=["send"])] == [51065] * 4 + [0]
    assert len(await sandbox.messages()) == 1


async def test_too_fast_is_retried_a_few_times_slowly_then_parked_with_the_reason(
    make_client: ClientFactory,
    tiktok_settings: Settings,
    sandbox: SandboxControl,
    reply_waiting: Any,
    committed_db: AsyncEngine,
) -> None:
    settings = tiktok_settings.model_copy(
        update={
            "retry_backoff_base_seconds": 0.01,
            "too_fast_backoff_seconds": 30.0,
            "max_send_attempts": 6,
            "too_fast_max_attempts": 3,
        }
    )
    delivery, outbox_id = await reply_waiting(settings, make_client(settings))
    # TikTok would refuse this conversation for ever (the customer's DM rules).
    await sandbox.fail_next(100, "code_40064", endpoints=["send"])

    results = [await delivery.deliver(outbox_id) for _ in range(4)]

    assert [r.outcome for r in results] == [
        Delivery.RETRY,
        Delivery.RETRY,
        Delivery.FAILED,
        Delivery.SKIPPED,  # parked: nothing brings it back but a person
    ]
    # The long backoff it always had: never sooner than half of TOO_FAST_BACKOFF_SECONDS.
    assert all(r.retry_in is not None and r.retry_in >= 15.0 for r in results[:2])
    assert [c.code for c in await sandbox.calls(endpoints=["send"])] == [40064] * 3
    assert await sandbox.messages() == []
    async with AsyncSession(committed_db) as session:
        (letter,) = (await session.scalars(select(DeadLetter))).all()
        entry = await session.get(OutboxEntry, outbox_id)
        assert entry is not None
        message = await session.get(Message, entry.message_id)
    assert (letter.kind, letter.attempts, letter.conversation_id) == ("send", 3, "conv-1")
    assert letter.error.startswith(PARKED_REASON)
    assert "code=40064" in letter.error  # TikTok's answer, request id included, for a person
    assert entry.status is OutboxStatus.FAILED and entry.attempts == 3
    assert message is not None and (message.status_reason or "").startswith(PARKED_REASON)


async def test_too_fast_never_outlives_max_send_attempts(
    make_client: ClientFactory,
    tiktok_settings: Settings,
    sandbox: SandboxControl,
    reply_waiting: Any,
) -> None:
    settings = tiktok_settings.model_copy(
        update={"max_send_attempts": 2, "too_fast_max_attempts": 5}
    )
    delivery, outbox_id = await reply_waiting(settings, make_client(settings))
    await sandbox.fail_next(100, "code_40064", endpoints=["send"])

    results = [await delivery.deliver(outbox_id) for _ in range(3)]

    assert [r.outcome for r in results] == [Delivery.RETRY, Delivery.FAILED, Delivery.SKIPPED]
    assert len(await sandbox.calls(endpoints=["send"])) == 2


# -- our own Redis failing between the claim and the call -----------------------------------


async def test_redis_failing_before_the_call_puts_the_reply_back_in_line(
    make_client: ClientFactory,
    tiktok_settings: Settings,
    sandbox: SandboxControl,
    reply_waiting: Any,
    committed_db: AsyncEngine,
) -> None:
    """The claim committed, then the shared send rate could not be read: nothing went to
    TikTok, so the row is `pending` again (not `sending`, which would wait out the resend
    window as if the reply might be in the customer's inbox) and goes out once."""
    settings = tiktok_settings.model_copy(
        update={"retry_backoff_base_seconds": 0.01, "retry_backoff_cap_seconds": 0.05}
    )
    nobody = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    try:
        unreachable = make_client(settings, rate_limiter=SendRateLimiter(nobody, 10))
        delivery, outbox_id = await reply_waiting(settings, unreachable)
        failed = await delivery.deliver(outbox_id)
    finally:
        await nobody.aclose()

    assert failed.outcome is Delivery.RETRY
    async with AsyncSession(committed_db) as session:
        entry = await session.get(OutboxEntry, outbox_id)
        assert entry is not None and entry.status is OutboxStatus.PENDING
        assert "Redis failed before the call" in (entry.last_error or "")
    assert await sandbox.calls(endpoints=["send"]) == []

    working = DeliveryService(
        settings, delivery.session_factory, delivery.redis, make_client(settings), FixedMedia()
    )
    assert (await working.deliver(outbox_id)).outcome is Delivery.SENT
    assert len(await sandbox.messages()) == 1
