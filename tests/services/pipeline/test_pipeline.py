from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.db.models import (
    Conversation,
    Customer,
    DeadLetter,
    Direction,
    Handoff,
    Message,
    OutboxEntry,
)
from app.db.repositories.conversations import ConversationRepository, MessageRepository
from app.services import replies
from app.services.messaging.delivery import Claim, Delivery, _sent_marker
from app.services.messaging.inbound import Outcome
from app.services.turns import Reply, TurnResult
from tests.factories import echo, image_message, read_receipt, text_message
from tests.fakes import bad_parameters, server_error, too_fast
from tests.services.pipeline.conftest import Harness

MakeHarness = Callable[..., Harness]


async def rows(engine: AsyncEngine, model: type[object], *where: object) -> list[object]:
    async with AsyncSession(engine) as session:
        return list((await session.scalars(select(model).where(*where))).all())  # type: ignore[call-overload]


async def count(engine: AsyncEngine, model: type[object]) -> int:
    async with AsyncSession(engine) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


async def test_one_message_gets_one_reply(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    assert await harness.receive(text_message("hi")) is Outcome.HANDLED
    results = await harness.deliver_queued()
    assert [result.outcome for result in results] == [Delivery.SENT]
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]
    inbound = await rows(committed_db, Message, Message.direction == "inbound")
    assert [(m.status, m.intent) for m in inbound] == [("processed", "menu")]  # type: ignore[attr-defined]


async def test_same_event_ten_times_at_once_is_answered_once(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    body = text_message("hi", message_id="dup-1")
    outcomes = await asyncio.gather(*(harness.receive(body) for _ in range(10)))
    assert outcomes.count(Outcome.HANDLED) == 1
    assert outcomes.count(Outcome.DUPLICATE) == 9
    await harness.deliver_queued()
    assert len(harness.sender.sent) == 1
    assert await count(committed_db, OutboxEntry) == 1
    # hours later (TikTok retries for 72 h) it is still a duplicate
    assert await harness.receive(body) is Outcome.DUPLICATE


async def test_duplicate_is_caught_by_the_database_when_redis_forgot(
    make_harness: MakeHarness, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    body = text_message("hi", message_id="dup-2")
    await harness.receive(body)
    await redis_client.flushdb()
    assert await harness.receive(body) is Outcome.DUPLICATE
    await harness.deliver_queued()
    assert len(harness.sender.sent) == 1


class RecordingBrain:
    def __init__(self) -> None:
        self.turns: list[list[str]] = []

    async def respond(self, session, conversation, customer, turn):  # type: ignore[no-untyped-def]
        self.turns.append([message.text or "" for message in turn])
        return TurnResult("other", "local", replies=[Reply(" + ".join(self.turns[-1]))])


async def test_messages_are_handled_in_customer_order_even_if_recorded_out_of_order(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    brain = RecordingBrain()
    harness = make_harness(brain=brain, burst_gap_seconds=2.0)
    now = datetime.now(UTC)
    # Recorded (by workers that then died, say) in another order than they were written.
    async with AsyncSession(committed_db) as session, session.begin():
        conversation, _ = await ConversationRepository(session).ensure_locked(
            "conv-1", "cust-1", None
        )
        messages = MessageRepository(session)
        for event_id, text, seconds_ago in [
            ("b", "second", 10),
            ("d", "burst two", 0.5),
            ("a", "first", 20),
            ("c", "burst one", 1),
        ]:
            await messages.record_event(
                Direction.INBOUND,
                {
                    "conversation_id": conversation.id,
                    "event_id": event_id,
                    "message_type": "text",
                    "text": text,
                    "payload": {},
                    "entities": {},
                    "status": "received",
                    "sent_at": now - timedelta(seconds=seconds_ago),
                },
            )
        conversation_id = conversation.id
    await harness.pipeline.drain(conversation_id)
    assert brain.turns == [["first"], ["second"], ["burst one", "burst two"]]
    assert len(harness.queued) == 3  # a burst is answered as one turn


async def test_a_new_message_answers_earlier_recorded_ones_first(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    brain = RecordingBrain()
    harness = make_harness(brain=brain, burst_gap_seconds=0)
    now = int(time.time() * 1000)
    async with AsyncSession(committed_db) as session, session.begin():
        conversation, _ = await ConversationRepository(session).ensure_locked(
            "conv-1", "cust-1", None
        )
        await MessageRepository(session).record_event(
            Direction.INBOUND,
            {
                "conversation_id": conversation.id,
                "event_id": "early",
                "message_type": "text",
                "text": "early",
                "payload": {},
                "entities": {},
                "status": "received",
                "sent_at": datetime.fromtimestamp((now - 5000) / 1000, UTC),
            },
        )
    await harness.receive(text_message("late", message_id="late", timestamp_ms=now))
    assert brain.turns == [["early"], ["late"]]


async def test_late_delivery_outside_the_window_is_recorded_and_not_answered(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    old = int((time.time() - 49 * 3600) * 1000)
    assert await harness.receive(text_message("hi", timestamp_ms=old)) is Outcome.HANDLED
    assert harness.queued == []
    (message,) = await rows(committed_db, Message)
    assert message.status == "processed"  # type: ignore[attr-defined]
    assert "window closed" in (message.status_reason or "")  # type: ignore[attr-defined]


async def test_reply_after_window_closed_is_recorded_not_sent(
    make_harness: MakeHarness, redis_client: aioredis.Redis, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi"))
    await redis_client.delete(redis_keys.window("cust-1"))
    async with AsyncSession(committed_db) as session:
        conversation = await session.scalar(select(Conversation))
        assert conversation is not None
        conversation.window_expires_at = datetime.now(UTC) - timedelta(minutes=1)
        await session.commit()
    assert [r.outcome for r in await harness.deliver_queued()] == [Delivery.NOT_SENT]
    assert harness.sender.sent == []
    (reply,) = await rows(committed_db, Message, Message.direction == "outbound")
    assert reply.status == "not_sent" and "window closed" in reply.status_reason  # type: ignore[attr-defined]


async def test_window_survives_redis_losing_its_keys(
    make_harness: MakeHarness, redis_client: aioredis.Redis, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi"))
    async with AsyncSession(committed_db) as session:
        # As if four replies had gone out in this window already.
        await session.execute(update(Conversation).values(replies_in_window=4))
        await session.commit()
    await redis_client.flushdb()
    assert [r.outcome for r in await harness.deliver_queued()] == [Delivery.SENT]
    # Restored from the mirror and counted once more; the mirror agrees.
    assert int(await redis_client.get(redis_keys.quota("cust-1")) or 0) == 5
    (conversation,) = await rows(committed_db, Conversation)
    assert conversation.replies_in_window == 5  # type: ignore[attr-defined]


async def test_eleventh_reply_in_a_window_is_not_sent(
    make_harness: MakeHarness, redis_client: aioredis.Redis, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi"))
    await redis_client.set(redis_keys.quota("cust-1"), 10, keepttl=True)
    assert [r.outcome for r in await harness.deliver_queued()] == [Delivery.NOT_SENT]
    (reply,) = await rows(committed_db, Message, Message.direction == "outbound")
    assert "quota" in reply.status_reason  # type: ignore[attr-defined]
    assert int(await redis_client.get(redis_keys.quota("cust-1")) or 0) == 10
    # The slot the claim counted in the mirror is given back with the refusal.
    (conversation,) = await rows(committed_db, Conversation)
    assert conversation.replies_in_window == 0  # type: ignore[attr-defined]


async def test_a_new_customer_message_resets_the_quota(
    make_harness: MakeHarness, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi", message_id="q1"))
    await harness.deliver_queued()
    await redis_client.set(redis_keys.quota("cust-1"), 10, keepttl=True)
    await harness.receive(text_message("hello again", message_id="q2"))
    assert [r.outcome for r in await harness.deliver_queued()] == [Delivery.SENT]


async def test_last_quota_slot_is_kept_for_the_handoff_notice(
    make_harness: MakeHarness, redis_client: aioredis.Redis, committed_db: AsyncEngine
) -> None:
    class CardBrain(RecordingBrain):
        async def respond(self, session, conversation, customer, turn):  # type: ignore[no-untyped-def]
            # staff and bot notices used most of this window's quota meanwhile
            await redis_client.set(redis_keys.quota("cust-1"), 8, keepttl=True)
            card = [Reply("PT-0001 is available"), Reply(image_url="https://x/1.jpg")]
            return TurnResult("availability", "local", replies=card)

    harness = make_harness(brain=CardBrain())
    await harness.receive(text_message("is PT-0001 available"))
    await harness.deliver_queued()
    assert [sent.text for sent in harness.sender.sent] == [replies.QUOTA_HANDOFF]
    assert harness.handoffs == ["reply quota nearly spent"]
    (conversation,) = await rows(committed_db, Conversation)
    assert conversation.mode == "human"  # type: ignore[attr-defined]
    (handoff,) = await rows(committed_db, Handoff)
    assert handoff.reason == "reply quota nearly spent"  # type: ignore[attr-defined]
    assert handoff.started_at == conversation.human_since  # type: ignore[attr-defined]


async def test_transient_failures_back_off_then_deliver(make_harness: MakeHarness) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi"))
    harness.sender.fail_next(server_error(), server_error(), server_error())
    (outbox_id,) = harness.queued
    outcomes = [await harness.delivery.deliver(outbox_id) for _ in range(4)]
    assert [o.outcome for o in outcomes] == [Delivery.RETRY] * 3 + [Delivery.SENT]
    assert all(o.retry_in is not None and o.retry_in > 0 for o in outcomes[:3])
    assert len(harness.sender.sent) == 1


async def test_too_fast_backs_off_longer(make_harness: MakeHarness) -> None:
    # Enough 40064 attempts allowed to watch the backoff grow (the cap is tested elsewhere).
    harness = make_harness(
        retry_backoff_base_seconds=0.01, too_fast_backoff_seconds=30, too_fast_max_attempts=6
    )
    await harness.receive(text_message("hi"))
    retry_ins = []
    for _ in range(5):  # one less than max_send_attempts
        harness.sender.fail_next(too_fast())
        result = await harness.delivery.deliver(harness.queued[0])
        assert result.outcome is Delivery.RETRY and result.retry_in is not None
        retry_ins.append(result.retry_in)
    assert max(retry_ins) > 1.0  # with the 0.01 s base a plain 5xx never waits that long


async def test_permanent_failure_is_dead_lettered(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi"))
    harness.sender.fail_next(bad_parameters())
    assert [r.outcome for r in await harness.deliver_queued()] == [Delivery.FAILED]
    (letter,) = await rows(committed_db, DeadLetter)
    assert letter.kind == "send" and "40002" in letter.error  # type: ignore[attr-defined]


async def test_attempts_are_bounded(make_harness: MakeHarness, committed_db: AsyncEngine) -> None:
    harness = make_harness(max_send_attempts=3)
    await harness.receive(text_message("hi"))
    harness.sender.fail_next(*(server_error() for _ in range(5)))
    outcomes = [(await harness.delivery.deliver(harness.queued[0])).outcome for _ in range(4)]
    assert outcomes == [Delivery.RETRY, Delivery.RETRY, Delivery.FAILED, Delivery.SKIPPED]
    assert await count(committed_db, DeadLetter) == 1


async def test_handoff_silences_the_bot_and_notifies_staff(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    await harness.receive(text_message("3", message_id="h1"))
    await harness.deliver_queued()
    assert [sent.text for sent in harness.sender.sent] == [replies.HANDOFF_CONFIRM]
    assert harness.handoffs == ["customer asked for a person"]
    await harness.receive(text_message("hello? anyone?", message_id="h2"))
    assert harness.queued == []
    # Recorded once, for the staff's insights (how long until a person replied).
    (handoff,) = await rows(committed_db, Handoff)
    (conversation,) = await rows(committed_db, Conversation)
    assert handoff.conversation_id == conversation.id  # type: ignore[attr-defined]
    assert handoff.reason == "customer asked for a person"  # type: ignore[attr-defined]


async def test_staff_echo_from_the_app_takes_over(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi", message_id="e1"))
    await harness.deliver_queued()
    # the echo of our own reply changes nothing
    assert await harness.receive(echo(replies.MENU, message_id="tt-1")) is Outcome.ECHO
    (conversation,) = await rows(committed_db, Conversation)
    assert conversation.mode == "bot"  # type: ignore[attr-defined]
    # staff typed in the TikTok app
    assert await harness.receive(echo("hey it's Mia!", message_id="staff-1")) is Outcome.ECHO
    (conversation,) = await rows(committed_db, Conversation)
    assert conversation.mode == "human"  # type: ignore[attr-defined]
    await harness.receive(text_message("oh hi Mia", message_id="e2"))
    assert harness.queued == []
    staff = await rows(committed_db, Message, Message.sent_by == "staff_app")
    assert [m.text for m in staff] == ["hey it's Mia!"]  # type: ignore[attr-defined]
    assert await count(committed_db, Handoff) == 0  # a person taking over is not handed one


async def test_with_resend_off_an_interrupted_send_is_parked_and_its_echo_confirms_it(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness(resend_unconfirmed_after_seconds=None)
    await harness.receive(text_message("hi"))
    (outbox_id,) = harness.queued
    claim = await harness.delivery._claim(outbox_id)  # the worker dies after this point
    assert not isinstance(claim, type(None))
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SKIPPED
    settled = await harness.delivery.settle_stuck_sends(timedelta(seconds=0))
    assert (settled.unknown, settled.resent, settled.confirmed) == (1, 0, 0)
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SKIPPED
    assert harness.sender.sent == []
    (letter,) = await rows(committed_db, DeadLetter)
    assert letter.kind == "send_unknown"  # type: ignore[attr-defined]
    await harness.receive(echo(replies.MENU, message_id="tt-late"))
    (entry,) = await rows(committed_db, OutboxEntry)
    assert entry.status == "sent"  # type: ignore[attr-defined]


async def test_send_that_never_reached_tiktok_goes_out_once_after_the_echo_wait(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness(resend_unconfirmed_after_seconds=30)
    await harness.receive(text_message("hi"))
    (outbox_id,) = harness.queued
    await harness.delivery._claim(outbox_id)  # the worker dies before the call
    early = await harness.delivery.settle_stuck_sends(timedelta(seconds=0))
    assert (early.resent, early.unknown) == (0, 0)  # the echo may still be on its way
    (entry,) = await rows(committed_db, OutboxEntry)
    assert entry.status == "sending"  # type: ignore[attr-defined]
    async with AsyncSession(committed_db) as session:
        await session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == outbox_id)
            .values(claimed_at=datetime.now(UTC) - timedelta(seconds=31))
        )
        await session.commit()
    late = await harness.delivery.settle_stuck_sends(timedelta(seconds=0))
    assert (late.resent, late.unknown, late.confirmed) == (1, 0, 0)
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SENT
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SKIPPED
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]
    assert await rows(committed_db, DeadLetter) == []


async def test_send_tiktok_accepted_but_never_recorded_is_settled_as_sent(
    make_harness: MakeHarness, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    harness = make_harness(resend_unconfirmed_after_seconds=0)
    await harness.receive(text_message("hi"))
    (outbox_id,) = harness.queued
    claim = await harness.delivery._claim(outbox_id)
    assert isinstance(claim, Claim)
    # A marker left by an earlier row with the same id (a database reset beside a Redis that
    # kept its keys) proves nothing about this claim.
    await redis_client.set(redis_keys.outbox_sent(outbox_id), "1700000000.000000 tt-stale")
    stale = await harness.delivery.settle_stuck_sends(timedelta(seconds=0))
    assert (stale.confirmed, stale.resent) == (0, 1)
    (entry,) = await rows(committed_db, OutboxEntry)
    assert entry.status == "pending"  # type: ignore[attr-defined]
    claim = await harness.delivery._claim(outbox_id)
    assert isinstance(claim, Claim)
    # TikTok answered and the marker was written; then the database update was lost.
    await redis_client.set(
        redis_keys.outbox_sent(outbox_id), _sent_marker("tt-accepted", claim.claimed_at)
    )
    settled = await harness.delivery.settle_stuck_sends(timedelta(seconds=0))
    assert (settled.confirmed, settled.resent, settled.unknown) == (1, 0, 0)
    (entry,) = await rows(committed_db, OutboxEntry)
    assert entry.status == "sent"  # type: ignore[attr-defined]
    (reply,) = await rows(committed_db, Message, Message.direction == "outbound")
    assert reply.tiktok_message_id == "tt-accepted"  # type: ignore[attr-defined]
    assert harness.sender.sent == []


async def test_customer_photo_gets_a_kind_answer(make_harness: MakeHarness) -> None:
    harness = make_harness()
    await harness.receive(image_message())
    await harness.deliver_queued()
    assert [sent.text for sent in harness.sender.sent] == [replies.CANNOT_READ_MEDIA]


async def test_unknown_events_and_read_receipts_are_ignored(make_harness: MakeHarness) -> None:
    harness = make_harness()
    body = read_receipt()
    assert await harness.receive(body) is Outcome.IGNORED
    assert harness.queued == []


async def test_long_replies_are_split_under_the_limit(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    class Verbose(RecordingBrain):
        async def respond(self, session, conversation, customer, turn):  # type: ignore[no-untyped-def]
            return TurnResult("other", "local", replies=[Reply("This is a sentence. " * 700)])

    harness = make_harness(brain=Verbose())
    await harness.receive(text_message("tell me everything"))
    await harness.deliver_queued()
    assert len(harness.sender.sent) == 3
    assert all(len(sent.text or "") <= 6000 for sent in harness.sender.sent)
    assert "".join(sent.text or "" for sent in harness.sender.sent).replace(" ", "") == (
        "This is a sentence. " * 700
    ).replace(" ", "")
    customers = await rows(committed_db, Customer)
    assert len(customers) == 1


async def test_a_turn_and_its_send_are_counted_once_with_the_events_bookkeeping(
    make_harness: MakeHarness, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    body = text_message("hi", message_id="counted-1")
    assert await harness.receive(body) is Outcome.HANDLED
    assert await harness.receive(body) is Outcome.DUPLICATE
    assert await harness.receive(text_message("3", message_id="counted-2")) is Outcome.HANDLED
    await harness.deliver_queued()
    assert await redis_client.hgetall(redis_keys.METRICS_MESSAGES) == {
        b"menu|menu": b"1",
        b"human|menu": b"1",
    }
    assert await redis_client.hgetall(redis_keys.METRICS_SENDS) == {b"sent": b"2"}
