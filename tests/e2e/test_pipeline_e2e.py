"""Webhook → queue → worker → TikTok stand-in, with real processes."""

from __future__ import annotations

import asyncio
import base64
import signal
import subprocess
import sys
import time

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.core.config import PROJECT_ROOT
from app.db.models import DeadLetter, Message, OutboxEntry
from app.sandbox.control import SandboxControl
from app.sandbox.stack import Stack
from app.services import replies
from tests.e2e.conftest import E2E_ENV, eventually, settle
from tests.factories import signed, text_message, without_content_fields

pytestmark = pytest.mark.e2e


async def replies_to(sandbox: SandboxControl, conversation_id: str) -> list[str | None]:
    return [m.text for m in await sandbox.messages(conversation_id=conversation_id)]


async def test_one_message_gets_one_reply(sandbox: SandboxControl, stack: Stack) -> None:
    sent = await sandbox.play_customer("e2e-one", text="hi")
    assert sent.bot_status == 200
    got = await eventually(lambda: replies_to(sandbox, sent.conversation_id), lambda r: len(r) >= 1)
    await settle(1.0)
    assert await replies_to(sandbox, sent.conversation_id) == [replies.MENU] == got


async def test_same_event_ten_times_at_once_is_answered_once(sandbox: SandboxControl) -> None:
    sent = await sandbox.play_customer("e2e-dup", text="hello", copies=10)
    assert [d.status for d in sent.deliveries] == [200] * 10
    await eventually(lambda: replies_to(sandbox, sent.conversation_id), lambda r: len(r) >= 1)
    await settle(2.0)
    assert len(await replies_to(sandbox, sent.conversation_id)) == 1


async def test_worker_killed_mid_send_answers_exactly_once(
    sandbox: SandboxControl, stack: Stack
) -> None:
    # TikTok takes 3 s to answer: the worker is killed while the call is in flight.
    await sandbox.fail_next(1, "delay", seconds=3, endpoints=["send"])
    sent = await sandbox.play_customer("e2e-kill-send", text="hi")
    await eventually(
        lambda: sandbox.calls(endpoints=["send"]),
        lambda calls: any(call.injected == "delay" for call in calls),
    )
    stack.kill("worker", signal.SIGKILL)
    stack.start_worker()
    await eventually(lambda: replies_to(sandbox, sent.conversation_id), lambda r: len(r) >= 1)
    await settle(6.0)  # beyond the visibility timeout and the unknown-send grace
    assert await replies_to(sandbox, sent.conversation_id) == [replies.MENU]


async def test_worker_killed_before_the_reply_answers_once_after_restart(
    sandbox: SandboxControl, stack: Stack
) -> None:
    stack.kill("worker", signal.SIGKILL)
    sent = await sandbox.play_customer("e2e-kill-queued", text="hi")
    assert sent.bot_status == 200  # the API queues while no worker runs
    await settle(0.5)
    stack.start_worker()
    await eventually(lambda: replies_to(sandbox, sent.conversation_id), lambda r: len(r) >= 1)
    await settle(2.0)
    assert len(await replies_to(sandbox, sent.conversation_id)) == 1


async def test_an_event_lost_with_a_killed_worker_is_answered_once(
    sandbox: SandboxControl, stack: Stack
) -> None:
    """Celery's Redis transport pops a task off its list before recording it as
    unacknowledged: a worker killed in between takes the task with it, and the visibility
    timeout cannot bring back what was never recorded. The webhook's ledger of accepted
    events does (app/worker/accepted.py)."""
    stack.kill("worker", signal.SIGKILL)
    sent = await sandbox.play_customer("e2e-lost-task", text="hi")
    assert sent.bot_status == 200
    redis = aioredis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        # What the killed worker took with it: this event's task, gone from the queue.
        for raw in await redis.lrange("events", 0, -1):
            if sent.conversation_id.encode() in base64.b64decode(orjson.loads(raw)["body"]):
                assert await redis.lrem("events", 1, raw) == 1
                break
        else:
            raise AssertionError("the event's task was not queued")
        stack.start_worker()
        # Pushed back once it is older than the visibility timeout and found nowhere.
        period = int(E2E_ENV["BROKER_VISIBILITY_TIMEOUT_SECONDS"])
        await eventually(
            lambda: replies_to(sandbox, sent.conversation_id), lambda r: len(r) >= 1, period + 20
        )
        await settle(2.0)
        assert await replies_to(sandbox, sent.conversation_id) == [replies.MENU]
        assert await redis.zcard(redis_keys.ACCEPTED_EVENTS_AT) == 0
    finally:
        await redis.aclose()


async def test_three_system_errors_then_the_reply_arrives(sandbox: SandboxControl) -> None:
    # 51065 in TikTok's envelope says the send failed, so it is retried with backoff. A 5xx
    # may hide a delivered reply: that waits for its echo (test_unknown_outcome_e2e.py).
    await sandbox.fail_next(3, "code_51065", endpoints=["send"])
    sent = await sandbox.play_customer("e2e-51065", text="hi")
    got = await eventually(
        lambda: replies_to(sandbox, sent.conversation_id), lambda r: len(r) >= 1, within=30
    )
    assert got == [replies.MENU]
    calls = [
        c
        for c in await sandbox.calls(endpoints=["send"])
        if c.received_at >= sent.timestamp_ms / 1000 - 1
    ]
    failed = [c for c in calls if c.injected == "code_51065"]
    assert len(failed) == 3


async def test_too_fast_backs_off(sandbox: SandboxControl) -> None:
    await sandbox.fail_next(1, "code_40064", endpoints=["send"])
    sent = await sandbox.play_customer("e2e-40064", text="hi")
    await eventually(
        lambda: replies_to(sandbox, sent.conversation_id), lambda r: len(r) >= 1, within=30
    )
    calls = await sandbox.calls(endpoints=["send"])
    refused = max(c.received_at for c in calls if c.injected == "code_40064")
    delivered = (await sandbox.messages(conversation_id=sent.conversation_id))[0].received_at
    assert delivered - refused >= 0.7  # TOO_FAST_BACKOFF_SECONDS=1.5: at least half of it


async def test_late_delivery_after_the_window_is_recorded_and_not_answered(
    sandbox: SandboxControl, committed_db: AsyncEngine
) -> None:
    old = int((time.time() - 49 * 3600) * 1000)
    sent = await sandbox.play_customer("e2e-late", text="is it available?", timestamp_ms=old)
    assert sent.bot_status == 200

    async def status() -> str | None:
        async with AsyncSession(committed_db) as session:
            return await session.scalar(
                select(Message.status_reason).where(Message.event_id == sent.message_id)
            )

    reason = await eventually(status, lambda value: value is not None)
    assert "window closed" in (reason or "")
    await settle(1.0)
    assert await replies_to(sandbox, sent.conversation_id) == []


async def test_reply_beyond_the_quota_is_not_sent(
    sandbox: SandboxControl, stack: Stack, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    sent = await sandbox.play_customer("e2e-quota", text="hi")
    await eventually(lambda: replies_to(sandbox, sent.conversation_id), lambda r: len(r) >= 1)
    await redis_client.set(redis_keys.quota("e2e-quota"), 10, keepttl=True)
    async with AsyncSession(committed_db) as session:
        outbox_id = await session.scalar(select(OutboxEntry.id).order_by(OutboxEntry.id.desc()))
        await session.execute(
            update(OutboxEntry).where(OutboxEntry.id == outbox_id).values(status="pending")
        )
        await session.commit()
    from app.worker.celery_app import create_celery

    create_celery(
        stack.settings.model_copy(update={"redis_url": stack.env["REDIS_URL"]})
    ).send_task("philia.deliver_outbox", args=[outbox_id], queue="sends")

    async def outbox_status() -> str | None:
        async with AsyncSession(committed_db) as session:
            return await session.scalar(
                select(OutboxEntry.status).where(OutboxEntry.id == outbox_id)
            )

    assert await eventually(outbox_status, lambda s: s != "pending") == "not_sent"
    assert len(await replies_to(sandbox, sent.conversation_id)) == 1


async def test_staff_typing_in_the_app_silences_the_bot(sandbox: SandboxControl) -> None:
    sent = await sandbox.play_customer("e2e-staff", text="hi")
    await eventually(lambda: replies_to(sandbox, sent.conversation_id), lambda r: len(r) >= 1)
    staff = await sandbox.play_staff(sent.conversation_id, "Hi! Mia here 👋", user_id="e2e-staff")
    assert staff.bot_status == 200
    await settle(1.0)
    await sandbox.play_customer("e2e-staff", text="oh hi Mia")
    await settle(2.0)
    texts = await replies_to(sandbox, sent.conversation_id)
    assert texts == [replies.MENU, "Hi! Mia here 👋"]


async def test_bad_requests_get_their_status_codes(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url) as client:
        assert (await client.post("/webhook/tiktok", content=b"{}")).status_code == 401
        assert (
            await client.post("/webhook/tiktok", content=b"x" * (1024 * 1024 + 1))
        ).status_code == 413
        assert (await client.get("/readyz")).status_code == 200


async def test_concurrent_customers_are_all_answered(sandbox: SandboxControl) -> None:
    sent = await asyncio.gather(
        *(sandbox.play_customer(f"e2e-many-{n}", text="hi") for n in range(20))
    )
    for result in sent:
        await eventually(
            lambda r=result: replies_to(sandbox, r.conversation_id), lambda got: len(got) == 1
        )


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=PROJECT_ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_permanent_send_failure_is_parked_and_replayed(
    sandbox: SandboxControl, stack: Stack, committed_db: AsyncEngine
) -> None:
    await sandbox.fail_next(1, "code_40002", endpoints=["send"])
    sent = await sandbox.play_customer("e2e-dead-send", text="hi")

    async def parked() -> list[DeadLetter]:
        async with AsyncSession(committed_db) as session:
            return list((await session.scalars(select(DeadLetter))).all())

    (letter,) = await eventually(parked, lambda letters: len(letters) == 1)
    assert letter.kind == "send" and "40002" in letter.error
    listed = cli(stack, "deadletters", "list")
    assert listed.returncode == 0 and f"#{letter.id}" in listed.stdout and "40002" in listed.stdout
    assert await replies_to(sandbox, sent.conversation_id) == []
    retried = cli(stack, "deadletters", "retry", str(letter.id))
    assert retried.returncode == 0 and "queued again" in retried.stdout
    assert await eventually(
        lambda: replies_to(sandbox, sent.conversation_id), lambda r: len(r) == 1
    ) == [replies.MENU]
    again = cli(stack, "deadletters", "retry", str(letter.id))
    assert "already retried" in again.stdout


async def test_unprocessable_event_is_parked_with_its_body(
    stack: Stack, committed_db: AsyncEngine
) -> None:
    no_sender = without_content_fields(text_message(conversation_id="c"), "from_user")
    body, headers = signed(no_sender, E2E_ENV["TIKTOK_CLIENT_SECRET"])
    async with httpx.AsyncClient(base_url=stack.api_url) as client:
        assert (
            await client.post("/webhook/tiktok", content=body, headers=headers)
        ).status_code == 200

    async def parked() -> list[DeadLetter]:
        async with AsyncSession(committed_db) as session:
            return list((await session.scalars(select(DeadLetter))).all())

    (letter,) = await eventually(parked, lambda letters: len(letters) == 1)
    assert letter.kind == "event" and letter.payload["body"] == body.decode()
