"""From a queued webhook body to committed state and outbox rows.

Ordering: every inbound message is first recorded (idempotent on `event_id`), then the
conversation's pending messages are handled oldest first (by TikTok's timestamp) under
a row lock on the conversation. Whichever worker takes the lock handles everything
pending, so a message never overtakes an earlier one that is already recorded, and
messages recorded together (a burst) can be answered as one turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

import redis.asyncio as aioredis
import structlog
from redis.asyncio.client import Pipeline
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import redis_keys
from app.core.clock import unix_now, utc_now
from app.core.config import Settings
from app.core.counters import WorkerMetrics, count_turn_answered
from app.core.logging import get_logger
from app.db.models import (
    Conversation,
    ConversationMode,
    Customer,
    Direction,
    Message,
    MessageStatus,
)
from app.db.repositories.conversations import (
    Claimable,
    ConversationRepository,
    MessageRepository,
    OutboxRepository,
    SettledTurn,
)
from app.db.session import SessionFactory, transaction
from app.services import replies
from app.services.messaging import echoes, transitions
from app.services.messaging.delivery import ClaimOutcome
from app.services.messaging.outbound import expand_replies, queue_turn_replies
from app.services.messaging.window import WindowService
from app.services.tiktok.account import AccountIdentity, BusinessAccount
from app.services.tiktok.connection import DISCONNECTED_NOTICE, mark_disconnected
from app.services.tiktok.webhook import (
    ContentType,
    EchoAuthor,
    EventType,
    InvalidEnvelope,
    MessageContent,
    WebhookEnvelope,
    event_id_for,
    parse_content,
    parse_envelope,
)
from app.services.turns import Brain, Reply, TurnResult

log = get_logger(__name__)
T = TypeVar("T")

EnqueueDeliveries = Callable[[Sequence[int]], Awaitable[None]]


class DeliversNow(Protocol):
    """A worker that sends a turn's replies itself, right after the turn commits. The first
    reply is then claimed by the statement that queues it, in the turn's own transaction
    (`DeliveryService.claiming_at`), instead of in a transaction of its own after the
    commit."""

    def claiming_at(self, disconnected: bool) -> datetime | None:
        """The claim's time; None when nothing may be claimed now. `disconnected`: TikTok's
        disconnection flag (`redis_keys.TIKTOK_DISCONNECTED`) is set."""

    async def claimed_ahead(
        self, session: AsyncSession, claimable: Claimable, claimed_at: datetime
    ) -> ClaimOutcome: ...

    async def give_back(self, claimed: ClaimOutcome) -> None:
        """The turn's transaction was rolled back after the claim: undo what it cannot."""

    async def deliver(self, outbox_ids: Sequence[int], first: ClaimOutcome | None) -> None:
        """Deliver the rows in order; `first`: the first one's claim, if it was claimed
        ahead (a turn that queued no reply of its own claims none)."""


# Tells staff why a conversation needs a person, or (None) why the whole shop does.
NotifyStaff = Callable[[Conversation | None, str], Awaitable[None]]


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    ECHO = "echo"
    OTHER_ACCOUNT = "other_account"


# What the bot answers, by `content.type`: words (a text, a tapped suggested question), a
# shared video, and media it cannot see (answered kindly that it cannot). A reaction is
# not a question; a type TikTok adds later may not be a message at all (nor count for the
# window): both are recorded for staff and never answered.
ANSWERED_TYPES = frozenset(
    {
        ContentType.TEXT,
        ContentType.TEMPLATE,
        ContentType.SHARE_POST,
        ContentType.IMAGE,
        ContentType.VIDEO,
        ContentType.STICKER,
        ContentType.EMOJI,
    }
)
# The events that carry a message. Every other one (a read receipt, a ping, a change of the
# shop's automations, ...) is accepted, logged and ignored: never a dead letter.
MESSAGE_EVENTS = frozenset({EventType.RECEIVE, EventType.SEND})
# messages.message_type is String(32): a longer unknown type is recorded cut short.
MESSAGE_TYPE_CHARS = 32
# How long an event of another account is remembered for the readiness check.
OTHER_ACCOUNT_MEMORY_SECONDS = 7 * 24 * 3600


def _utc_from_ms(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def _message_in(envelope: WebhookEnvelope) -> MessageContent | None:
    """The message an event carries; None for other events and for content that is not a
    message (which is an error only once the event is known to be the shop's)."""
    if envelope.event not in MESSAGE_EVENTS:
        return None
    try:
        return parse_content(envelope)
    except InvalidEnvelope:
        return None


def _read_as(content: MessageContent) -> tuple[str, str | None]:
    """The type and the words a customer's message is answered as."""
    said = content.said
    if content.type == ContentType.TEMPLATE and said is not None:
        # A tapped suggested-question button is the customer saying its text: recorded as
        # text, so it is answered (and joins a burst) as typed words are; the payload keeps
        # the card. A card whose button cannot be read stays a template: answered as media.
        return ContentType.TEXT, said
    return content.type[:MESSAGE_TYPE_CHARS], said


async def other_account_seen(redis: aioredis.Redis, account: AccountIdentity) -> str | None:
    """The `user_openid` of the last webhook event (in the past week) that belonged to
    another account than the shop's, for a readiness or inbox check to report: when it is
    the only account seen, TIKTOK_BUSINESS_ID is likely not the account's OAuth `open_id`
    and every message is being ignored. None when there was none, or when it is the shop's
    account now (the setting was fixed, or the account connected, since)."""
    raw = await redis.get(redis_keys.TIKTOK_OTHER_ACCOUNT)
    if raw is None:
        return None
    seen = raw.decode() if isinstance(raw, bytes) else str(raw)
    return None if seen == await account.business_id() else seen


class _BrainFailed(Exception):
    """The brain raised mid-turn. The turn's transaction is rolled back with whatever the
    brain had written (a waitlist entry, a changed size), and the turn is answered again
    in a new one, with an apology instead of the brain."""

    def __init__(self, event_ids: frozenset[str]) -> None:
        super().__init__("the brain failed mid-turn")
        self.event_ids = event_ids


@dataclass
class _TurnStep:
    deliveries: list[int] = field(default_factory=list)
    claimed_first: ClaimOutcome | None = None  # the first delivery, claimed in the turn
    handoff_reason: str | None = None
    more_pending: bool = False
    answered: tuple[str, str] | None = None  # (intent, router layer), counted once committed


# What the caller of `InboundPipeline.handle` adds to the pipeline that finishes an event.
FinishWith = Callable[[Pipeline], None]


@dataclass
class _Finishing:
    """What `handle` writes to Redis once the event is finished."""

    marker: str | None = None
    queued_echo: tuple[str, str] | None = None  # (conversation id, TikTok message id)
    turns_answered: list[tuple[str, str]] = field(default_factory=list)  # (intent, layer)


@dataclass
class InboundPipeline:
    settings: Settings
    session_factory: SessionFactory
    redis: aioredis.Redis
    brain: Brain
    enqueue_deliveries: EnqueueDeliveries
    notify_staff: NotifyStaff
    delivers_now: DeliversNow | None = None

    def __post_init__(self) -> None:
        self.window = WindowService(self.redis, self.settings)
        self.account = BusinessAccount(self.settings, self.redis, self.session_factory)

    async def handle(self, body: str, finish_with: FinishWith | None = None) -> Outcome:
        """Handle one webhook event. Whatever the outcome, its bookkeeping in Redis (the
        event's handled marker, a queued echo forgotten, and what the caller adds through
        `finish_with`) goes in one pipeline, once everything is committed."""
        finishing = _Finishing()
        outcome = await self._handle(body, finishing)
        if finishing.marker is None and finishing.queued_echo is None and finish_with is None:
            return outcome
        async with self.redis.pipeline(transaction=False) as finish:
            if finishing.marker is not None:
                # Set only once everything is committed: a worker that dies earlier leaves
                # no marker, so the redelivery does the work instead of skipping it.
                ttl = self.settings.idempotency_ttl_hours * 3600
                finish.set(finishing.marker, outcome.value, ex=ttl, nx=True)
            if finishing.queued_echo is not None:
                echoes.forget_queued_with(finish, *finishing.queued_echo)
            for intent, layer in finishing.turns_answered:
                count_turn_answered(finish, intent, layer)
            if finish_with is not None:
                finish_with(finish)
            await finish.execute()
        return outcome

    async def _handle(self, body: str, finishing: _Finishing) -> Outcome:
        raw = body.encode("utf-8", errors="surrogateescape")
        envelope = parse_envelope(raw)
        # The shop's account and a message's handled marker, in one round trip. Whose event
        # it is is still decided first: content that is no message is an error (raised
        # below) only in an event of the shop's account.
        content = _message_in(envelope)
        seen = None if content is None else redis_keys.event_handled(event_id_for(raw, content))
        if envelope.user_openid is not None and seen is not None:
            shop_account, handled = await self.account.business_id_with(seen)
        else:
            shop_account = await self.account.business_id() if envelope.user_openid else None
            handled = None if seen is None else await self.redis.get(seen)
        if await self._for_other_account(envelope, shop_account):
            return Outcome.OTHER_ACCOUNT
        if envelope.event == EventType.AUTHORIZATION_REMOVED:
            await self._authorization_removed(envelope)
            return Outcome.IGNORED
        if envelope.event not in MESSAGE_EVENTS:
            self._log_other_event(envelope)
            return Outcome.IGNORED
        if content is None:
            content = parse_content(envelope)  # raises what made it no message above
        event_id = event_id_for(raw, content)
        marker = redis_keys.event_handled(event_id)
        structlog.contextvars.bind_contextvars(
            event_id=event_id, conversation_id=content.conversation_id
        )
        if envelope.event == EventType.SEND and content.message_id is not None:
            # The webhook queued this echo as one that may confirm a send whose answer was
            # lost (echoes.py): handled or a duplicate, it is forgotten.
            finishing.queued_echo = (content.conversation_id, content.message_id)
        if handled is not None:
            log.info("event_duplicate", source="redis")
            return Outcome.DUPLICATE
        if envelope.event == EventType.SEND:
            outcome = await self._handle_echo(event_id, content)
        elif content.type not in ANSWERED_TYPES:
            outcome = await self._record_unanswered(event_id, content)
        else:
            outcome = await self._handle_customer_message(event_id, content, finishing)
        finishing.marker = marker
        return outcome

    async def _for_other_account(self, envelope: WebhookEnvelope, shop_account: str | None) -> bool:
        """Whether the event belongs to another app or account than the configured ones
        (`shop_account`: the shop's business id, read when the event names an account).

        One callback URL receives the events of every account that authorised the app (a
        test account, a second shop): only the configured account's are the shop's. An
        event without `user_openid` (older payloads) is taken as the configured account's."""
        other_app = envelope.client_key != self.settings.tiktok_client_key
        other_account = envelope.user_openid is not None and envelope.user_openid != shop_account
        if not (other_app or other_account):
            return False
        log.warning(
            "event_for_other_account",
            tiktok_event=envelope.event,
            client_key=envelope.client_key,
            expected_client_key=self.settings.tiktok_client_key,
            user_openid=envelope.user_openid,
            expected_user_openid=shop_account,
        )
        await WorkerMetrics(self.redis).event_for_other_account(
            "user_openid" if other_account else "client_key"
        )
        if other_account:
            await self.redis.set(
                redis_keys.TIKTOK_OTHER_ACCOUNT,
                envelope.user_openid or "",
                ex=OTHER_ACCOUNT_MEMORY_SECONDS,
            )
        return True

    async def _authorization_removed(self, envelope: WebhookEnvelope) -> None:
        """The shop disconnected the app: every send fails from now on. Replies wait in the
        outbox until someone reconnects (`tiktok.connection`); staff are told once."""
        newly = await mark_disconnected(self.redis)
        log.error(
            "tiktok_authorization_removed",
            user_openid=envelope.user_openid,
            already_known=not newly,
        )
        if newly:
            await self.notify_staff(None, DISCONNECTED_NOTICE)

    @staticmethod
    def _log_other_event(envelope: WebhookEnvelope) -> None:
        known = envelope.event in set(EventType)
        log.info("event_ignored", tiktok_event=envelope.event, known=known)

    async def _record_unanswered(self, event_id: str, content: MessageContent) -> Outcome:
        """A reaction, or a type the bot does not know: recorded for staff, never answered,
        and the window and quota are left alone. Whether TikTok counts a reaction as a
        customer message is undocumented: refreshing the window for one could let the bot
        reply into a window TikTok has closed."""
        known = content.type == ContentType.REACTION
        reason = (
            "a reaction: never answered"
            if known
            else "a message type the bot does not know: recorded, not answered"
        )
        async with transaction(self.session_factory) as session:
            conversation, _ = await ConversationRepository(session).ensure_locked(
                content.conversation_id, content.from_user.id, content.sender
            )
            recorded = await MessageRepository(session).record_event(
                Direction.INBOUND,
                {
                    "conversation_id": conversation.id,
                    "event_id": event_id,
                    "message_type": content.type[:MESSAGE_TYPE_CHARS],
                    "text": content.said,
                    "payload": content.model_dump(mode="json", by_alias=True),
                    "entities": {},
                    "status": MessageStatus.IGNORED,
                    "status_reason": reason,
                    "sent_at": _utc_from_ms(content.timestamp),
                },
            )
        if recorded is None:
            log.info("event_duplicate", source="database")
            return Outcome.DUPLICATE
        log.info("message_not_answered", message_type=content.type, known_type=known)
        return Outcome.IGNORED

    async def _handle_customer_message(
        self, event_id: str, content: MessageContent, finishing: _Finishing
    ) -> Outcome:
        conversation, message, step = await self._until_answered(
            lambda apologise: self._record_and_answer(event_id, content, apologise)
        )
        if message is None:
            log.info("event_duplicate", source="database")
        await self._after_commit(conversation, step, finishing)
        if step.more_pending:
            await self.drain(conversation.id, finishing)
        return Outcome.HANDLED if message is not None else Outcome.DUPLICATE

    async def _record_and_answer(
        self, event_id: str, content: MessageContent, apologise: frozenset[str]
    ) -> tuple[Conversation, Message | None, _TurnStep]:
        """Recording the message and answering the oldest pending turn share one
        transaction: the conversation lock is taken before the insert, so whoever holds it
        sees every earlier message that is already recorded."""
        message_type, text = _read_as(content)
        step = _TurnStep()
        async with self._turn_transaction(step) as session:
            conversation, customer, created = await ConversationRepository(
                session
            ).locked_or_created(content.conversation_id, content.from_user.id, content.sender)
            window_end = self.window.opened_until(content.timestamp)
            message, others_waiting = await MessageRepository(session).record_inbound(
                conversation.id,
                event_id,
                message_type,
                text,
                content.model_dump(mode="json", by_alias=True),
                _utc_from_ms(content.timestamp),
                window_end,
            )
            if message is not None and window_end is not None:
                await self.window.open(content.from_user.id, window_end)
            # Nothing else waiting (always so in a conversation created just now): the new
            # message is the turn, and the pending ones need not be read.
            alone = created or not others_waiting
            pending = [message] if message is not None and alone else None
            await self._answer_next_turn(session, conversation, customer, step, apologise, pending)
        return conversation, message, step

    @asynccontextmanager
    async def _turn_transaction(self, step: _TurnStep) -> AsyncIterator[AsyncSession]:
        """A turn's transaction; when it fails after claiming its first reply ahead, what
        the claim did outside the database (its quota slot, in Redis) is undone."""
        try:
            async with transaction(self.session_factory) as session:
                yield session
        except BaseException:
            if self.delivers_now is not None and step.claimed_first is not None:
                await self.delivers_now.give_back(step.claimed_first)
            raise

    async def drain(self, conversation_id: int, finishing: _Finishing | None = None) -> None:
        """Handle every pending message of the conversation, oldest first, turn by turn."""
        while True:
            answered = await self._until_answered(
                lambda apologise: self._answer_locked(conversation_id, apologise)
            )
            if answered is None:
                return
            conversation, step = answered
            await self._after_commit(conversation, step, finishing)
            if not step.more_pending:
                return

    async def _answer_locked(
        self, conversation_id: int, apologise: frozenset[str]
    ) -> tuple[Conversation, _TurnStep] | None:
        step = _TurnStep()
        async with self._turn_transaction(step) as session:
            locked = await ConversationRepository(session).get_for_update(conversation_id)
            if locked is None:
                return None
            conversation, customer = locked
            await self._answer_next_turn(session, conversation, customer, step, apologise)
        return conversation, step

    @staticmethod
    async def _until_answered(attempt: Callable[[frozenset[str]], Awaitable[T]]) -> T:
        """Run `attempt` (one turn's transaction). When the brain fails mid-turn, the
        transaction is gone with what it wrote, and the turn is attempted again with the
        failed turn's events to be answered with an apology."""
        apologise: frozenset[str] = frozenset()
        while True:
            try:
                return await attempt(apologise)
            except _BrainFailed as failed:
                apologise |= failed.event_ids

    async def _answer_next_turn(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        step: _TurnStep,
        apologise: frozenset[str] = frozenset(),
        pending: Sequence[Message] | None = None,
    ) -> None:
        """Answer the conversation's next turn into `step`. `apologise`: the events of a
        turn the brain failed on; that turn is answered with an apology, not by the brain
        again. `pending`: the conversation's unanswered messages when the caller knows them
        (else they are read)."""
        if pending is None:
            pending = await MessageRepository(session).pending_inbound(conversation.id)
        if not pending:
            return
        turn = self._first_turn(pending)
        step.more_pending = len(pending) > len(turn)
        failed = not apologise.isdisjoint(m.event_id for m in turn if m.event_id)
        await self._answer_turn(session, conversation, customer, turn, step, failed=failed)

    async def _after_commit(
        self, conversation: Conversation, step: _TurnStep, finishing: _Finishing | None
    ) -> None:
        """`finishing`: the event's bookkeeping, when a handled event is being finished;
        the turn's count goes into it rather than into a Redis round trip of its own."""
        if step.answered is not None:
            if finishing is not None:
                finishing.turns_answered.append(step.answered)
            else:
                await WorkerMetrics(self.redis).turn_answered(*step.answered)
        if step.handoff_reason is not None:
            await self.notify_staff(conversation, step.handoff_reason)
        if step.deliveries:
            # After commit: a worker never sends a reply whose cause was rolled back.
            # If this enqueue fails, the outbox sweeper delivers the rows later.
            try:
                if self.delivers_now is not None:
                    await self.delivers_now.deliver(step.deliveries, step.claimed_first)
                else:
                    await self.enqueue_deliveries(step.deliveries)
            except Exception as error:
                log.warning("delivery_enqueue_failed", error=repr(error), outbox=step.deliveries)

    def _first_turn(self, pending: Sequence[Message]) -> list[Message]:
        turn = [pending[0]]
        for message in pending[1:]:
            previous = turn[-1]
            if (
                message.message_type != "text"
                or previous.message_type != "text"
                or message.sent_at is None
                or previous.sent_at is None
                or (message.sent_at - previous.sent_at).total_seconds()
                > self.settings.burst_gap_seconds
            ):
                break
            turn.append(message)
        return turn

    async def _answer_turn(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        turn: list[Message],
        step: _TurnStep,
        *,
        failed: bool = False,
    ) -> None:
        last = turn[-1]
        now = utc_now()
        messages = MessageRepository(session)
        if conversation.mode is ConversationMode.HUMAN:
            idle = timedelta(hours=self.settings.human_inactivity_timeout_hours)
            if transitions.handoff_lapsed(conversation, now, idle):
                transitions.hand_back(conversation)
                log.info("handoff_expired")
            else:
                silenced = "human mode: the bot stays silent"
                await messages.settle(SettledTurn.of_turn(conversation, turn, silenced))
                log.info("turn_silenced", reason="human_mode")
                return
        last_stamp = last.sent_at.timestamp() * 1000 if last.sent_at else unix_now() * 1000
        if self.window.window_end_for(int(last_stamp)) <= unix_now():
            reason = "window closed before the message was handled: nothing sent"
            await messages.settle(SettledTurn.of_turn(conversation, turn, reason))
            log.info("turn_silenced", reason="window_closed")
            return

        result = (
            TurnResult("other", "pattern", replies=[Reply(replies.SNAG)])
            if failed
            else await self._brain_result(session, conversation, customer, turn)
        )
        # The window after the brain (which may have taken seconds, while staff or a notice
        # spent replies), and TikTok's disconnection flag for the claim below, together.
        state, (disconnected,) = await self.window.state_with(
            customer.tiktok_user_id, conversation, redis_keys.TIKTOK_DISCONNECTED
        )
        planned = expand_replies(result.replies, self.settings.max_text_chars)
        handoff_reason = (
            (result.handoff_reason or "customer asked for a person") if result.handoff else None
        )
        if state.open and state.replies_left <= len(planned) and not result.handoff:
            # Keep the last slot of the quota for telling the customer a person follows up.
            planned = [Reply(replies.QUOTA_HANDOFF)] if state.replies_left >= 1 else []
            handoff_reason = "reply quota nearly spent"
        settled = SettledTurn.of_turn(
            conversation,
            turn,
            intent=result.intent,
            router_source=result.router_source,
            entities=result.entities,
        )
        claimed_at = (
            None
            if self.delivers_now is None
            else self.delivers_now.claiming_at(disconnected is not None)
        )
        queued, claimable = await queue_turn_replies(
            session,
            conversation,
            planned,
            max_text_chars=self.settings.max_text_chars,
            settling=settled,
            claim_first_at=claimed_at,
        )
        step.deliveries.extend(queued)
        if self.delivers_now is not None and claimable is not None and claimed_at is not None:
            step.claimed_first = await self.delivers_now.claimed_ahead(
                session, claimable, claimed_at
            )
        if handoff_reason is not None:
            transitions.hand_over(session, conversation, now, handoff_reason)
        step.deliveries.extend(result.other_outbox_ids)
        log.info(
            "turn_answered",
            intent=result.intent,
            router_source=result.router_source,
            replies=len(planned),
            messages=len(turn),
        )
        step.handoff_reason = handoff_reason
        step.answered = (result.intent, result.router_source)

    async def _brain_result(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        turn: list[Message],
    ) -> TurnResult:
        try:
            return await self.brain.respond(session, conversation, customer, turn)
        except DBAPIError:
            raise  # the database itself failed: the task's retry handles that
        except Exception as error:
            log.exception("shop_brain_failed", conversation_id=conversation.id)
            raise _BrainFailed(frozenset(m.event_id for m in turn if m.event_id)) from error

    async def _handle_echo(self, event_id: str, content: MessageContent) -> Outcome:
        """A message sent from the shop's side, echoed. Our own sends are settled from our
        records; every other one is recorded, and only a person's typing (tiktok-api.md,
        "Who sent a message") takes the conversation over: TikTok's automations (a welcome
        message starts every new chat) and another tool on the account do not."""
        tiktok_message_id = content.message_id or event_id
        if await self.redis.get(redis_keys.sent_by_tiktok_id(tiktok_message_id)) is not None:
            return Outcome.ECHO
        body = content.text.body if content.text is not None else None
        customer_id = content.to_user.id if content.to_user is not None else None
        if customer_id is None:
            log.warning("echo_without_recipient")
            return Outcome.IGNORED
        author = content.echo_author()
        # A reaction is no message: it neither speaks for the shop nor spends the quota.
        spends_quota = content.type != ContentType.REACTION
        takes_over = spends_quota and author is EchoAuthor.STAFF_APP
        async with transaction(self.session_factory) as session:
            messages = MessageRepository(session)
            conversation, customer = await ConversationRepository(session).ensure_locked(
                content.conversation_id, customer_id, content.recipient
            )
            # Taking the in-flight rows' locks first waits out a delivery that is recording
            # this very send right now; only then is "not ours" a safe conclusion.
            in_flight = await OutboxRepository(session).in_flight_for(conversation.id)
            if await messages.outbound_by_tiktok_id(tiktok_message_id) is not None or (
                await self.redis.get(redis_keys.sent_by_tiktok_id(tiktok_message_id)) is not None
            ):
                return Outcome.ECHO
            # Text alone is weak evidence: only an echo the bot may have sent (through the
            # API, or of unknown source) confirms an in-flight row, never a person's typing
            # or an automation that happens to say the same.
            for entry in in_flight if content.could_be_ours else ():
                sent = await messages.get(entry.message_id)
                if sent is not None and sent.text == body and sent.message_type == content.type:
                    # A send whose result we never recorded (worker died mid-call) is
                    # confirmed by its echo.
                    await transitions.mark_sent(
                        session,
                        entry.id,
                        sent.id,
                        tiktok_message_id=tiktok_message_id,
                        sent_at=_utc_from_ms(content.timestamp),
                    )
                    log.info("send_confirmed_by_echo", outbox_id=entry.id)
                    return Outcome.ECHO
            recorded = await messages.record_event(
                Direction.OUTBOUND,
                {
                    "conversation_id": conversation.id,
                    "event_id": event_id,
                    "message_type": content.type[:MESSAGE_TYPE_CHARS],
                    "text": body,
                    "payload": content.model_dump(mode="json", by_alias=True),
                    "entities": {},
                    "status": MessageStatus.SENT,
                    "sent_at": _utc_from_ms(content.timestamp),
                    "sent_by": author,
                    "tiktok_message_id": tiktok_message_id,
                },
            )
            if recorded is None:
                # Its event is recorded already: counted and acted on then, not twice.
                log.info("event_duplicate", source="database")
                return Outcome.DUPLICATE
            if takes_over:
                transitions.take_over(conversation, utc_now())
            if spends_quota:
                # TikTok counts every message the business sends against the window's
                # quota, whoever sent it: its automations and another tool spend it as staff
                # do. Left uncounted, the bot would believe it has slots TikTok no longer
                # grants, and the last one, kept for the hand-off notice, would be refused.
                conversation.replies_in_window += 1
        if spends_quota:
            await self.window.count_sent_elsewhere(customer.tiktok_user_id, conversation)
        if takes_over:
            log.info("staff_took_over", via="tiktok_app", source=content.source)
        else:
            log.info(
                "echo_recorded",
                author=author,
                source=content.source,
                auto_message_type=content.auto_message_type,
                message_type=content.type,
            )
        return Outcome.ECHO
