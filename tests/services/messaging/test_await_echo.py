"""A reply whose send may have gone out waits for TikTok's echo: still `sending`, with the
moment it is given up on without one and the reason, told apart from a call in progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import OutboxEntry, OutboxStatus
from app.db.repositories.conversations import ConversationRepository, OutboxRepository
from app.services.messaging import transitions

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_waiting_for_the_echo_keeps_the_reply_sending_with_its_deadline_and_reason() -> None:
    entry = OutboxEntry(status=OutboxStatus.SENDING, attempts=1, claimed_at=NOW)
    assert not transitions.awaiting_echo(entry)  # the call is under way
    transitions.await_echo(entry, NOW + timedelta(minutes=5), "timeout calling /send")
    assert (entry.status, entry.attempts, entry.next_attempt_at, entry.last_error) == (
        OutboxStatus.SENDING,
        1,
        NOW + timedelta(minutes=5),
        "timeout calling /send",
    )
    assert transitions.awaiting_echo(entry)


async def test_a_new_claim_is_not_mistaken_for_one_waiting_for_its_echo(
    session: AsyncSession,
) -> None:
    conversation, _ = await ConversationRepository(session).ensure_locked("conv-1", "user-1", None)
    outbox = OutboxRepository(session)
    outbox_id = await outbox.queue(conversation.id, "text", "hello", {}, "bot")
    entry = await outbox.get_for_update(outbox_id)
    assert entry is not None
    transitions.retry_later(entry, NOW + timedelta(seconds=30), "HTTP 503")
    await session.flush()

    conversation.replies_in_window = 2  # two replies went out in this window already
    await session.flush()
    claimed = await transitions.claim(session, outbox_id, NOW + timedelta(seconds=30))
    assert claimed is not None and claimed.conversation_id == conversation.id
    assert claimed.claimed and claimed.replies_in_window == 2  # the count before this one

    await session.refresh(entry)
    await session.refresh(conversation)
    assert (entry.status, entry.attempts, entry.claimed_at, entry.next_attempt_at) == (
        OutboxStatus.SENDING,
        1,
        NOW + timedelta(seconds=30),
        None,
    )
    assert not transitions.awaiting_echo(entry)
    assert conversation.replies_in_window == 3


async def test_a_reply_behind_an_earlier_one_is_not_claimed(session: AsyncSession) -> None:
    conversation, _ = await ConversationRepository(session).ensure_locked("conv-1", "user-1", None)
    outbox = OutboxRepository(session)
    first = await outbox.queue(conversation.id, "text", "first", {}, "bot")
    second = await outbox.queue(conversation.id, "text", "second", {}, "bot")
    behind = await transitions.claim(session, second, NOW)
    assert behind is not None and not behind.claimed and behind.earlier_waiting == 1
    entry = await outbox.get_for_update(second)
    assert entry is not None
    await session.refresh(entry)
    await session.refresh(conversation)
    assert (entry.status, entry.attempts, conversation.replies_in_window) == (
        OutboxStatus.PENDING,
        0,
        0,
    )
    ahead = await transitions.claim(session, first, NOW)
    assert ahead is not None and ahead.claimed and ahead.earlier_waiting == 0
    # Already claimed: read again, not claimed twice.
    again = await transitions.claim(session, first, NOW)
    assert again is not None and again.status is OutboxStatus.SENDING and not again.claimed
    await session.refresh(conversation)
    assert conversation.replies_in_window == 1


@pytest.mark.parametrize(
    "status", [OutboxStatus.PENDING, OutboxStatus.SENT, OutboxStatus.UNKNOWN, OutboxStatus.FAILED]
)
def test_only_a_reply_being_sent_can_wait_for_its_echo(status: OutboxStatus) -> None:
    entry = OutboxEntry(status=status, next_attempt_at=None)
    with pytest.raises(ValueError):
        transitions.await_echo(entry, NOW, "timeout")
    assert entry.status is status and not transitions.awaiting_echo(entry)


def test_the_reason_is_cut_to_the_column_limit() -> None:
    entry = OutboxEntry(status=OutboxStatus.SENDING)
    transitions.await_echo(entry, NOW, "x" * (transitions.MAX_REASON_CHARS + 10))
    assert entry.last_error == "x" * transitions.MAX_REASON_CHARS
