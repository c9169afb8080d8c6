"""1,000 conversations × 5 DMs through the whole bot: throughput, end-to-end latency, worker
memory; nothing lost, nothing duplicated, each conversation's answers in order.

TikTok's own send limit (about 10 a second) would cap replies at that rate whatever the bot
does, so this stack lifts it: what is measured here is the bot's own capacity.
"""

from __future__ import annotations

import asyncio
import csv
import os
import statistics
import threading
import time
from collections.abc import Iterator

import psutil
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import get_settings
from app.db.session import create_engine, create_session_factory, transaction
from app.sandbox.control import SandboxControl
from app.sandbox.stack import Stack
from app.sandbox.tiktok import RecordedMessage, WebhookResult
from app.services.shop.demo import DEMO_DIR, load_demo_shop
from tests.chaos.conftest import Outcome, dead_letter_kinds, outbox_statuses

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800)]

CONVERSATIONS = int(os.environ.get("LOAD_CONVERSATIONS", "1000"))
MESSAGES_EACH = 5
OFFERED_PER_SECOND = 25.0
# Beyond BURST_GAP_SECONDS (2 s), so each DM is a turn of its own and gets its own answer.
GAP_SECONDS = 2.6

STACK_ENV = {
    "SEND_RATE_PER_SECOND": "500",
    "IMAGES_ENABLED": "false",  # one text answer per DM, so answers map to questions
}


def demo_items() -> list[tuple[str, str]]:
    with (DEMO_DIR / "catalog.csv").open(encoding="utf-8") as catalog:
        return [
            (row["sku"], row["title"])
            for row in csv.DictReader(catalog)
            if row["status"] == "available"
        ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class MemorySampler:
    """Memory of every worker process (parent and pool, as PSS), sampled each second."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss_mb(self) -> float:
        total = 0
        for name, process in self.stack.processes.items():
            if not name.startswith("worker") or process.poll() is not None:
                continue
            try:
                parent = psutil.Process(process.pid)
                for member in [parent, *parent.children(recursive=True)]:
                    # PSS: pages shared by the pool after fork count once, not per process.
                    total += member.memory_full_info().pss
            except psutil.Error:
                continue
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append(self._rss_mb())

    def __enter__(self) -> MemorySampler:
        self.samples.append(self._rss_mb())
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self._rss_mb())


@pytest.fixture(scope="module")
def demo_shop(stack: Stack) -> Iterator[None]:
    async def load() -> None:
        engine = create_engine(get_settings(), stack.env["DATABASE_URL"])
        try:
            async with transaction(create_session_factory(engine)) as session:
                await load_demo_shop(session)
        finally:
            await engine.dispose()

    asyncio.run(load())
    yield


async def test_thousand_conversations_of_five_messages(
    stack: Stack, demo_shop: None, sandbox: SandboxControl, database: AsyncEngine
) -> None:
    items = demo_items()
    assert len(items) >= MESSAGES_EACH

    def questions(n: int) -> list[tuple[str, str]]:
        """Five different pieces per customer, so each answer names the piece asked about."""
        return [items[(n + k) % len(items)] for k in range(MESSAGES_EACH)]

    played: dict[int, list[WebhookResult]] = {n: [] for n in range(CONVERSATIONS)}

    async def customer(n: int, start_at: float) -> None:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        for k, (sku, _) in enumerate(questions(n)):
            if k:
                await asyncio.sleep(GAP_SECONDS)
            result = await sandbox.play_customer(f"load-{n}", text=f"is {sku} still available?")
            played[n].append(result)

    started_wall = time.time()
    started = time.monotonic()
    total = CONVERSATIONS * MESSAGES_EACH
    # Customers start so that, all together, DMs arrive at about OFFERED_PER_SECOND.
    spread = total / OFFERED_PER_SECOND - (MESSAGES_EACH - 1) * GAP_SECONDS
    with MemorySampler(stack) as memory:
        await asyncio.gather(
            *(customer(n, started + n * spread / CONVERSATIONS) for n in range(CONVERSATIONS))
        )
        sent_done = time.monotonic()
        deadline = sent_done + 600
        replies: list[RecordedMessage] = []
        while time.monotonic() < deadline:
            replies = [m for m in await sandbox.messages(since=started_wall) if m.source == "api"]
            if len(replies) >= total:
                break
            await asyncio.sleep(1.0)
        finished = time.monotonic()
        await asyncio.sleep(5)  # a late duplicate would show now
    replies = [m for m in await sandbox.messages(since=started_wall) if m.source == "api"]

    by_conversation: dict[str, list[RecordedMessage]] = {}
    for message in sorted(replies, key=lambda m: m.seq):
        by_conversation.setdefault(message.conversation_id, []).append(message)
    acknowledged = sum(1 for results in played.values() for r in results if r.bot_status == 200)
    latencies: list[float] = []
    lost = duplicated = out_of_order = 0
    titles = {sku: title for sku, title in items}
    for n in range(CONVERSATIONS):
        results = played[n]
        answers = by_conversation.get(results[0].conversation_id, [])
        lost += max(0, MESSAGES_EACH - len(answers))
        duplicated += max(0, len(answers) - MESSAGES_EACH)
        for (sku, _), asked, answer in zip(questions(n), results, answers, strict=False):
            if titles[sku] not in (answer.text or ""):
                out_of_order += 1
            latencies.append(answer.received_at - asked.timestamp_ms / 1000)
    outcome = Outcome(
        name="load_1000x5",
        messages=total,
        first_statuses={"200": acknowledged},
        acknowledged=acknowledged,
        answered_once=len(replies) - duplicated,
        answered_twice_or_more=duplicated,
        unanswered=lost,
        dead_letters=await dead_letter_kinds(database),
        outbox=await outbox_statuses(database),
        seconds_to_settle=round(finished - sent_done, 1),
        extra={
            "offered_per_second": OFFERED_PER_SECOND,
            "throughput_per_second": round(total / (finished - started), 1),
            "seconds_total": round(finished - started, 1),
            "e2e_p50_ms": round(statistics.median(latencies) * 1000),
            "e2e_p99_ms": round(percentile(latencies, 99) * 1000),
            "e2e_max_ms": round(max(latencies) * 1000),
            "worker_rss_start_mb": round(memory.samples[0]),
            "worker_rss_peak_mb": round(max(memory.samples)),
            "worker_rss_end_mb": round(memory.samples[-1]),
            "out_of_order_or_wrong": out_of_order,
            "worker_processes": stack.worker_concurrency,
        },
    )
    outcome.save()
    assert acknowledged == total
    assert lost == 0 and duplicated == 0
    assert out_of_order == 0
    assert outcome.dead_letters == {}
    assert outcome.outbox == {"sent": total}
