"""From a queued webhook body to committed state and outbox rows.

Ordering: every inbound message is first recorded (idempotent on `event_id`), then the
conversation's pending messages are handled oldest first (by TikTok's timestamp) under
a row lock on the conversation. Whichever worker takes the lock handles everything
pending, so a message never overtakes an earlier one that is already recorded, and
messages recorded together (a burst) can be answered as one turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import redis.asyncio as aioredis
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import redis_keys
from app.core.clock import unix_now, utc_now
from app.core.config import Settings
from app.core.counters import WorkerMetrics
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
    ConversationRepository,
    MessageRepository,
    OutboxRepository,
)
from app.db.session import SessionFactory, transaction
from app.services import replies
from app.services.messaging import transitions
from app.services.messaging.outbound import expand_replies, queue_replies
from app.services.messaging.window import WindowService
from app.services.tiktok.webhook import (
    EventType,
    MessageContent,
    WebhookEnvelope,
    event_id_for,
    parse_content,
    parse_envelope,
)
from app.services.turns import Brain, Reply, TurnResult

log = get_logger(__name__)

EnqueueDeliveries = Callable[[Sequence[int]], Awaitable[None]]
NotifyStaff = Callable[[Conversation, str], Awaitable[None]]


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    ECHO = "echo"


def _utc_from_ms(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


@dataclass
class _TurnStep:
    deliveries: list[int] = field(default_factory=list)
    handoff_reason: str | None = None
    more_pending: bool = False


@dataclass
class InboundPipeline:
    settings: Settings
    session_factory: SessionFactory
    redis: aioredis.Redis
    brain: Brain
    enqueue_deliveries: EnqueueDeliveries
    notify_staff: NotifyStaff

    def __post_init__(self) -> None:
        self.window = WindowService(self.redis, self.settings)

    async def handle(self, body: str) -> Outcome:
        raw = body.encode("utf-8", errors="surrogateescape")
        envelope = parse_envelope(raw)
        if envelope.event not in (EventType.RECEIVE, EventType.SEND):
            log.info("event_ignored", tiktok_event=envelope.event)
            return Outcome.IGNORED
        content = parse_content(envelope)
        event_id = event_id_for(raw, content)
        structlog.contextvars.bind_contextvars(
            event_id=event_id, conversation_id=content.conversation_id
        )
        marker = redis_keys.event_handled(event_id)
        if await self.redis.get(marker) is not None:
            log.info("event_duplicate", source="redis")
            return Outcome.DUPLICATE
        if envelope.event == EventType.SEND:
            outcome = await self._handle_echo(event_id, content)
        else:
            outcome = await self._handle_customer_message(event_id, envelope, content)
        # Set only once everything is committed: a worker that dies earlier leaves no
        # marker, so the redelivery does the work instead of skipping it.
        ttl = self.settings.idempotency_ttl_hours * 3600
        await self.redis.set(marker, outcome.value, ex=ttl, nx=True)
        return outcome

    async def _handle_customer_message(
        self, event_id: str, envelope: WebhookEnvelope, content: MessageContent
    ) -> Outcome:
        # Recording the message and answering the oldest pending turn share one
        # transaction: the conversation lock is taken before the insert, so whoever
        # holds it sees every earlier message that is already recorded.
        async with transaction(self.session_factory) as session:
            conversation, customer = await ConversationRepository(session).ensure_locked(
                content.conversation_id, content.from_user.id, content.sender
            )
            message_id = await MessageRepository(session).record_event(
                Direction.INBOUND,
                {
                    "conversation_id": conversation.id,
                    "event_id": event_id,
                    "message_type": content.type,
                    "text": content.text.body if content.text is not None else None,
                    "payload": content.model_dump(mode="json", by_alias=True),
                    "entities": {},
                    "status": MessageStatus.RECEIVED,
                    "sent_at": _utc_from_ms(content.timestamp),
                },
            )
            if message_id is not None:
                await self.window.refresh(content.from_user.id, content.timestamp, conversation)
            step = await self._answer_next_turn(session, conversation, customer)
        if message_id is None:
            log.info("event_duplicate", source="database")
        await self._after_commit(conversation, step)
        if step.more_pending:
            await self.drain(conversation.id)
        return Outcome.HANDLED if message_id is not None else Outcome.DUPLICATE

    async def drain(self, conversation_id: int) -> None:
        """Handle every pending message of the conversation, oldest first, turn by turn."""
        while True:
            async with transaction(self.session_factory) as session:
                locked = await ConversationRepository(session).get_for_update(conversation_id)
                if locked is None:
                    return
                conversation, customer = locked
                step = await self._answer_next_turn(session, conversation, customer)
            await self._after_commit(conversation, step)
            if not step.more_pending:
                return

    async def _answer_next_turn(
        self, session: AsyncSession, conversation: Conversation, customer: Customer
    ) -> _TurnStep:
        pending = await MessageRepository(session).pending_inbound(conversation.id)
        if not pending:
            return _TurnStep()
        turn = self._first_turn(pending)
        step = _TurnStep(more_pending=len(pending) > len(turn))
        step.handoff_reason = await self._answer_turn(
            session, conversation, customer, turn, step.deliveries
        )
        return step

    async def _after_commit(self, conversation: Conversation, step: _TurnStep) -> None:
        if step.handoff_reason is not None:
            await self.notify_staff(conversation, step.handoff_reason)
        if step.deliveries:
            # After commit: a worker never sends a reply whose cause was rolled back.
            # If this enqueue fails, the outbox sweeper delivers the rows later.
            try:
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
        deliveries: list[int],
    ) -> str | None:
        last = turn[-1]
        now = utc_now()

        def finish(reason: str | None, result: TurnResult | None = None) -> None:
            for message in turn:
                message.status = MessageStatus.PROCESSED
                message.status_reason = reason
                if result is not None:
                    message.intent = result.intent
                    message.router_source = result.router_source
                    message.entities = result.entities

        if conversation.mode is ConversationMode.HUMAN:
            idle = timedelta(hours=self.settings.human_inactivity_timeout_hours)
            if transitions.handoff_lapsed(conversation, now, idle):
                transitions.hand_back(conversation)
                log.info("handoff_expired")
            else:
                finish("human mode: the bot stays silent")
                log.info("turn_silenced", reason="human_mode")
                return None
        last_stamp = last.sent_at.timestamp() * 1000 if last.sent_at else unix_now() * 1000
        if self.window.window_end_for(int(last_stamp)) <= unix_now():
            finish("window closed before the message was handled: nothing sent")
            log.info("turn_silenced", reason="window_closed")
            return None

        result = await self.brain.respond(session, conversation, customer, turn)
        state = await self.window.state(customer.tiktok_user_id, conversation)
        planned = expand_replies(result.replies, self.settings.max_text_chars)
        handoff_reason = (
            (result.handoff_reason or "customer asked for a person") if result.handoff else None
        )
        if state.open and state.replies_left <= len(planned) and not result.handoff:
            # Keep the last slot of the quota for telling the customer a person follows up.
            planned = [Reply(replies.QUOTA_HANDOFF)] if state.replies_left >= 1 else []
            handoff_reason = "reply quota nearly spent"
        deliveries.extend(
            await queue_replies(
                session, conversation, planned, max_text_chars=self.settings.max_text_chars
            )
        )
        if handoff_reason is not None:
            transitions.take_over(conversation, now)
        deliveries.extend(result.other_outbox_ids)
        finish(None, result)
        log.info(
            "turn_answered",
            intent=result.intent,
            router_source=result.router_source,
            replies=len(planned),
            messages=len(turn),
        )
        await WorkerMetrics(self.redis).turn_answered(result.intent, result.router_source)
        return handoff_reason

    async def _handle_echo(self, event_id: str, content: MessageContent) -> Outcome:
        """Our own sends come back as echoes; anything else was typed by staff in the app."""
        tiktok_message_id = content.message_id or event_id
        if await self.redis.get(redis_keys.sent_by_tiktok_id(tiktok_message_id)) is not None:
            return Outcome.ECHO
        body = content.text.body if content.text is not None else None
        customer_id = content.to_user.id if content.to_user is not None else None
        if customer_id is None:
            log.warning("echo_without_recipient")
            return Outcome.IGNORED
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
            for entry in in_flight:
                message = await messages.get(entry.message_id)
                if (
                    message is not None
                    and message.text == body
                    and message.message_type == content.type
                ):
                    # A send whose result we never recorded (worker died mid-call) is
                    # confirmed by its echo.
                    await transitions.mark_sent(
                        session,
                        entry.id,
                        message.id,
                        tiktok_message_id=tiktok_message_id,
                        sent_at=_utc_from_ms(content.timestamp),
                    )
                    log.info("send_confirmed_by_echo", outbox_id=entry.id)
                    return Outcome.ECHO
            await messages.record_event(
                Direction.OUTBOUND,
                {
                    "conversation_id": conversation.id,
                    "event_id": event_id,
                    "message_type": content.type,
                    "text": body,
                    "payload": content.model_dump(mode="json", by_alias=True),
                    "entities": {},
                    "status": MessageStatus.SENT,
                    "sent_at": _utc_from_ms(content.timestamp),
                    "sent_by": "staff_app",
                    "tiktok_message_id": tiktok_message_id,
                },
            )
            transitions.take_over(conversation, utc_now())
            conversation.replies_in_window += 1
        await self.redis.incr(redis_keys.quota(customer.tiktok_user_id))
        log.info("staff_took_over", via="tiktok_app")
        return Outcome.ECHO
