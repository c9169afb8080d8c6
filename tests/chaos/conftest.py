"""`make chaos`: the whole bot as real processes on its own embedded PostgreSQL and Redis
(so the tests may restart them), with faults injected while messages flow.

Every test writes what it saw to chaos-results/<test>.json; docs/RELIABILITY.md cites them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.core.config import PROJECT_ROOT
from app.db.models import DeadLetter, Message, OutboxEntry
from app.sandbox.control import SandboxControl
from app.sandbox.stack import Stack
from app.sandbox.tiktok import RecordedMessage, WebhookResult
from tests.e2e.conftest import running_stack

RESULTS = PROJECT_ROOT / "chaos-results"

CHAOS_ENV = {
    # Empty URLs: the stack starts its own PostgreSQL and Redis, which the tests restart.
    "DATABASE_URL": "",
    "REDIS_URL": "",
    "TIKTOK_CLIENT_SECRET": "chaos-client-secret",
    "TIKTOK_ACCESS_TOKEN": "dev",
    "LOG_JSON": "true",
    # Production's policies on a shorter clock, so a run takes minutes, not hours.
    "RETRY_BACKOFF_BASE_SECONDS": "0.2",
    "RETRY_BACKOFF_CAP_SECONDS": "2",
    "TOO_FAST_BACKOFF_SECONDS": "1.5",
    "SEND_UNKNOWN_GRACE_SECONDS": "3",
    # Longer than the stand-in's webhook redelivery takes to bring an echo through an outage.
    "RESEND_UNCONFIRMED_AFTER_SECONDS": "20",
    "OUTBOX_SWEEP_SECONDS": "1",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "10",
    "MAX_EVENT_ATTEMPTS": "12",
}


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    # A test module may change the environment for its own stack (STACK_ENV).
    env = {**CHAOS_ENV, **getattr(request.module, "STACK_ENV", {})}
    with running_stack(tmp_path_factory.mktemp("chaos"), env) as bot:
        yield bot


class LogEvents:
    """Counts structlog event names in the stack's process logs since the last look: the
    evidence that a fault really bit (retries, confirmations, resends)."""

    def __init__(self, stack: Stack) -> None:
        assert stack.log_dir is not None
        self.log_dir = stack.log_dir
        self.offsets: dict[Path, int] = {}
        self.since_last()

    def since_last(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for path in sorted(self.log_dir.glob("*.log")):
            with path.open("rb") as log:
                log.seek(self.offsets.get(path, 0))
                chunk = log.read()
                self.offsets[path] = log.tell()
            for line in chunk.splitlines():
                if line.startswith(b"{"):
                    try:
                        event = json.loads(line).get("event")
                    except ValueError:
                        continue
                    if isinstance(event, str) and " " not in event:
                        counts[event] += 1
        return counts


@pytest.fixture
def log_events(stack: Stack) -> LogEvents:
    return LogEvents(stack)


@pytest.fixture
async def sandbox(stack: Stack) -> AsyncIterator[SandboxControl]:
    assert stack.sandbox_url is not None
    async with SandboxControl(stack.sandbox_url, timeout=60) as control:
        await control.clear_failures()
        await control.clear_random_faults()
        # TikTok delivers a webhook again until the bot answers 2xx, and echoes every send
        # it accepts (im_send_msg): the evidence a reply whose worker died mid-send went
        # out. Without echoes, a reply TikTok took just before the kill is sent again
        # once RESEND_UNCONFIRMED_AFTER_SECONDS passes, which real TikTok never allows.
        await control.configure(webhook_redelivery_seconds=120, echo_sends=True)
        yield control


@pytest.fixture
async def database(stack: Stack) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(stack.env["DATABASE_URL"], pool_pre_ping=True)
    try:
        yield engine
    finally:
        await engine.dispose()


async def play_many(
    sandbox: SandboxControl, prefix: str, count: int, per_second: float, text: str = "hi"
) -> list[WebhookResult]:
    """`count` customers write one DM each, at a steady pace, each in a conversation of its
    own (so every DM must get exactly one reply)."""
    started = time.monotonic()
    tasks: list[asyncio.Task[WebhookResult]] = []
    for n in range(count):
        delay = started + n / per_second - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(sandbox.play_customer(f"{prefix}-{n}", text=text)))
    return list(await asyncio.gather(*tasks))


@dataclass
class Outcome:
    """What the customers got, as TikTok (the stand-in) recorded it."""

    name: str
    messages: int
    first_statuses: dict[str, int]
    acknowledged: int
    answered_once: int
    answered_twice_or_more: int
    unanswered: int
    dead_letters: dict[str, int]
    outbox: dict[str, int]
    seconds_to_settle: float
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{self.name}.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


async def replies_by_conversation(
    sandbox: SandboxControl, conversation_ids: set[str]
) -> dict[str, list[RecordedMessage]]:
    grouped: dict[str, list[RecordedMessage]] = {cid: [] for cid in conversation_ids}
    for message in await sandbox.messages():
        if message.conversation_id in grouped and message.source == "api":
            grouped[message.conversation_id].append(message)
    return grouped


async def dead_letter_kinds(engine: AsyncEngine) -> dict[str, int]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            select(DeadLetter.kind, func.count()).group_by(DeadLetter.kind)
        )
        return {kind: count for kind, count in rows.all()}


async def outbox_statuses(engine: AsyncEngine) -> dict[str, int]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)
        )
        return {status: count for status, count in rows.all()}


async def inbound_unprocessed(engine: AsyncEngine, event_ids: set[str]) -> int:
    async with AsyncSession(engine) as session:
        processed = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.event_id.in_(event_ids), Message.status == "processed")
        )
    return len(event_ids) - int(processed or 0)


async def settle_and_count(
    name: str,
    sandbox: SandboxControl,
    engine: AsyncEngine,
    sent: list[WebhookResult],
    *,
    within: float,
    quiet_for: float = 4.0,
) -> Outcome:
    """Wait until every DM is answered (or the time is up), then wait `quiet_for` more so a
    late duplicate would show, and count."""
    started = time.monotonic()
    conversations = {result.conversation_id for result in sent}
    deadline = started + within
    last_change, last_seen = started, -1
    while time.monotonic() < deadline:
        grouped = await replies_by_conversation(sandbox, conversations)
        answered = sum(1 for replies in grouped.values() if replies)
        if answered == len(conversations):
            break
        if answered != last_seen:
            last_change, last_seen = time.monotonic(), answered
        parked = sum((await dead_letter_kinds(engine)).values())
        # The rest are parked for a person, visibly, and nothing has moved for a while.
        if answered + parked >= len(conversations) and time.monotonic() - last_change > 10:
            break
        await asyncio.sleep(0.5)
    settled = time.monotonic() - started
    await asyncio.sleep(quiet_for)
    grouped = await replies_by_conversation(sandbox, conversations)
    counts = Counter(min(len(replies), 2) for replies in grouped.values())
    received = await sandbox.webhook_deliveries(event="im_receive_msg")
    ours = {result.message_id for result in sent}
    acknowledged = sum(
        1 for record in received if record.message_id in ours and record.acknowledged
    )
    first = Counter(str(result.bot_status) for result in sent)
    return Outcome(
        name=name,
        messages=len(sent),
        first_statuses=dict(first),
        acknowledged=acknowledged,
        answered_once=counts[1],
        answered_twice_or_more=counts[2],
        unanswered=counts[0],
        dead_letters=await dead_letter_kinds(engine),
        outbox=await outbox_statuses(engine),
        seconds_to_settle=round(settled, 1),
    )
