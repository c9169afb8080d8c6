"""Every change of a conversation's mode and of a reply's delivery state, in one place.

Who decides differs (the customer asks for a person, staff reply or hand back, the quota
runs low, an idle hand-off lapses, a worker dies mid-send, TikTok's answer to a send is
lost); what each state means must not: "human" always carries the moment the person took
over (the inactivity timeout counts from it), "sent" always carries TikTok's message id and
when TikTok took it, and a reply that did not go out always says why.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    Conversation,
    ConversationMode,
    Message,
    MessageStatus,
    OutboxEntry,
    OutboxStatus,
)
from app.db.repositories.conversations import Claimable, HandoffRepository, OutboxRepository

MAX_REASON_CHARS = 2000


def take_over(conversation: Conversation, now: datetime) -> None:
    """A person answers this conversation from now on; the bot stays silent."""
    conversation.mode = ConversationMode.HUMAN
    conversation.human_since = now


def hand_over(
    session: AsyncSession, conversation: Conversation, now: datetime, reason: str
) -> None:
    """The bot hands the conversation to a person (the customer asked, an answer needs one,
    the quota runs low): recorded, so the shop can see how long a person took to reply."""
    take_over(conversation, now)
    HandoffRepository(session).add(conversation.id, now, reason)


def hand_back(conversation: Conversation) -> None:
    """The bot answers again."""
    conversation.mode = ConversationMode.BOT
    conversation.human_since = None


def handoff_lapsed(conversation: Conversation, now: datetime, idle: timedelta) -> bool:
    """A person took over and then left it alone longer than the inactivity timeout."""
    return (
        conversation.mode is ConversationMode.HUMAN
        and conversation.human_since is not None
        and now - conversation.human_since > idle
    )


async def claim(session: AsyncSession, outbox_id: int, now: datetime) -> Claimable | None:
    """A worker is about to call TikTok: from here until its result is recorded the outcome
    is uncertain (the sweeper settles it from evidence if the worker dies). A pending row
    with no earlier reply of its conversation still to go becomes `sending`, one more
    attempt, claimed now, and the conversation's mirror counts the quota slot the send
    takes (`unclaim_refused` gives it back when the window refuses the send). Its
    `next_attempt_at` is cleared: on a `sending` row a time there means "waiting for
    TikTok's echo" (`await_echo`), which the previous attempt's "not before" must not read
    as. None when another worker holds the row; `Claimable.claimed` says whether this one
    claimed it."""
    return await OutboxRepository(session).claim(outbox_id, now)


def unclaim_refused(
    entry: OutboxEntry, message: Message, conversation: Conversation, reason: str
) -> None:
    """The window or its quota refused a claimed reply: it will not go out, and the slot
    the claim counted in the conversation's mirror is given back."""
    mark_not_delivered(entry, message, OutboxStatus.NOT_SENT, reason)
    conversation.replies_in_window = max(0, conversation.replies_in_window - 1)


def requeue_by_hand(entry: OutboxEntry) -> None:
    """A person sends a parked reply again: a fresh start, attempts included."""
    entry.status = OutboxStatus.PENDING
    entry.attempts = 0
    entry.next_attempt_at = None


async def mark_sent(
    session: AsyncSession,
    outbox_id: int,
    message_id: int,
    *,
    tiktok_message_id: str,
    sent_at: datetime,
) -> None:
    """TikTok took the reply: from its answer, its sent marker, or its echo. One statement
    (the outbox row and its message together), so it may run on its own
    (`db.session.single_statement`)."""
    await OutboxRepository(session).mark_sent(outbox_id, message_id, tiktok_message_id, sent_at)


def mark_not_delivered(
    entry: OutboxEntry, message: Message, status: OutboxStatus, reason: str
) -> None:
    """The reply will not go out: refused by policy (`not_sent`) or by TikTok (`failed`)."""
    if status not in (OutboxStatus.NOT_SENT, OutboxStatus.FAILED):
        raise ValueError(f"{status} is not an outcome of a reply that did not go out")
    entry.status = status
    entry.last_error = reason[:MAX_REASON_CHARS]
    message.status = (
        MessageStatus.NOT_SENT if status is OutboxStatus.NOT_SENT else MessageStatus.FAILED
    )
    message.status_reason = reason[:MAX_REASON_CHARS]


def retry_later(entry: OutboxEntry, at: datetime, reason: str) -> None:
    """Back in the queue, not before `at`."""
    entry.status = OutboxStatus.PENDING
    entry.next_attempt_at = at
    entry.last_error = reason[:MAX_REASON_CHARS]


def await_echo(entry: OutboxEntry, settle_by: datetime, reason: str) -> None:
    """The call failed after the request went out (a timeout, a 5xx): TikTok may have
    delivered it. The row stays `sending`, its quota slot kept, until TikTok's echo confirms
    it or, with none by `settle_by`, the sweeper sends it again (or parks it as unknown)."""
    if entry.status is not OutboxStatus.SENDING:
        raise ValueError(f"only a reply being sent can wait for its echo, not a {entry.status} one")
    entry.next_attempt_at = settle_by
    entry.last_error = reason[:MAX_REASON_CHARS]


def awaiting_echo(entry: OutboxEntry) -> bool:
    """Whether a `sending` row's call is over and only its echo is awaited (`await_echo`),
    rather than a worker being, or having died, in the middle of the call."""
    return entry.status is OutboxStatus.SENDING and entry.next_attempt_at is not None


def mark_outcome_unknown(entry: OutboxEntry, reason: str) -> None:
    """Nobody can tell whether TikTok took it: a person decides (never resent by itself)."""
    entry.status = OutboxStatus.UNKNOWN
    entry.last_error = reason[:MAX_REASON_CHARS]
