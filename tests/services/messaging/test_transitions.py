"""The state changes every decision-maker goes through: what each state carries (the
moment of a take-over, the reason a reply did not go out) must not depend on who decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.db.models import (
    Conversation,
    ConversationMode,
    Message,
    MessageStatus,
    OutboxEntry,
    OutboxStatus,
)
from app.services.messaging import transitions

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IDLE = timedelta(hours=24)


def bot_conversation() -> Conversation:
    return Conversation(mode=ConversationMode.BOT, human_since=None)


def a_reply() -> tuple[OutboxEntry, Message]:
    message = Message(status=MessageStatus.PENDING, status_reason=None)
    return OutboxEntry(status=OutboxStatus.SENDING, last_error=None), message


def test_take_over_silences_the_bot_from_that_moment() -> None:
    conversation = bot_conversation()
    transitions.take_over(conversation, NOW)
    assert (conversation.mode, conversation.human_since) == (ConversationMode.HUMAN, NOW)


def test_a_second_take_over_restarts_the_timeout() -> None:
    conversation = bot_conversation()
    transitions.take_over(conversation, NOW)
    transitions.take_over(conversation, NOW + timedelta(hours=5))
    assert conversation.human_since == NOW + timedelta(hours=5)


def test_hand_back_forgets_when_the_person_took_over() -> None:
    conversation = bot_conversation()
    transitions.take_over(conversation, NOW)
    transitions.hand_back(conversation)
    assert (conversation.mode, conversation.human_since) == (ConversationMode.BOT, None)


def test_a_handoff_lapses_only_strictly_after_the_timeout() -> None:
    conversation = bot_conversation()
    transitions.take_over(conversation, NOW)
    assert not transitions.handoff_lapsed(conversation, NOW + IDLE, IDLE)
    assert transitions.handoff_lapsed(conversation, NOW + IDLE + timedelta(microseconds=1), IDLE)


def test_only_a_human_conversation_with_a_take_over_moment_can_lapse() -> None:
    later = NOW + 10 * IDLE
    assert not transitions.handoff_lapsed(bot_conversation(), later, IDLE)
    # A row from before human_since was kept: nobody can tell how long it has been idle.
    unknown_since = Conversation(mode=ConversationMode.HUMAN, human_since=None)
    assert not transitions.handoff_lapsed(unknown_since, later, IDLE)


@pytest.mark.parametrize(
    ("status", "message_status"),
    [
        (OutboxStatus.NOT_SENT, MessageStatus.NOT_SENT),
        (OutboxStatus.FAILED, MessageStatus.FAILED),
    ],
)
def test_a_reply_that_did_not_go_out_says_why(
    status: OutboxStatus, message_status: MessageStatus
) -> None:
    entry, message = a_reply()
    transitions.mark_not_delivered(entry, message, status, "window closed")
    assert (entry.status, entry.last_error) == (status, "window closed")
    assert (message.status, message.status_reason) == (message_status, "window closed")


@pytest.mark.parametrize(
    "status",
    [OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.SENT, OutboxStatus.UNKNOWN],
)
def test_mark_not_delivered_refuses_a_status_that_is_not_an_outcome(
    status: OutboxStatus,
) -> None:
    entry, message = a_reply()
    with pytest.raises(ValueError, match="did not go out"):
        transitions.mark_not_delivered(entry, message, status, "whatever")
    # Refused before anything changed: no half-written state to clean up.
    assert (entry.status, entry.last_error) == (OutboxStatus.SENDING, None)
    assert (message.status, message.status_reason) == (MessageStatus.PENDING, None)


def test_reasons_are_cut_to_what_the_columns_are_meant_to_hold() -> None:
    long = "x" * (transitions.MAX_REASON_CHARS + 500)
    entry, message = a_reply()
    transitions.mark_not_delivered(entry, message, OutboxStatus.FAILED, long)
    assert entry.last_error == message.status_reason == "x" * transitions.MAX_REASON_CHARS
    later = OutboxEntry(status=OutboxStatus.SENDING)
    transitions.retry_later(later, NOW, long)
    assert later.last_error == "x" * transitions.MAX_REASON_CHARS
    unknown = OutboxEntry(status=OutboxStatus.SENDING)
    transitions.mark_outcome_unknown(unknown, long)
    assert unknown.last_error == "x" * transitions.MAX_REASON_CHARS


def test_retry_later_puts_the_reply_back_in_the_queue_not_before_its_time() -> None:
    entry = OutboxEntry(status=OutboxStatus.SENDING, next_attempt_at=None)
    transitions.retry_later(entry, NOW + timedelta(seconds=30), "HTTP 503")
    assert (entry.status, entry.next_attempt_at, entry.last_error) == (
        OutboxStatus.PENDING,
        NOW + timedelta(seconds=30),
        "HTTP 503",
    )


def test_an_unknown_outcome_is_parked_for_a_person_never_rescheduled() -> None:
    entry = OutboxEntry(status=OutboxStatus.SENDING, next_attempt_at=None)
    transitions.mark_outcome_unknown(entry, "worker died mid-call")
    assert (entry.status, entry.last_error) == (OutboxStatus.UNKNOWN, "worker died mid-call")
    assert entry.next_attempt_at is None
