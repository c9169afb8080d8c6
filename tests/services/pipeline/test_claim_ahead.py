"""A turn that claims its first reply in its own transaction, by the statement that queues it
(`DeliversNow`, as the worker does): one transaction and one statement fewer per DM, and the
same guarantees as a claim of its own."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.core.clock import utc_now
from app.db.models import Conversation, Message, OutboxEntry
from app.db.repositories.conversations import Claimable, OutboxRepository, SettledTurn
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
from app.services.tiktok.connection import mark_disconnected
from app.services.turns import Reply, TurnResult
from tests.factories import CUSTOMER_ID, as_queued, text_message
from tests.services.pipeline.conftest import Harness
from tests.statements import statements_sent

MakeHarness = Callable[..., Harness]


@dataclass
class SendsRightAway:
    """The worker's way (`app.worker.tasks`), without Celery: the turn's replies are
    delivered as soon as it commits, the first as claimed ahead."""

    delivery: DeliveryService
    results: list[DeliveryResult] = field(default_factory=list)
    given_back: list[ClaimOutcome] = field(default_factory=list)

    def claiming_at(self, disconnected: bool) -> datetime | None:
        return self.delivery.claiming_at(disconnected)

    async def claimed_ahead(
        self, session: AsyncSession, claimable: Claimable, claimed_at: datetime
    ) -> ClaimOutcome:
        return await self.delivery.claimed_ahead(session, claimable, claimed_at)

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
        async def claimed_ahead(
            self, session: AsyncSession, claimable: Claimable, claimed_at: datetime
        ) -> ClaimOutcome:
            def refuse(_: object) -> None:
                raise ConnectionResetError("the database went away at the commit")

            event.listen(session.sync_session, "before_commit", refuse)
            return await super().claimed_ahead(session, claimable, claimed_at)

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


async def test_the_claim_rides_in_the_statement_that_queues_the_reply(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    sends = SendsRightAway(harness.delivery)
    pipeline = sending_right_away(harness, sends)
    await pipeline.handle(as_queued(text_message("hi", message_id="first")))
    with statements_sent(committed_db) as seen:
        assert await pipeline.handle(as_queued(text_message("hi", message_id="again")))
    # Lock; record; queue the reply with the turn settled and the reply claimed; after the
    # commit, the send recorded. No claim of its own (`WITH claimable`).
    assert [statement.split()[0:3] for statement in seen] == [
        ["WITH", "existing", "AS"],
        ["WITH", "new_message", "AS"],
        ["WITH", "settled", "AS"],
        ["WITH", "sent", "AS"],
    ]
    assert "claim_target" in seen[2]
    assert [r.outcome for r in sends.results] == [Delivery.SENT, Delivery.SENT]
    entry = (await only_all(committed_db, OutboxEntry))[-1]
    assert (entry.status, entry.attempts) == ("sent", 1)


async def only_all(engine: AsyncEngine, model: type[Any]) -> list[Any]:
    async with AsyncSession(engine) as session:
        return list((await session.scalars(select(model).order_by(model.id))).all())


async def test_a_reply_behind_an_earlier_one_still_to_go_is_queued_unclaimed(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi", message_id="first"))  # its reply waits queued
    assert len(harness.queued) == 1
    sends = SendsRightAway(harness.delivery)
    await sending_right_away(harness, sends).handle(as_queued(text_message("hi again")))
    # Never ahead of the earlier reply: left pending, no attempt, no slot, told to wait.
    assert [r.outcome for r in sends.results] == [Delivery.DEFERRED]
    statuses = [(e.status, e.attempts) for e in await only_all(committed_db, OutboxEntry)]
    assert statuses == [("pending", 0), ("pending", 0)]
    assert (await only(committed_db, Conversation)).replies_in_window == 0
    assert await quota_used(redis_client) == 0
    assert harness.sender.sent == []
    # Once the earlier one is out, the later one goes.
    await harness.deliver_queued()
    later = (await only_all(committed_db, OutboxEntry))[-1]
    assert (await harness.delivery.deliver(later.id)).outcome is Delivery.SENT
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU, replies.MENU]


class RememberingBrain:
    """Changes the conversation's context, as the shop's brain remembers the piece talked
    about."""

    async def respond(self, session, conversation, customer, turn):  # type: ignore[no-untyped-def]
        conversation.context = {**conversation.context, "last": turn[-1].text}
        return TurnResult("other", "local", replies=[Reply("noted")])


async def test_the_context_the_turn_changed_and_the_slot_it_claimed_both_land(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    # Both are writes of the conversation's row in the one statement: PostgreSQL would keep
    # only one of two UPDATEs of the same row there.
    harness = make_harness(brain=RememberingBrain())
    sends = SendsRightAway(harness.delivery)
    await sending_right_away(harness, sends).handle(as_queued(text_message("the fleece")))
    assert [r.outcome for r in sends.results] == [Delivery.SENT]
    conversation = await only(committed_db, Conversation)
    assert conversation.context == {"last": "the fleece"}
    assert conversation.replies_in_window == 1
    assert await quota_used(redis_client) == 1


async def test_while_tiktok_is_disconnected_the_reply_is_queued_unclaimed(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    await mark_disconnected(redis_client)
    sends = SendsRightAway(harness.delivery)
    await sending_right_away(harness, sends).handle(as_queued(text_message("hi")))
    assert [r.outcome for r in sends.results] == [Delivery.WAITING]
    entry = await only(committed_db, OutboxEntry)
    assert (entry.status, entry.attempts) == ("pending", 0)
    assert (await only(committed_db, Conversation)).replies_in_window == 0
    assert await quota_used(redis_client) == 0


async def test_queue_claiming_writes_the_conversations_pending_count_first_and_tells_it(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi"))  # a customer, a conversation, a window
    await harness.deliver_queued()
    sessions = create_session_factory(committed_db)
    async with transaction(sessions) as session:
        conversation = (await session.scalars(select(Conversation))).one()
        conversation.replies_in_window = 3  # changed in this transaction, not yet written
        turn = (await session.scalars(select(Message).where(Message.direction == "inbound"))).all()
        claimable = await OutboxRepository(session).queue_claiming(
            conversation.id,
            "text",
            "more",
            {},
            "bot",
            SettledTurn.of_turn(conversation, list(turn), intent="other"),
            utc_now(),
        )
        assert claimable.claimed and claimable.earlier_waiting == 0
        assert claimable.replies_in_window == 3  # the pending change was written first
        assert conversation.replies_in_window == 4  # and the loaded row knows of the slot
        assert (claimable.message_type, claimable.text, claimable.attempts) == ("text", "more", 0)
    assert (await only(committed_db, Conversation)).replies_in_window == 4
    entry = (await only_all(committed_db, OutboxEntry))[-1]
    assert (entry.status, entry.attempts, entry.id) == ("sending", 1, claimable.outbox_id)
    assert entry.claimed_at is not None
