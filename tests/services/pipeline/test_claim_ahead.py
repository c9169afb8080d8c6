"""A turn that claims its first reply in its own transaction (`DeliversNow`, as the worker
does): one transaction fewer per DM, and the same guarantees as a claim of its own."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.core.clock import utc_now
from app.db.models import Conversation, Message, OutboxEntry
from app.db.repositories.conversations import OutboxRepository
from app.db.session import create_session_factory, transaction
from app.services import replies
from app.services.messaging.delivery import (
    Claim,
    ClaimOutcome,
    Delivery,
    DeliveryResult,
    DeliveryService,
)
from app.services.messaging.inbound import InboundPipeline, Outcome
from app.services.messaging.outbound import queue_replies
from app.services.turns import Reply
from tests.factories import CUSTOMER_ID, as_queued, text_message
from tests.services.pipeline.conftest import Harness

MakeHarness = Callable[..., Harness]


@dataclass
class SendsRightAway:
    """The worker's way (`app.worker.tasks`), without Celery: the turn's replies are
    delivered as soon as it commits, the first as claimed ahead."""

    delivery: DeliveryService
    results: list[DeliveryResult] = field(default_factory=list)
    given_back: list[ClaimOutcome] = field(default_factory=list)

    async def claim_ahead(self, session: AsyncSession, outbox_id: int) -> ClaimOutcome:
        return await self.delivery.claim_ahead(session, outbox_id)

    async def give_back(self, claimed: ClaimOutcome) -> None:
        self.given_back.append(claimed)
        await self.delivery.give_back(claimed)

    async def deliver(self, outbox_ids: Sequence[int], first: ClaimOutcome | None) -> None:
        for index, outbox_id in enumerate(outbox_ids):
            claimed = first if index == 0 else None
            self.results.append(await self.delivery.deliver(outbox_id, claimed))


def sending_right_away(harness: Harness, sends: Any) -> InboundPipeline:
    return dataclasses.replace(harness.pipeline, delivers_now=sends)


async def quota_used(redis: aioredis.Redis) -> int:
    return int(await redis.get(redis_keys.quota(CUSTOMER_ID)) or 0)


async def only(engine: AsyncEngine, model: type[Any]) -> Any:
    async with AsyncSession(engine) as session:
        (row,) = (await session.scalars(select(model))).all()
        return row


async def test_the_first_reply_is_claimed_in_the_turns_transaction_and_sent_after_it(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    sends = SendsRightAway(harness.delivery)
    pipeline = sending_right_away(harness, sends)
    await pipeline.account.business_id()  # cached in Redis from now on, as in a running shop
    begun: list[str] = []

    def on_begin(connection: Any) -> None:
        begun.append(connection.get_execution_options().get("isolation_level", "BEGIN"))

    event.listen(committed_db.sync_engine, "begin", on_begin)
    try:
        for n in range(2):  # a first DM, then the same customer again
            begun.clear()
            assert await pipeline.handle(as_queued(text_message("hi"))) is Outcome.HANDLED
            # The turn's transaction (the claim in it), then the send's record: one
            # statement that commits by itself, with no BEGIN and COMMIT around it.
            assert begun == ["BEGIN", "AUTOCOMMIT"]
            assert [r.outcome for r in sends.results] == [Delivery.SENT] * (n + 1)
            assert [sent.text for sent in harness.sender.sent] == [replies.MENU] * (n + 1)
            # The window's quota counts the reply once, in Redis and in the mirror, though
            # the same transaction also reset it for the customer's new message.
            assert await quota_used(redis_client) == 1
            assert (await only(committed_db, Conversation)).replies_in_window == 1
    finally:
        event.remove(committed_db.sync_engine, "begin", on_begin)
    assert harness.queued == []  # nothing went through the queue
    assert sends.given_back == []
    async with AsyncSession(committed_db) as session:
        statuses = (await session.scalars(select(OutboxEntry.status))).all()
    assert statuses == ["sent", "sent"]


async def test_a_turn_rolled_back_after_its_claim_gives_the_slot_back_and_sends_nothing(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()

    class CommitFails(SendsRightAway):
        async def claim_ahead(self, session: AsyncSession, outbox_id: int) -> ClaimOutcome:
            def refuse(_: object) -> None:
                raise ConnectionResetError("the database went away at the commit")

            event.listen(session.sync_session, "before_commit", refuse)
            return await super().claim_ahead(session, outbox_id)

    failing = CommitFails(harness.delivery)
    body = as_queued(text_message("hi", message_id="retried-1"))
    with pytest.raises(ConnectionResetError):
        await sending_right_away(harness, failing).handle(body)
    assert [type(claimed) for claimed in failing.given_back] == [Claim]
    assert await quota_used(redis_client) == 0
    assert harness.sender.sent == []
    async with AsyncSession(committed_db) as session:
        assert (await session.scalars(select(OutboxEntry))).all() == []
        assert (await session.scalars(select(Message))).all() == []

    # The task's retry handles the event again: answered once, one slot spent.
    sends = SendsRightAway(harness.delivery)
    assert await sending_right_away(harness, sends).handle(body) is Outcome.HANDLED
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]
    assert await quota_used(redis_client) == 1


async def test_a_worker_dead_between_the_turns_commit_and_the_call_is_settled_by_the_sweeper(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness(resend_unconfirmed_after_seconds=0)

    class DiesAfterCommit(SendsRightAway):
        async def deliver(self, outbox_ids: Sequence[int], first: ClaimOutcome | None) -> None:
            raise SystemExit("killed")  # the process is gone: nothing after the commit ran

    with pytest.raises(SystemExit):
        await sending_right_away(harness, DiesAfterCommit(harness.delivery)).handle(
            as_queued(text_message("hi"))
        )
    entry = await only(committed_db, OutboxEntry)
    assert (entry.status, entry.attempts) == ("sending", 1)
    assert harness.sender.sent == []

    swept = await harness.delivery.settle_stuck_sends(timedelta(seconds=0))
    assert (swept.resent, swept.unknown) == (1, 0)
    assert (await harness.delivery.deliver(entry.id)).outcome is Delivery.SENT
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]


async def test_a_claim_writes_the_conversations_pending_changes_first_and_tells_it_the_count(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi"))  # a customer, a conversation, a window
    await harness.deliver_queued()  # its reply is out: none earlier holds the next one back
    sessions = create_session_factory(committed_db)
    async with transaction(sessions) as session:
        conversation = (await session.scalars(select(Conversation))).one()
        conversation.replies_in_window = 3  # changed in this transaction, not yet written
        (outbox_id,) = await queue_replies(
            session, conversation, [Reply("more")], max_text_chars=1000
        )
        claimable = await OutboxRepository(session).claim(outbox_id, utc_now())
        assert claimable is not None and claimable.claimed
        assert claimable.replies_in_window == 3  # the pending change was written first
        assert conversation.replies_in_window == 4  # and the loaded row knows of the slot
    assert (await only(committed_db, Conversation)).replies_in_window == 4
