"""Delivering one outbox row to TikTok, at most once.

1. Claim: the row must be `pending`; the window and quota are checked and a slot reserved;
   the row becomes `sending` and is committed. A worker claims a turn's first reply in the
   turn's own transaction, by the statement that queues it (`claiming_at`), any other row
   in a transaction of its own.
2. Call TikTok outside any transaction.
3. Record the result (one transaction): `sent` with TikTok's message id; back to `pending`
   with a backoff for a transient error TikTok answered (it did not deliver: a connection
   never made, 40100, 51065, 40064); `failed` (dead-lettered) for a permanent one.
   A transient error after the request went out (a read timeout, a 5xx, a connection
   dropped mid-answer, a 2xx that is not TikTok's envelope) leaves the outcome unknown:
   TikTok may have delivered the reply and will echo it. Sending it again now could put
   it in the customer's inbox twice, so the row stays `sending` (its quota slot kept),
   marked as waiting for its echo, and is settled like the interrupted send below.

A worker (or the database) that dies between the claim's commit and 3 leaves the row
`sending` too. The sweeper settles such rows from the evidence, never by guessing:
- TikTok's answer was seen (a Redis marker written right after the call): `sent`.
- TikTok's `im_send_msg` echo arrived: `sent` (see InboundPipeline._handle_echo).
- Neither, long after the call (RESEND_UNCONFIRMED_AFTER_SECONDS): TikTok echoes every
  send it accepts, so it never got this one: `pending` again, and it goes out once. Not
  while an echo of the conversation that reached the webhook still waits for a worker
  (echoes.py): a killed worker's tasks come back late, and that echo may be this send's.
- With that setting off, or its attempts spent (MAX_SEND_ATTEMPTS): `unknown`, parked in
  the dead letters for a person to decide (`deadletters retry` resends it).

While TikTok is disconnected (the shop removed the app's authorisation, `tiktok.connection`)
a row is not claimed at all: no call, no attempt, no quota slot. It stays `pending` and is
left to the sweeper, which starts sending again once someone reconnects; the window and
quota are checked then, as for any reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import redis_keys
from app.core.clock import utc_now
from app.core.config import Settings
from app.core.counters import WorkerMetrics, count_send_result
from app.core.logging import get_logger
from app.db.models import Conversation, Message, OutboxStatus
from app.db.repositories.conversations import (
    Claimable,
    ConversationRepository,
    DeadLetterRepository,
    MessageRepository,
    OutboxRepository,
)
from app.db.repositories.orders import CustomerRepository
from app.db.session import SessionFactory, single_statement, transaction
from app.services.messaging import echoes, transitions
from app.services.messaging.media import MediaUnavailable
from app.services.messaging.window import WindowService
from app.services.tiktok.connection import disconnected_since, mark_disconnected
from app.services.tiktok.errors import TikTokPermanentError, TikTokTransientError, backoff_delay
from app.services.tiktok.tokens import TikTokNotConnected

log = get_logger(__name__)

_MARKER_TTL_SECONDS = 7 * 24 * 3600

# Why a reply TikTok kept refusing with 40064 was parked: both readings, for a person.
TOO_FAST_GAVE_UP = (
    "TikTok refused repeatedly (40064): sending too fast, "
    "or the customer's DM settings block the shop"
)


class TikTokSender(Protocol):
    async def send_text(self, conversation_id: str, text: str) -> str: ...

    async def send_image(self, conversation_id: str, media_id: str) -> str: ...

    async def can_send_images(self, conversation_id: str) -> bool: ...


class MediaResolver(Protocol):
    async def media_id_for(self, image_url: str) -> str: ...


class Delivery(StrEnum):
    SENT = "sent"
    NOT_SENT = "not_sent"
    FAILED = "failed"
    RETRY = "retry"
    DEFERRED = "deferred"  # an earlier reply of the conversation has not gone out yet
    SKIPPED = "skipped"
    # TikTok is disconnected: the row stays pending, not queued again (the sweeper's).
    WAITING = "waiting"
    # TikTok may have taken it: the row stays `sending` until its echo or the sweeper.
    AWAITING_ECHO = "awaiting_echo"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Delivery
    retry_in: float | None = None
    counted: bool = False  # already in the send metrics (with the sent reply's markers)


@dataclass(frozen=True)
class Claim:
    """A row made `sending` by this worker, its quota slot reserved: it must be sent now."""

    message_id: int
    conversation_tiktok_id: str
    message_type: str
    text: str | None
    image_url: str | None
    attempts: int
    claimed_at: datetime
    tiktok_user_id: str


# How a claim ended: a row to send now, or why there is none.
ClaimOutcome = Claim | DeliveryResult


@dataclass
class DeliveryService:
    settings: Settings
    session_factory: SessionFactory
    redis: aioredis.Redis
    tiktok: TikTokSender
    media: MediaResolver

    def __post_init__(self) -> None:
        self.window = WindowService(self.redis, self.settings)

    async def deliver(self, outbox_id: int, claimed: ClaimOutcome | None = None) -> DeliveryResult:
        """`claimed`: the row's claim when it was made already (`claimed_ahead`, in the
        transaction that queued the reply), else the row is claimed here."""
        result = await self._deliver(outbox_id, claimed)
        if not result.counted:
            await WorkerMetrics(self.redis).send_result(result.outcome.value)
        return result

    async def _deliver(self, outbox_id: int, claimed: ClaimOutcome | None) -> DeliveryResult:
        structlog.contextvars.bind_contextvars(outbox_id=outbox_id)
        claim = claimed if claimed is not None else await self._claim(outbox_id)
        if isinstance(claim, DeliveryResult):
            return claim
        structlog.contextvars.bind_contextvars(conversation_id=claim.conversation_tiktok_id)
        # Only a failed send call can hide a delivered reply: an image upload that timed out
        # put nothing in the customer's inbox.
        message_requested = False
        try:
            media_id = await self._media_id(claim)
            message_requested = True
            tiktok_message_id = await self._send(claim, media_id)
        except TikTokTransientError as error:
            if message_requested and error.maybe_delivered:
                return await self._await_echo(outbox_id, claim, error)
            return await self._transient(outbox_id, claim, error)
        except TikTokNotConnected as error:
            return await self._not_connected(outbox_id, error)
        except (TikTokPermanentError, MediaUnavailable) as error:
            return await self._permanent(outbox_id, claim, error)
        try:
            async with self.redis.pipeline(transaction=False) as markers:
                markers.set(
                    redis_keys.sent_by_tiktok_id(tiktok_message_id),
                    outbox_id,
                    ex=_MARKER_TTL_SECONDS,
                )
                markers.set(
                    redis_keys.outbox_sent(outbox_id),
                    _sent_marker(tiktok_message_id, claim.claimed_at),
                    ex=_MARKER_TTL_SECONDS,
                )
                count_send_result(markers, Delivery.SENT.value)
                await markers.execute()
        except RedisError as error:
            # TikTok has the reply: what matters now is the database saying so. Crashing here
            # would leave the row `sending` with no evidence, and it would be sent again.
            log.warning("sent_marker_failed", error=str(error))
        async with single_statement(self.session_factory) as session:
            await transitions.mark_sent(
                session,
                outbox_id,
                claim.message_id,
                tiktok_message_id=tiktok_message_id,
                sent_at=utc_now(),
            )
        log.info("reply_sent", tiktok_message_id=tiktok_message_id, attempts=claim.attempts)
        return DeliveryResult(Delivery.SENT, counted=True)

    async def _claim(self, outbox_id: int) -> ClaimOutcome:
        if await self._waiting_for_reconnect():
            return DeliveryResult(Delivery.WAITING)
        async with transaction(self.session_factory) as session:
            return await self._claim_in(session, outbox_id)

    def claiming_at(self, disconnected: bool) -> datetime | None:
        """When a reply queued now may be claimed in the transaction that queues it
        (`OutboxRepository.queue_claiming`), for the caller to `deliver` right after that
        transaction commits: the claim then costs neither a transaction nor a statement of
        its own. `disconnected`: whether TikTok's disconnection flag (`tiktok.connection`)
        is set, as the caller read it just now with what it reads anyway. None while nothing
        may be claimed (TikTok disconnected): the reply is queued pending, and its delivery
        finds it waiting. A worker that dies between the commit and the call leaves the row
        `sending` with no evidence of a send, as one that dies during the call does: the
        sweeper settles it (module doc). When that transaction fails instead, `give_back`
        returns the slot."""
        if disconnected:
            _log_waiting_for_reconnect()
            return None
        return utc_now()

    async def give_back(self, claimed: ClaimOutcome) -> None:
        """The transaction that claimed ahead was rolled back, the claim with it: its slot in
        the quota (in Redis, which no rollback reaches) is given back."""
        if isinstance(claimed, Claim):
            try:
                await self.window.release_reply(claimed.tiktok_user_id, None)
            except RedisError as error:
                log.warning("quota_slot_release_failed", error=str(error))

    async def _waiting_for_reconnect(self) -> bool:
        if await disconnected_since(self.redis) is None:
            return False
        _log_waiting_for_reconnect()
        return True

    async def _claim_in(self, session: AsyncSession, outbox_id: int) -> ClaimOutcome:
        claimed_at = utc_now()
        claimed = await transitions.claim(session, outbox_id, claimed_at)
        if claimed is None or claimed.status != OutboxStatus.PENDING:
            # Someone else holds it, or it is already done: a duplicate task.
            return DeliveryResult(Delivery.SKIPPED)
        return await self.claimed_ahead(session, claimed, claimed_at)

    async def claimed_ahead(
        self, session: AsyncSession, claimed: Claimable, claimed_at: datetime
    ) -> ClaimOutcome:
        """What a pending row's claim comes to, made or not by the statement that read it
        (`claim`, or the one that queued it: see `claiming_at`): the send to make now, once
        the window and its quota grant a slot; else why not."""
        outbox_id = claimed.outbox_id
        if not claimed.claimed:
            # An earlier reply of the conversation has not gone out yet.
            due, now = claimed.earlier_due, utc_now()
            delay = max(0.3, (due - now).total_seconds()) if due and due > now else 0.3
            # An earlier reply waiting for its echo is due only when the resend window
            # ends, minutes away, though the echo usually settles it within seconds:
            # look again no later than the longest ordinary backoff.
            delay = min(delay, max(0.3, self.settings.retry_backoff_cap_seconds))
            return DeliveryResult(Delivery.DEFERRED, retry_in=delay)
        refusal = await self.window.reserve_reply(claimed.tiktok_user_id, claimed)
        if refusal is not None:
            entry = await OutboxRepository(session).get_for_update(outbox_id)
            message = await MessageRepository(session).get(claimed.message_id)
            conversation = await ConversationRepository(session).get(claimed.conversation_id)
            assert entry is not None and message is not None and conversation is not None
            transitions.unclaim_refused(entry, message, conversation, refusal.value)
            log.info("reply_not_sent", reason=refusal.name.lower())
            return DeliveryResult(Delivery.NOT_SENT)
        return Claim(
            message_id=claimed.message_id,
            conversation_tiktok_id=claimed.tiktok_conversation_id,
            message_type=claimed.message_type,
            text=claimed.text,
            image_url=(claimed.payload or {}).get("image_url"),
            attempts=claimed.attempts + 1,
            claimed_at=claimed_at,
            tiktok_user_id=claimed.tiktok_user_id,
        )

    async def _media_id(self, claim: Claim) -> str | None:
        """TikTok's media id for an image reply, uploaded if need be; None for text."""
        if claim.message_type != "image":
            return None
        if claim.image_url is None:
            raise MediaUnavailable("image message without an image")
        if not await self.tiktok.can_send_images(claim.conversation_tiktok_id):
            raise MediaUnavailable("images cannot be sent in this conversation")
        return await self.media.media_id_for(claim.image_url)

    async def _send(self, claim: Claim, media_id: str | None) -> str:
        if media_id is not None:
            return await self.tiktok.send_image(claim.conversation_tiktok_id, media_id)
        return await self.tiktok.send_text(claim.conversation_tiktok_id, claim.text or "")

    async def _settle(
        self,
        outbox_id: int,
        *,
        status: OutboxStatus,
        error: str,
        release_slot: bool,
        retry_in: float = 0.0,
    ) -> None:
        async with transaction(self.session_factory) as session:
            entry = await OutboxRepository(session).get_for_update(outbox_id)
            assert entry is not None
            message = await MessageRepository(session).get(entry.message_id)
            assert message is not None
            if status is OutboxStatus.PENDING:
                transitions.retry_later(entry, utc_now() + timedelta(seconds=retry_in), error)
            else:
                transitions.mark_not_delivered(entry, message, status, error)
            conversation = await self._conversation_of(session, message)
            if release_slot:
                await self._release_slot(session, conversation)
            if status is OutboxStatus.FAILED:
                await DeadLetterRepository(session).park(
                    "send",
                    error,
                    conversation_id=conversation.tiktok_conversation_id,
                    payload={"outbox_id": outbox_id, "message_id": message.id},
                    attempts=entry.attempts,
                )

    @staticmethod
    async def _conversation_of(session: AsyncSession, message: Message) -> Conversation:
        conversation = await ConversationRepository(session).get(message.conversation_id)
        assert conversation is not None
        return conversation

    async def _release_slot(self, session: AsyncSession, conversation: Conversation) -> None:
        """Give back the quota slot a claim reserved for a reply that did not go out."""
        customer = await CustomerRepository(session).get(conversation.customer_id)
        assert customer is not None
        try:
            await self.window.release_reply(customer.tiktok_user_id, conversation)
        except RedisError as error:
            # The row's new state matters more than the slot: failing here would leave it
            # `sending`, looking in flight until the resend window. A slot not given back
            # only makes the quota stricter until the window ends.
            log.warning("quota_slot_release_failed", error=str(error))

    def _retry_budget(self, error: TikTokTransientError) -> tuple[int, str]:
        """How many attempts a reply gets when this error is TikTok's latest answer, and what
        the dead letter says when they are spent. The one place that decides when a
        transient failure stops being retried."""
        if error.refused_by_restriction:
            # 40064 may be a limit that lifts or the customer's DM rules, which never lift:
            # a few slow retries, then a person decides (tiktok-api.md, "Send: details").
            attempts = min(self.settings.too_fast_max_attempts, self.settings.max_send_attempts)
            return attempts, f"{TOO_FAST_GAVE_UP} (last answer: {error})"
        return self.settings.max_send_attempts, str(error)

    async def _transient(
        self, outbox_id: int, claim: Claim, error: TikTokTransientError
    ) -> DeliveryResult:
        allowed, reason = self._retry_budget(error)
        if claim.attempts >= allowed:
            log.error(
                "reply_failed",
                error=str(error),
                attempts=claim.attempts,
                transient=True,
                kind=error.kind.value,
            )
            await self._settle(
                outbox_id, status=OutboxStatus.FAILED, error=reason, release_slot=True
            )
            return DeliveryResult(Delivery.FAILED)
        base = self.settings.retry_backoff_base_seconds
        floor = 0.2
        if error.long_backoff:
            # A messaging restriction does not lift in a moment: never come back quickly.
            base = self.settings.too_fast_backoff_seconds
            floor = base / 2
        cap = max(self.settings.retry_backoff_cap_seconds, floor)
        delay = max(floor, backoff_delay(claim.attempts, base, cap))
        await self._settle(
            outbox_id,
            status=OutboxStatus.PENDING,
            error=str(error),
            release_slot=True,
            retry_in=delay,
        )
        log.warning("reply_retry", error=str(error), attempts=claim.attempts, retry_in=delay)
        return DeliveryResult(Delivery.RETRY, retry_in=delay)

    async def _await_echo(
        self, outbox_id: int, claim: Claim, error: TikTokTransientError
    ) -> DeliveryResult:
        """The send may have reached the customer: no retry, whatever the attempts left. Its
        echo settles it as `sent`; without one the sweeper sends it again once the resend
        window has passed, or parks it as unknown (module doc)."""
        wait = self.settings.resend_unconfirmed_after_seconds
        if wait is None:
            wait = self.settings.send_unknown_grace_seconds
        settle_by = claim.claimed_at + timedelta(seconds=wait)
        async with transaction(self.session_factory) as session:
            entry = await OutboxRepository(session).get_for_update(outbox_id)
            assert entry is not None
            if entry.status is not OutboxStatus.SENDING or entry.claimed_at != claim.claimed_at:
                # The echo (or the sweeper) settled it while the call was failing: it stands.
                log.info("reply_settled_during_call", status=entry.status, error=str(error))
                if entry.status is OutboxStatus.SENT:
                    return DeliveryResult(Delivery.SENT)
                return DeliveryResult(Delivery.SKIPPED)
            transitions.await_echo(
                entry, settle_by, f"TikTok may have taken it ({error}): waiting for its echo"
            )
        log.warning(
            "reply_awaiting_echo",
            error=str(error),
            attempts=claim.attempts,
            kind=error.kind.value,
            settle_by=settle_by.isoformat(),
        )
        return DeliveryResult(Delivery.AWAITING_ECHO)

    async def _not_connected(self, outbox_id: int, error: TikTokNotConnected) -> DeliveryResult:
        """No account is connected (and no tokens were configured): like a disconnection,
        the reply waits in the outbox, and the rows after it are not even tried, until
        someone connects the shop (which clears the flag)."""
        await mark_disconnected(self.redis)
        await self._settle(
            outbox_id, status=OutboxStatus.PENDING, error=str(error), release_slot=True
        )
        log.warning("reply_waiting", reason="tiktok_not_connected")
        return DeliveryResult(Delivery.WAITING)

    async def _permanent(self, outbox_id: int, claim: Claim, error: Exception) -> DeliveryResult:
        if isinstance(error, MediaUnavailable):
            log.info("image_not_sent", reason=str(error))
            await self._settle(
                outbox_id, status=OutboxStatus.NOT_SENT, error=str(error), release_slot=True
            )
            return DeliveryResult(Delivery.NOT_SENT)
        log.error("reply_failed", error=str(error), attempts=claim.attempts, transient=False)
        await self._settle(
            outbox_id, status=OutboxStatus.FAILED, error=str(error), release_slot=True
        )
        return DeliveryResult(Delivery.FAILED)

    async def settle_stuck_sends(self, grace: timedelta) -> StuckSends:
        """Rows left `sending` by a dead worker or waiting for their echo, settled from the
        evidence (module doc)."""
        now = utc_now()
        resend_after = self.settings.resend_unconfirmed_after_seconds
        counts = StuckSends()
        async with transaction(self.session_factory) as session:
            stuck = await OutboxRepository(session).stuck_sending(now - grace)
            letters = DeadLetterRepository(session)
            for entry in stuck:
                tiktok_message_id = _sent_by_marker(
                    await self.redis.get(redis_keys.outbox_sent(entry.id)), entry.claimed_at
                )
                message = await MessageRepository(session).get(entry.message_id)
                assert message is not None
                if tiktok_message_id is not None:
                    # TikTok answered within the call that began at the claim.
                    await transitions.mark_sent(
                        session,
                        entry.id,
                        message.id,
                        tiktok_message_id=tiktok_message_id,
                        sent_at=entry.claimed_at or now,
                    )
                    counts.confirmed += 1
                    log.info("send_confirmed_by_marker", outbox_id=entry.id)
                    continue
                claimed_at = entry.claimed_at or now
                resend = (
                    resend_after is not None and entry.attempts < self.settings.max_send_attempts
                )
                if resend and (now - claimed_at).total_seconds() < (resend_after or 0.0):
                    continue  # its echo may still be on the way
                conversation = await self._conversation_of(session, message)
                if await echoes.echo_queued(
                    self.redis,
                    conversation.tiktok_conversation_id,
                    send_claimed_at=claimed_at,
                    now=now,
                    wait_seconds=self.settings.queued_echo_wait_seconds,
                ):
                    # An echo of the conversation reached the webhook and waits for a
                    # worker: it may be this send's, so neither a resend nor "unknown" yet.
                    counts.waiting_for_echo += 1
                    continue
                if resend:
                    await self._release_slot(session, conversation)
                    transitions.retry_later(
                        entry, now, "TikTok never confirmed the send (no echo): sent again"
                    )
                    counts.resent += 1
                    log.warning("reply_resent_unconfirmed", outbox_id=entry.id)
                    continue
                reason = (
                    f"{entry.last_error}; none came, outcome unknown"
                    if transitions.awaiting_echo(entry)
                    else "worker stopped during the TikTok call; outcome unknown"
                )
                transitions.mark_outcome_unknown(entry, reason)
                await letters.park(
                    "send_unknown",
                    reason,
                    payload={"outbox_id": entry.id, "message_id": entry.message_id},
                    attempts=entry.attempts,
                )
                counts.unknown += 1
                log.error("reply_outcome_unknown", outbox_id=entry.id)
        return counts


def _log_waiting_for_reconnect() -> None:
    # Every send would fail and spend an attempt towards the dead letters. A task that
    # re-queued itself here would pile up beside the sweeper's, which requeues every
    # pending row anyway: left pending, the sweeper sends it once TikTok is reconnected.
    log.info("reply_waiting", reason="tiktok_disconnected")


def _sent_marker(tiktok_message_id: str, claimed_at: datetime) -> str:
    # The claim's time is in the marker: it proves the send of *this* claim of the row, even
    # if outbox ids were ever reused (a database restored or reset beside a Redis that kept
    # its keys).
    return f"{claimed_at.timestamp():.6f} {tiktok_message_id}"


def _sent_by_marker(marker: bytes | None, claimed_at: datetime | None) -> str | None:
    if marker is None or claimed_at is None:
        return None
    stamp, _, tiktok_message_id = marker.decode().partition(" ")
    return tiktok_message_id if stamp == f"{claimed_at.timestamp():.6f}" else None


@dataclass
class StuckSends:
    confirmed: int = 0
    resent: int = 0
    unknown: int = 0
    waiting_for_echo: int = 0
