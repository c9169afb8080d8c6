"""What the shop says unasked (a hold's reminder, a sale's confirmation, a waitlist or drop
notice), inside TikTok's rules and the shop's manners.

TikTok's rules hold for every kind: only inside the customer's 48 h window, and never with
the last slot of the window's quota, which is kept for telling the customer a person will
follow up (PRODUCT.md §2). What may not go out for those reasons is recorded as a message
that was not sent, with the reason, so the shop sees what the window costs; it is never
queued. A courtesy message (a reminder, an alert) also waits out the shop's quiet hours,
reaches a customer at most once per PROACTIVE_MIN_GAP_HOURS, and is not sent while a person
has the conversation: those only postpone it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.logging import get_logger
from app.db.models import Conversation, ConversationMode, Customer, ProactiveKind
from app.db.repositories.conversations import MessageRepository
from app.services.messaging.outbound import expand_replies, queue_replies
from app.services.messaging.window import WindowReader
from app.services.turns import Reply

log = get_logger(__name__)

# Courtesy kinds: the customer did not ask for this message at this moment.
COURTESY = frozenset({ProactiveKind.HOLD_REMINDER, ProactiveKind.DROP_ALERT})
# Only the confirmation of the customer's own purchase may take the quota's last slot: every
# other kind leaves it for telling the customer a person will follow up.
_MAY_TAKE_LAST_SLOT = frozenset({ProactiveKind.SALE_CONFIRMATION})
_QUIET_STEP = timedelta(minutes=15)


class NotAllowed(StrEnum):
    """Why a message may not go out at all: recorded, counted, never retried."""

    WINDOW_CLOSED = "window closed: TikTok allows messages only within 48 h of the customer's last"
    QUOTA_KEPT = "reply quota nearly spent: its last message is kept for a person's follow-up"


class NotNow(StrEnum):
    """Why a courtesy message waits: the caller tries again later."""

    QUIET_HOURS = "quiet_hours"
    RECENTLY_MESSAGED = "recently_messaged"
    WITH_A_PERSON = "with_a_person"


class Outcome(StrEnum):
    QUEUED = "queued"
    COUNTED = "counted"  # not allowed: recorded as not sent
    LATER = "later"


@dataclass
class Said:
    outcome: Outcome
    outbox_ids: list[int] = field(default_factory=list)
    reason: str | None = None


class ProactivePolicy:
    def __init__(self, settings: Settings, window: WindowReader) -> None:
        self.settings = settings
        self.window = window
        self._zone = ZoneInfo(settings.shop_timezone)

    def quiet_at(self, moment: datetime) -> bool:
        start, end = self.settings.quiet_hours_start, self.settings.quiet_hours_end
        if start == end:
            return False
        hour = moment.astimezone(self._zone).hour
        if start < end:
            return start <= hour < end
        return hour >= start or hour < end

    def last_moment_before_quiet(self, moment: datetime) -> datetime:
        """`moment`, or when it falls in quiet hours, the last quarter hour before they began
        (a reminder due at 2 am goes out the evening before, not after the hold lapsed)."""
        earliest = moment - timedelta(days=1)
        while self.quiet_at(moment) and moment > earliest:
            moment -= _QUIET_STEP
        return moment

    async def say(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        kind: ProactiveKind,
        replies: Sequence[Reply],
        now: datetime,
    ) -> Said:
        """Queue the message if the rules allow it now; the caller enqueues the outbox ids
        after its commit."""
        courtesy = kind in COURTESY
        if courtesy:
            waiting = self._not_now(conversation, customer, now)
            if waiting is not None:
                return Said(Outcome.LATER, reason=waiting.value)
        # Every message it takes, and one more: the slot kept for a hand-off.
        needed = len(expand_replies(replies, self.settings.max_text_chars)) + int(
            kind not in _MAY_TAKE_LAST_SLOT
        )
        refusal = await self._not_allowed(conversation, customer, needed, now)
        if refusal is not None:
            messages = MessageRepository(session)
            for reply in replies:
                if reply.text is not None:
                    await messages.record_unsent(conversation.id, reply.text, kind, refusal.value)
            log.info(
                "proactive_not_sent",
                kind=kind,
                reason=refusal.name.lower(),
                conversation_id=conversation.tiktok_conversation_id,
            )
            return Said(Outcome.COUNTED, reason=refusal.value)
        outbox_ids = await queue_replies(
            session,
            conversation,
            replies,
            max_text_chars=self.settings.max_text_chars,
            proactive_kind=kind,
        )
        if courtesy:
            customer.last_proactive_at = now
        log.info("proactive_queued", kind=kind, conversation_id=conversation.tiktok_conversation_id)
        return Said(Outcome.QUEUED, outbox_ids)

    def _not_now(
        self, conversation: Conversation, customer: Customer, now: datetime
    ) -> NotNow | None:
        if conversation.mode is ConversationMode.HUMAN:
            return NotNow.WITH_A_PERSON
        if self.quiet_at(now):
            return NotNow.QUIET_HOURS
        gap = timedelta(hours=self.settings.proactive_min_gap_hours)
        if customer.last_proactive_at is not None and now - customer.last_proactive_at < gap:
            return NotNow.RECENTLY_MESSAGED
        return None

    async def _not_allowed(
        self, conversation: Conversation, customer: Customer, needed: int, now: datetime
    ) -> NotAllowed | None:
        state = await self.window.state(customer.tiktok_user_id, conversation)
        # Judged at the moment decided for (a sweep may decide for a later one).
        if not state.open or state.ends_at is None or state.ends_at <= now.timestamp():
            return NotAllowed.WINDOW_CLOSED
        if state.replies_left < needed:
            return NotAllowed.QUOTA_KEPT
        return None
