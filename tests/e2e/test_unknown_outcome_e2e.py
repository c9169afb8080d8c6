"""TikTok takes a reply but its answer never reaches the bot (the call times out after the
request went out): the bot must not send the reply again, and TikTok's echo settles it.
Real API and worker processes against the TikTok stand-in, which echoes every send."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import Conversation, Message, OutboxEntry, OutboxStatus
from app.sandbox.control import SandboxControl
from app.sandbox.stack import Stack
from app.services import replies
from tests.conftest import TestServices
from tests.e2e.conftest import E2E_ENV, eventually, module_stack, settle

pytestmark = pytest.mark.e2e

HTTP_TIMEOUT_SECONDS = 1.0
TIKTOK_ANSWERS_AFTER_SECONDS = 3.0
RESEND_AFTER_SECONDS = 30.0

# The module's own stack: the bot gives up on TikTok's answer after a second, and waits
# longer for an echo than this test runs, so only the echo can settle the reply.
UNKNOWN_OUTCOME_ENV = {
    **E2E_ENV,
    "TIKTOK_HTTP_TIMEOUT_SECONDS": str(HTTP_TIMEOUT_SECONDS),
    "RESEND_UNCONFIRMED_AFTER_SECONDS": str(RESEND_AFTER_SECONDS),
}


@pytest.fixture(scope="module")
def stack(services: TestServices, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with module_stack(services, tmp_path_factory, "e2e-unknown", UNKNOWN_OUTCOME_ENV) as bot:
        yield bot


def logged_events(stack: Stack) -> Counter[str]:
    """structlog event names in the stack's process logs: the evidence of what the bot did."""
    assert stack.log_dir is not None
    counts: Counter[str] = Counter()
    for path in stack.log_dir.glob("*.log"):
        for line in path.read_bytes().splitlines():
            if line.startswith(b"{"):
                try:
                    counts[json.loads(line).get("event", "")] += 1
                except ValueError:
                    continue
    return counts


async def replies_of(
    engine: AsyncEngine, conversation_id: str
) -> list[tuple[OutboxStatus, int, str | None]]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            select(OutboxEntry.status, OutboxEntry.attempts, Message.tiktok_message_id)
            .join(Message, Message.id == OutboxEntry.message_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.tiktok_conversation_id == conversation_id)
        )
        return [(row[0], row[1], row[2]) for row in rows.all()]


async def test_a_reply_whose_answer_timed_out_is_settled_by_its_echo_not_resent(
    sandbox: SandboxControl, stack: Stack, committed_db: AsyncEngine
) -> None:
    await sandbox.configure(echo_sends=True)
    # TikTok takes the send but answers after the bot has stopped waiting.
    await sandbox.fail_next(1, "delay", seconds=TIKTOK_ANSWERS_AFTER_SECONDS, endpoints=["send"])

    sent = await sandbox.play_customer("e2e-unknown-outcome", text="hi")
    assert sent.bot_status == 200

    in_flight = (OutboxStatus.PENDING, OutboxStatus.SENDING)
    await eventually(
        lambda: replies_of(committed_db, sent.conversation_id),
        lambda rows: len(rows) == 1 and rows[0][0] not in in_flight,
        within=20,
    )
    # Past the sweeper's grace and a few sweeps: nothing is sent again.
    await settle(5.0)
    assert [m.text for m in await sandbox.messages(conversation_id=sent.conversation_id)] == [
        replies.MENU
    ]
    send_calls = await sandbox.calls(endpoints=["send"])
    assert [call.injected for call in send_calls] == ["delay"]
    (delivered,) = await sandbox.messages(conversation_id=sent.conversation_id)
    assert await replies_of(committed_db, sent.conversation_id) == [
        (OutboxStatus.SENT, 1, delivered.message_id)
    ]
    # Settled by the echo, as the evidence says: not by a resend or TikTok's answer.
    events = logged_events(stack)
    assert events["reply_awaiting_echo"] == 1 and events["send_confirmed_by_echo"] == 1
    assert events["reply_resent_unconfirmed"] == 0 and events["reply_sent"] == 0
