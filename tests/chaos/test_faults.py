"""Faults injected while DMs flow through the whole bot: every DM is answered exactly once,
or (for a TikTok that keeps refusing) parked visibly; nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.sandbox.control import SandboxControl
from app.sandbox.stack import Stack
from app.sandbox.tiktok import CODE_RATE_LIMITED, RandomFaults, RecordedCall
from tests.chaos.conftest import LogEvents, Outcome, play_many, settle_and_count
from tests.conftest import truncate_all

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800)]

SEND_RATE_PER_SECOND = 10  # the bot's default SEND_RATE_PER_SECOND, and TikTok's limit here


@pytest.fixture(autouse=True)
async def clean_slate(database: AsyncEngine, sandbox: SandboxControl) -> None:
    await truncate_all(database)


EVIDENCE = (
    "enqueue_failed",
    "event_failed",
    "event_duplicate",
    "event_requeued",
    "delivery_crashed",
    "reply_retry",
    "reply_failed",
    "send_confirmed_by_echo",
    "send_confirmed_by_marker",
    "reply_resent_unconfirmed",
    "reply_outcome_unknown",
)


def evidence(log_events: LogEvents) -> dict[str, int]:
    seen = log_events.since_last()
    return {name: seen[name] for name in EVIDENCE if seen[name]}


def chaos_seed() -> int:
    """Random moments, but a failing run can be replayed with CHAOS_SEED."""
    return int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))


def assert_each_answered_once(outcome_messages: int, once: int, twice: int) -> None:
    assert twice == 0, f"{twice} DMs were answered more than once"
    assert once == outcome_messages, f"only {once} of {outcome_messages} DMs were answered"


async def test_worker_sigkilled_at_random_moments(
    stack: Stack, sandbox: SandboxControl, database: AsyncEngine, log_events: LogEvents
) -> None:
    seed = chaos_seed()
    rng = random.Random(seed)
    sending = asyncio.create_task(play_many(sandbox, f"kill{seed}", 200, per_second=8))
    kills = 0
    while not sending.done():
        await asyncio.sleep(rng.uniform(0.3, 3.0))
        stack.kill("worker")  # SIGKILL to the worker and its pool: no goodbye, no acks
        kills += 1
        stack.start_worker()
    sent = await sending
    outcome = await settle_and_count(
        "worker_sigkill", sandbox, database, sent, within=180, quiet_for=12
    )
    outcome.extra = {"kills": kills, "seed": seed, "log_events": evidence(log_events)}
    outcome.save()
    assert kills >= 5
    assert outcome.first_statuses == {"200": 200}  # the webhook never needs the worker
    assert_each_answered_once(200, outcome.answered_once, outcome.answered_twice_or_more)
    assert outcome.dead_letters == {}


async def restart_mid_load(
    service: str, stack: Stack, sandbox: SandboxControl, database: AsyncEngine, log: LogEvents
) -> Outcome:
    """200 DMs at 15 a second; four seconds in, `service` goes down for three seconds."""
    sending = asyncio.create_task(play_many(sandbox, service, 200, per_second=15))
    await asyncio.sleep(4)
    down_at = time.monotonic()
    restart = stack.restart_redis if service == "redis" else stack.restart_postgres
    await asyncio.to_thread(restart, 3.0)
    downtime = time.monotonic() - down_at
    sent = await sending
    outcome = await settle_and_count(
        f"{service}_restart", sandbox, database, sent, within=180, quiet_for=8
    )
    outcome.extra = {"down_seconds": round(downtime, 1), "log_events": evidence(log)}
    outcome.save()
    assert_each_answered_once(200, outcome.answered_once, outcome.answered_twice_or_more)
    assert outcome.dead_letters == {}
    return outcome


async def test_redis_restarted_mid_load(
    stack: Stack, sandbox: SandboxControl, database: AsyncEngine, log_events: LogEvents
) -> None:
    outcome = await restart_mid_load("redis", stack, sandbox, database, log_events)
    assert outcome.extra["log_events"].get("enqueue_failed", 0) > 0
    # While Redis was down the webhook said so (503) and TikTok delivered again later.
    assert outcome.first_statuses.get("503", 0) > 0, outcome.first_statuses
    assert set(outcome.first_statuses) <= {"200", "503"}, outcome.first_statuses
    assert outcome.acknowledged == 200


async def test_postgres_restarted_mid_load(
    stack: Stack, sandbox: SandboxControl, database: AsyncEngine, log_events: LogEvents
) -> None:
    outcome = await restart_mid_load("postgres", stack, sandbox, database, log_events)
    seen = outcome.extra["log_events"]
    # The restart really hit work in flight, which retried.
    assert seen.get("event_failed", 0) + seen.get("delivery_crashed", 0) > 0, seen
    assert outcome.first_statuses == {"200": 200}  # the webhook does not need the database


@dataclass
class TikTokRun:
    outcome: Outcome
    injected: dict[str, int]
    calls: list[RecordedCall]  # every business API call TikTok saw during the run
    started: float

    @property
    def busiest_one_second(self) -> int:
        """The most calls TikTok saw in any one-second span (sliding, as TikTok counts)."""
        return max(
            sum(1 for other in self.calls if 0 <= other.received_at - call.received_at < 1.0)
            for call in self.calls
        )

    @property
    def rate_limited(self) -> int:
        return sum(1 for call in self.calls if call.code == CODE_RATE_LIMITED)


async def run_against_misbehaving_tiktok(
    name: str,
    stack: Stack,
    sandbox: SandboxControl,
    database: AsyncEngine,
    faults: RandomFaults,
    *,
    customers: int,
    per_second: float,
) -> TikTokRun:
    """DMs from `customers` customers while TikTok misbehaves and enforces its rate limit,
    with an extra worker so that slow sends do not make the test take ten minutes."""
    stack.start_worker("worker-extra")
    await sandbox.configure(rate_limit_per_second=SEND_RATE_PER_SECOND)
    await sandbox.set_random_faults(faults)
    started = time.time()
    try:
        sent = await play_many(sandbox, f"{name}{faults.seed}", customers, per_second)
        outcome = await settle_and_count(name, sandbox, database, sent, within=300, quiet_for=5)
        injected = (await sandbox.random_faults()).injected
    finally:
        await sandbox.clear_random_faults()
        await sandbox.configure(rate_limit_per_second=None)
        stack.kill("worker-extra")
    calls = [
        call
        for call in await sandbox.calls(since=started)
        if call.endpoint != "refresh_token"  # TikTok's limit is on the business API
    ]
    run = TikTokRun(outcome, injected, calls, started)
    outcome.extra = {
        "seed": faults.seed,
        "api_calls": len(calls),
        "injected": injected,
        "rate_limited_40100": run.rate_limited,
        "busiest_1s_window_calls": run.busiest_one_second,
    }
    return run


def assert_answered_or_visibly_parked(outcome: Outcome, customers: int) -> None:
    assert outcome.answered_twice_or_more == 0
    # Each DM answered, or its reply parked after the last attempt: nothing vanishes. A
    # reply whose last attempt may have reached TikTok (a 5xx) is parked as send_unknown.
    parked = outcome.dead_letters.get("send", 0) + outcome.dead_letters.get("send_unknown", 0)
    assert outcome.answered_once + parked == customers
    assert set(outcome.dead_letters) <= {"send", "send_unknown"}


async def test_tiktok_failing_slow_and_refusing(
    stack: Stack, sandbox: SandboxControl, database: AsyncEngine, log_events: LogEvents
) -> None:
    faults = RandomFaults(
        http_5xx_rate=0.3,
        too_fast_burst_rate=0.03,
        too_fast_burst_length=4,
        latency_seconds=2.0,
        endpoints=["send"],
        seed=chaos_seed(),
    )
    run = await run_against_misbehaving_tiktok(
        "tiktok_faults", stack, sandbox, database, faults, customers=100, per_second=5
    )
    recorded = await sandbox.messages(since=run.started)
    run.outcome.extra.update(
        outside_window=sum(1 for m in recorded if m.within_window is False),
        over_quota=sum(1 for m in recorded if m.reply_number > 10),
        log_events=evidence(log_events),
    )
    run.outcome.save()
    assert sum(run.injected.values()) >= 30  # the faults really happened
    assert run.rate_limited == 0 and run.busiest_one_second <= SEND_RATE_PER_SECOND
    assert run.outcome.extra["outside_window"] == 0 and run.outcome.extra["over_quota"] == 0
    assert_answered_or_visibly_parked(run.outcome, 100)


async def test_send_rate_never_exceeds_tiktok_limit_under_a_burst(
    stack: Stack, sandbox: SandboxControl, database: AsyncEngine, log_events: LogEvents
) -> None:
    """200 customers within two seconds, TikTok failing 30 % of calls: the bot wants to send
    far faster than TikTok allows, and TikTok must never see more than its limit."""
    faults = RandomFaults(
        http_5xx_rate=0.3,
        too_fast_burst_rate=0.02,
        too_fast_burst_length=3,
        endpoints=["send"],
        seed=chaos_seed(),
    )
    run = await run_against_misbehaving_tiktok(
        "send_rate_burst", stack, sandbox, database, faults, customers=200, per_second=100
    )
    run.outcome.extra["log_events"] = evidence(log_events)
    run.outcome.save()
    assert sum(run.injected.values()) >= 40
    assert run.busiest_one_second <= SEND_RATE_PER_SECOND, run.busiest_one_second
    assert run.rate_limited == 0
    assert_answered_or_visibly_parked(run.outcome, 200)
