"""A send whose outcome is unknown: the request went out and the answer was lost (a read
timeout, a 5xx, a dropped connection). TikTok may have delivered the reply and will echo it,
so the row waits for that evidence instead of being sent again straight away; errors TikTok
answered itself (it did not deliver) are retried with backoff as before."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.db.models import (
    DeadLetter,
    Direction,
    Message,
    MessageStatus,
    OutboxEntry,
    OutboxStatus,
)
from app.services import replies
from app.services.messaging.delivery import TOO_FAST_GAVE_UP, Delivery
from app.services.messaging.echoes import EchoLedger
from app.services.messaging.inbound import Outcome
from app.services.tiktok.errors import (
    TikTokCode,
    TikTokTransientError,
    TransientKind,
    error_for_code,
)
from app.services.turns import Reply, TurnResult
from tests.conftest import Clock
from tests.factories import CONVERSATION_ID, CUSTOMER_ID, echo, text_message
from tests.fakes import CollectingSender, too_fast
from tests.services.pipeline.conftest import Harness

MakeHarness = Callable[..., Harness]

RESEND_AFTER = 120.0  # longer than the sweeper's grace (60 s), as in production


def read_timeout() -> TikTokTransientError:
    return TikTokTransientError(
        None, "timeout calling /send", kind=TransientKind.TIMEOUT, maybe_delivered=True
    )


def gateway_error() -> TikTokTransientError:
    return TikTokTransientError(
        None,
        "TikTok answered HTTP 502 to /send",
        kind=TransientKind.SERVER_ERROR,
        http_status=502,
        maybe_delivered=True,
    )


def not_an_envelope() -> TikTokTransientError:
    return TikTokTransientError(
        None,
        "TikTok answered /send with a body that is not its envelope",
        kind=TransientKind.INVALID_RESPONSE,
        http_status=200,
        maybe_delivered=True,
    )


def connection_refused() -> TikTokTransientError:
    return TikTokTransientError(
        None, "connection failed calling /send: ConnectError", kind=TransientKind.CONNECTION
    )


@dataclass
class AnswerLost(CollectingSender):
    """TikTok takes the send (and would echo it), but its answer never reaches the bot."""

    lose_next: int = 0
    # What happens between TikTok taking the send and the bot giving up on the answer.
    meanwhile: Callable[[], Awaitable[None]] | None = None
    lost: list[str] = field(default_factory=list)

    async def send_text(self, conversation_id: str, text: str) -> str:
        tiktok_message_id = await super().send_text(conversation_id, text)
        if self.lose_next == 0:
            return tiktok_message_id
        self.lose_next -= 1
        self.lost.append(tiktok_message_id)
        if self.meanwhile is not None:
            await self.meanwhile()
        raise read_timeout()


def with_sender(harness: Harness, sender: CollectingSender) -> Harness:
    harness.sender = sender
    harness.delivery.tiktok = sender
    return harness


async def the_entry(engine: AsyncEngine, outbox_id: int) -> OutboxEntry:
    async with AsyncSession(engine) as session:
        entry = await session.get(OutboxEntry, outbox_id)
        assert entry is not None
        return entry


async def shop_side(engine: AsyncEngine) -> list[Message]:
    async with AsyncSession(engine) as session:
        found = await session.scalars(
            select(Message).where(Message.direction == Direction.OUTBOUND).order_by(Message.id)
        )
        return list(found.all())


async def dead_letters(engine: AsyncEngine) -> list[DeadLetter]:
    async with AsyncSession(engine) as session:
        return list((await session.scalars(select(DeadLetter))).all())


async def quota_used(redis: aioredis.Redis) -> int:
    return int(await redis.get(redis_keys.quota(CUSTOMER_ID)) or 0)


async def sweep(harness: Harness) -> tuple[int, int, int]:
    """One sweeper pass with the grace the beat task uses: (confirmed, resent, unknown)."""
    grace = timedelta(
        seconds=max(
            harness.settings.send_unknown_grace_seconds,
            harness.settings.tiktok_http_timeout_seconds,
        )
    )
    settled = await harness.delivery.settle_stuck_sends(grace)
    return settled.confirmed, settled.resent, settled.unknown


async def a_reply_waiting(harness: Harness) -> int:
    await harness.receive(text_message("hi"))
    (outbox_id,) = harness.queued
    return outbox_id


async def test_a_send_whose_answer_was_lost_is_not_sent_again(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    clock: Clock,
) -> None:
    harness = with_sender(
        make_harness(resend_unconfirmed_after_seconds=RESEND_AFTER), AnswerLost(lose_next=1)
    )
    outbox_id = await a_reply_waiting(harness)

    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.AWAITING_ECHO

    entry = await the_entry(committed_db, outbox_id)
    assert (entry.status, entry.attempts) == (OutboxStatus.SENDING, 1)
    assert "timeout calling /send" in (entry.last_error or "")
    assert "waiting for its echo" in (entry.last_error or "")
    assert await quota_used(redis_client) == 1  # it may have gone out: the slot stays taken
    # A redelivered task, and the sweeper within the echo's time, leave it alone.
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SKIPPED
    assert await sweep(harness) == (0, 0, 0)
    clock.advance(timedelta(seconds=RESEND_AFTER - 1))
    assert await sweep(harness) == (0, 0, 0)
    assert (await the_entry(committed_db, outbox_id)).status is OutboxStatus.SENDING
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]


async def test_its_echo_confirms_it_with_tiktoks_message_id(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    clock: Clock,
) -> None:
    sender = AnswerLost(lose_next=1)
    harness = with_sender(make_harness(resend_unconfirmed_after_seconds=RESEND_AFTER), sender)
    outbox_id = await a_reply_waiting(harness)
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.AWAITING_ECHO

    (tiktok_message_id,) = sender.lost
    body = echo(replies.MENU, message_id=tiktok_message_id, source="API")
    assert await harness.receive(body) is Outcome.ECHO

    entry = await the_entry(committed_db, outbox_id)
    assert (entry.status, entry.last_error) == (OutboxStatus.SENT, None)
    (reply,) = await shop_side(committed_db)  # the echo is the reply, not a second message
    assert (reply.status, reply.tiktok_message_id, reply.sent_by) == (
        MessageStatus.SENT,
        tiktok_message_id,
        "bot",
    )
    assert await quota_used(redis_client) == 1
    # Long after the resend window nothing is sent again.
    clock.advance(timedelta(seconds=RESEND_AFTER + 1))
    assert await sweep(harness) == (0, 0, 0)
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SKIPPED
    assert [sent.text for sent in sender.sent] == [replies.MENU]


async def test_an_echo_while_the_call_is_still_failing_stands(
    make_harness: MakeHarness, committed_db: AsyncEngine, clock: Clock
) -> None:
    harness = make_harness(resend_unconfirmed_after_seconds=RESEND_AFTER)

    async def echo_arrives() -> None:
        assert await harness.receive(echo(replies.MENU, message_id="tt-1")) is Outcome.ECHO

    with_sender(harness, AnswerLost(lose_next=1, meanwhile=echo_arrives))
    outbox_id = await a_reply_waiting(harness)

    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SENT
    entry = await the_entry(committed_db, outbox_id)
    assert entry.status is OutboxStatus.SENT
    clock.advance(timedelta(seconds=RESEND_AFTER + 1))
    assert await sweep(harness) == (0, 0, 0)
    (reply,) = await shop_side(committed_db)
    assert reply.tiktok_message_id == "tt-1"
    assert len(harness.sender.sent) == 1


@pytest.mark.parametrize("lost", [read_timeout, gateway_error, not_an_envelope])
async def test_without_an_echo_it_is_sent_again_once_after_the_resend_window(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    clock: Clock,
    lost: Callable[[], TikTokTransientError],
) -> None:
    harness = make_harness(resend_unconfirmed_after_seconds=RESEND_AFTER)
    outbox_id = await a_reply_waiting(harness)
    harness.sender.fail_next(lost())  # TikTok never took it: no echo will come

    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.AWAITING_ECHO
    clock.advance(timedelta(seconds=RESEND_AFTER - 1))
    assert await sweep(harness) == (0, 0, 0)
    assert harness.sender.sent == []
    clock.advance(timedelta(seconds=2))
    assert await sweep(harness) == (0, 1, 0)

    entry = await the_entry(committed_db, outbox_id)
    assert entry.status is OutboxStatus.PENDING
    assert await quota_used(redis_client) == 0  # given back for the new claim to take
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SENT
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SKIPPED
    assert await sweep(harness) == (0, 0, 0)
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]
    assert (await the_entry(committed_db, outbox_id)).attempts == 2
    assert await quota_used(redis_client) == 1
    assert await dead_letters(committed_db) == []


@pytest.mark.parametrize(
    "answered",
    [
        connection_refused,
        lambda: error_for_code(TikTokCode.RATE_LIMITED, "rate limited"),
        lambda: error_for_code(TikTokCode.SYSTEM_ERROR, "system error, retry later"),
    ],
    ids=["connect_error", "code_40100", "code_51065"],
)
async def test_an_error_that_never_delivered_is_retried_at_once(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    answered: Callable[[], TikTokTransientError],
) -> None:
    harness = make_harness(
        resend_unconfirmed_after_seconds=RESEND_AFTER, retry_backoff_base_seconds=0.01
    )
    outbox_id = await a_reply_waiting(harness)
    error = answered()
    assert not error.maybe_delivered
    harness.sender.fail_next(error)

    result = await harness.delivery.deliver(outbox_id)

    assert result.outcome is Delivery.RETRY and result.retry_in is not None
    entry = await the_entry(committed_db, outbox_id)
    assert entry.status is OutboxStatus.PENDING and entry.last_error == str(error)
    assert await quota_used(redis_client) == 0
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SENT
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]


async def test_with_its_attempts_spent_it_is_parked_as_unknown_never_failed(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    clock: Clock,
) -> None:
    harness = make_harness(resend_unconfirmed_after_seconds=RESEND_AFTER, max_send_attempts=2)
    outbox_id = await a_reply_waiting(harness)
    harness.sender.fail_next(gateway_error(), read_timeout())

    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.AWAITING_ECHO
    clock.advance(timedelta(seconds=RESEND_AFTER + 1))
    assert await sweep(harness) == (0, 1, 0)
    # The last attempt may have gone out too: not `failed`, its echo is still awaited.
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.AWAITING_ECHO
    assert (await the_entry(committed_db, outbox_id)).status is OutboxStatus.SENDING
    assert await dead_letters(committed_db) == []
    clock.advance(timedelta(seconds=RESEND_AFTER + 1))
    assert await sweep(harness) == (0, 0, 1)

    entry = await the_entry(committed_db, outbox_id)
    assert (entry.status, entry.attempts) == (OutboxStatus.UNKNOWN, 2)
    (letter,) = await dead_letters(committed_db)
    assert (letter.kind, letter.attempts) == ("send_unknown", 2)
    assert "timeout calling /send" in letter.error and "outcome unknown" in letter.error
    assert harness.sender.sent == []
    assert await quota_used(redis_client) == 1  # it may have gone out
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SKIPPED
    assert await sweep(harness) == (0, 0, 0)


async def test_an_unknown_outcome_does_not_stretch_the_too_fast_budget(
    make_harness: MakeHarness, committed_db: AsyncEngine, clock: Clock
) -> None:
    harness = make_harness(
        resend_unconfirmed_after_seconds=RESEND_AFTER,
        max_send_attempts=6,
        too_fast_max_attempts=2,
        too_fast_backoff_seconds=1.0,
    )
    outbox_id = await a_reply_waiting(harness)
    harness.sender.fail_next(too_fast(), read_timeout(), too_fast())

    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.RETRY
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.AWAITING_ECHO
    clock.advance(timedelta(seconds=RESEND_AFTER + 1))
    assert await sweep(harness) == (0, 1, 0)
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.FAILED

    (letter,) = await dead_letters(committed_db)
    assert (letter.kind, letter.attempts) == ("send", 3)
    assert letter.error.startswith(TOO_FAST_GAVE_UP)
    assert harness.sender.sent == []


class TwoReplies:
    async def respond(self, session, conversation, customer, turn):  # type: ignore[no-untyped-def]
        return TurnResult("other", "local", replies=[Reply("first"), Reply("second")])


async def test_a_later_reply_waits_for_the_echo_of_an_earlier_one(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    sender = AnswerLost(lose_next=1)
    harness = with_sender(
        make_harness(brain=TwoReplies(), resend_unconfirmed_after_seconds=RESEND_AFTER), sender
    )
    await harness.receive(text_message("hi"))
    first, second = harness.queued

    assert (await harness.delivery.deliver(first)).outcome is Delivery.AWAITING_ECHO
    deferred = await harness.delivery.deliver(second)
    assert deferred.outcome is Delivery.DEFERRED and deferred.retry_in is not None
    # It looks again within an ordinary backoff, not only when the resend window ends.
    assert deferred.retry_in <= harness.settings.retry_backoff_cap_seconds
    assert [sent.text for sent in sender.sent] == ["first"]

    assert await harness.receive(echo("first", message_id=sender.lost[0])) is Outcome.ECHO
    assert (await harness.delivery.deliver(second)).outcome is Delivery.SENT
    assert [sent.text for sent in sender.sent] == ["first", "second"]
    assert [m.text for m in await shop_side(committed_db)] == ["first", "second"]


async def webhook_queues(
    redis: aioredis.Redis, echo_id: str, clock: Clock, ago: timedelta = timedelta(0)
) -> None:
    """What the webhook does with an echo it cannot settle itself (no sent marker): queues
    it for a worker, on record as an echo of the conversation still to be handled."""
    settled = await EchoLedger(redis).settle_at_ingress(
        tiktok_message_id=echo_id,
        conversation_id=CONVERSATION_ID,
        received_at=(clock.now() - ago).timestamp(),
        outcome=Outcome.ECHO.value,
        marker_ttl_seconds=60,
        queued_ttl_seconds=3600,
    )
    assert not settled


async def sweep_waiting(harness: Harness) -> int:
    grace = timedelta(seconds=harness.settings.send_unknown_grace_seconds)
    return (await harness.delivery.settle_stuck_sends(grace)).waiting_for_echo


async def test_an_echo_still_queued_holds_the_resend_until_it_confirms_the_send(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    clock: Clock,
) -> None:
    """A killed worker's tasks come back only after the broker's visibility timeout, so the
    echo that proves a send can reach a worker after the resend window: while the webhook
    holds one for the conversation, the send is not repeated."""
    sender = AnswerLost(lose_next=1)
    harness = with_sender(make_harness(resend_unconfirmed_after_seconds=RESEND_AFTER), sender)
    outbox_id = await a_reply_waiting(harness)
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.AWAITING_ECHO
    (tiktok_message_id,) = sender.lost
    await webhook_queues(redis_client, tiktok_message_id, clock)

    clock.advance(timedelta(seconds=RESEND_AFTER + 1))
    assert await sweep_waiting(harness) == 1
    assert await sweep(harness) == (0, 0, 0)
    assert (await the_entry(committed_db, outbox_id)).status is OutboxStatus.SENDING

    body = echo(replies.MENU, message_id=tiktok_message_id, source="API")
    assert await harness.receive(body) is Outcome.ECHO
    assert (await the_entry(committed_db, outbox_id)).status is OutboxStatus.SENT
    assert await redis_client.exists(redis_keys.queued_echoes(CONVERSATION_ID)) == 0
    assert await sweep(harness) == (0, 0, 0)
    assert [sent.text for sent in sender.sent] == [replies.MENU]


async def test_once_the_queued_echoes_are_handled_and_none_was_the_sends_it_goes_again(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    clock: Clock,
) -> None:
    harness = make_harness(resend_unconfirmed_after_seconds=RESEND_AFTER)
    outbox_id = await a_reply_waiting(harness)
    harness.sender.fail_next(read_timeout())  # TikTok never took it: no echo will come
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.AWAITING_ECHO
    # The shop's welcome message, echoed meanwhile in the same conversation.
    welcome = echo(
        "Welcome to Philia Thrifts!",
        message_id="tt-welcome",
        source="API",
        auto_message_type="WELCOME_MESSAGE",
    )
    await webhook_queues(redis_client, "tt-welcome", clock)

    clock.advance(timedelta(seconds=RESEND_AFTER + 1))
    assert await sweep_waiting(harness) == 1
    assert await harness.receive(welcome) is Outcome.ECHO
    # TikTok delivers it again: the webhook has it on record again, the worker forgets it.
    await webhook_queues(redis_client, "tt-welcome", clock)
    assert await harness.receive(welcome) is Outcome.DUPLICATE
    assert await redis_client.exists(redis_keys.queued_echoes(CONVERSATION_ID)) == 0

    assert await sweep(harness) == (0, 1, 0)
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SENT
    assert [sent.text for sent in harness.sender.sent] == [replies.MENU]


@pytest.mark.parametrize(
    ("queued_before_the_claim", "wait_seconds"),
    [(timedelta(minutes=2), 3600), (timedelta(0), 30)],
    ids=["queued_before_the_claim", "queued_longer_than_the_wait"],
)
async def test_an_echo_that_cannot_be_the_sends_does_not_hold_it(
    make_harness: MakeHarness,
    redis_client: aioredis.Redis,
    clock: Clock,
    queued_before_the_claim: timedelta,
    wait_seconds: int,
) -> None:
    """An echo queued before the send was claimed is of an earlier one; a record older
    than QUEUED_ECHO_WAIT_SECONDS was left by an echo task that was lost."""
    harness = make_harness(
        resend_unconfirmed_after_seconds=RESEND_AFTER,
        broker_visibility_timeout_seconds=10,
        outbox_sweep_seconds=1,
        queued_echo_wait_seconds=wait_seconds,
    )
    outbox_id = await a_reply_waiting(harness)
    harness.sender.fail_next(read_timeout())
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.AWAITING_ECHO
    await webhook_queues(redis_client, "tt-other", clock, ago=queued_before_the_claim)

    clock.advance(timedelta(seconds=RESEND_AFTER + 1))
    assert await sweep(harness) == (0, 1, 0)


class OnePhoto:
    async def respond(self, session, conversation, customer, turn):  # type: ignore[no-untyped-def]
        return TurnResult("other", "local", replies=[Reply(image_url="https://x/1.jpg")])


@dataclass
class UploadTimesOutOnce:
    failed: bool = False

    async def media_id_for(self, image_url: str) -> str:
        if not self.failed:
            self.failed = True
            raise TikTokTransientError(
                None,
                "timeout calling /media/upload",
                kind=TransientKind.TIMEOUT,
                maybe_delivered=True,
            )
        return "media-1"


async def test_an_upload_that_timed_out_sent_nothing_and_is_retried_at_once(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness(brain=OnePhoto(), resend_unconfirmed_after_seconds=RESEND_AFTER)
    harness.delivery.media = UploadTimesOutOnce()
    outbox_id = await a_reply_waiting(harness)

    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.RETRY
    assert (await the_entry(committed_db, outbox_id)).status is OutboxStatus.PENDING
    assert (await harness.delivery.deliver(outbox_id)).outcome is Delivery.SENT
    assert [sent.media_id for sent in harness.sender.sent] == ["media-1"]
