"""`authorization.removed` (../shared/spec/tiktok-api.md, "One webhook URL, many accounts"):
the shop disconnected the app, so every send would fail. Staff are told, replies wait in the
outbox without spending attempts, and go out once someone reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.db.models import OutboxEntry, OutboxStatus
from app.services import replies
from app.services.messaging.delivery import Delivery
from app.services.messaging.inbound import Outcome
from app.services.tiktok.connection import (
    DISCONNECTED_NOTICE,
    disconnected_since,
    mark_connected,
)
from app.services.tiktok.tokens import TikTokNotConnected
from app.services.tiktok.webhook import EventType
from app.worker import runtime as runtime_module
from app.worker import tasks
from tests.conftest import Clock, TestServices
from tests.factories import event_of, for_account, text_message
from tests.services.pipeline.conftest import Harness

MakeHarness = Callable[..., Harness]


async def outbox_row(engine: AsyncEngine, outbox_id: int) -> OutboxEntry:
    async with AsyncSession(engine) as session:
        return await session.get_one(OutboxEntry, outbox_id)


async def test_a_removed_authorisation_marks_tiktok_disconnected_and_tells_staff_once(
    make_harness: MakeHarness, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    body = event_of(EventType.AUTHORIZATION_REMOVED, {})
    assert await harness.receive(body) is Outcome.IGNORED
    since = await disconnected_since(redis_client)
    assert since is not None
    assert harness.handoffs == [DISCONNECTED_NOTICE]
    assert "reconnect" in DISCONNECTED_NOTICE
    # No expiry: only a reconnect clears it.
    assert await redis_client.ttl(redis_keys.TIKTOK_DISCONNECTED) == -1
    # TikTok delivers again: still disconnected since the first time, staff told once.
    assert await harness.receive(body) is Outcome.IGNORED
    assert await disconnected_since(redis_client) == since
    assert harness.handoffs == [DISCONNECTED_NOTICE]


async def test_a_removed_authorisation_of_another_account_changes_nothing(
    make_harness: MakeHarness, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    body = for_account(event_of(EventType.AUTHORIZATION_REMOVED, {}))
    assert await harness.receive(body) is Outcome.OTHER_ACCOUNT
    assert await disconnected_since(redis_client) is None
    assert harness.handoffs == []
    await harness.receive(text_message("hi"))
    assert [r.outcome for r in await harness.deliver_queued()] == [Delivery.SENT]


async def test_replies_wait_while_disconnected_and_go_out_once_reconnected(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    await harness.receive(event_of(EventType.AUTHORIZATION_REMOVED, {}))
    assert await harness.receive(text_message("hi")) is Outcome.HANDLED
    (outbox_id,) = harness.queued
    for _ in range(3):  # the first task, then the sweeper's: none calls TikTok
        assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.WAITING
    assert harness.sender.sent == []
    waiting = await outbox_row(committed_db, outbox_id)
    assert (waiting.status, waiting.attempts) == (OutboxStatus.PENDING, 0)

    assert await mark_connected(redis_client) is True
    assert await disconnected_since(redis_client) is None
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SENT
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]
    sent = await outbox_row(committed_db, outbox_id)
    assert (sent.status, sent.attempts) == (OutboxStatus.SENT, 1)
    assert await mark_connected(redis_client) is False


@pytest.fixture
def sweep(services: TestServices, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The outbox sweep as beat runs it, on the test database; what it queues is collected."""
    queued: list[int] = []

    def collect(outbox_ids: Sequence[int], countdown: float | None = None) -> None:
        queued.extend(outbox_ids)

    monkeypatch.setattr(tasks, "enqueue_deliveries", collect)
    runtime_module.shutdown_runtime()
    yield queued
    runtime_module.shutdown_runtime()


async def test_the_sweeper_leaves_waiting_replies_until_reconnected(
    make_harness: MakeHarness, redis_client: aioredis.Redis, clock: Clock, sweep: list[int]
) -> None:
    harness = make_harness()
    await harness.receive(event_of(EventType.AUTHORIZATION_REMOVED, {}))
    await harness.receive(text_message("hi"))
    (outbox_id,) = harness.queued
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.WAITING
    clock.advance(timedelta(minutes=1))
    swept = await asyncio.to_thread(tasks.sweep_outbox.apply)
    assert swept.successful(), swept.traceback
    assert sweep == []
    await mark_connected(redis_client)
    assert (await asyncio.to_thread(tasks.sweep_outbox.apply)).get()["requeued"] == 1
    assert sweep == [outbox_id]


async def test_a_shop_never_connected_keeps_its_replies_waiting(
    make_harness: MakeHarness, redis_client: aioredis.Redis, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi"))
    (first,) = harness.queued
    harness.sender.fail_next(TikTokNotConnected())
    assert [r.outcome for r in await harness.deliver_queued()] == [Delivery.WAITING]
    row = await outbox_row(committed_db, first)
    assert row.status is OutboxStatus.PENDING and row.last_error is not None
    assert "not connected" in row.last_error
    assert await disconnected_since(redis_client) is not None
    # The next reply is not even tried: no call until someone connects the shop.
    await harness.receive(text_message("is PT-0001 still available?", message_id="m2"))
    assert all(r.outcome is Delivery.WAITING for r in await harness.deliver_queued())
    assert harness.sender.sent == []
    await mark_connected(redis_client)
    await harness.delivery.deliver(first)
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]
