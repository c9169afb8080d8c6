"""Two worker instances on one queue, as two Railway replicas of the worker service: every
message is answered once, and each customer's answers come in the order they wrote."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from app.sandbox.control import SandboxControl
from app.sandbox.stack import Stack
from app.services import replies
from tests.conftest import TestServices
from tests.e2e.conftest import E2E_ENV, eventually, module_stack, settle

pytestmark = pytest.mark.e2e

CUSTOMERS = 12
# Alternating answers: two of a customer's turns answered out of order show as two equal
# answers side by side.
SAYS = ("hi", "thank you", "hi", "thank you", "hi")
ANSWERS = [replies.MENU if text == "hi" else replies.THANKS for text in SAYS]


@pytest.fixture(scope="module")
def stack(services: TestServices, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Every message its own turn, so each is answered on its own.
    env = {**E2E_ENV, "BURST_GAP_SECONDS": "0"}
    with module_stack(services, tmp_path_factory, "scale-out", env) as bot:
        bot.start_worker("worker-2")
        bot.wait_for_worker()
        # The stack's readiness task proves one worker is up; the second may still be
        # starting (seconds on a loaded machine) and would get no share of the queue.
        wait_until_ready(bot, "worker-2")
        yield bot


def wait_until_ready(stack: Stack, worker: str, timeout: float = 120) -> None:
    assert stack.log_dir is not None
    log = stack.log_dir / f"{worker}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{") and json.loads(line).get("event", "").endswith(" ready."):
                    return
        time.sleep(0.2)
    raise TimeoutError(f"{worker} did not report ready within {timeout:.0f} s")


def turns_answered_by(stack: Stack, worker: str) -> int:
    assert stack.log_dir is not None
    lines = (stack.log_dir / f"{worker}.log").read_text(errors="replace").splitlines()
    answered = 0
    for line in lines:
        if line.startswith("{") and json.loads(line).get("event") == "turn_answered":
            answered += 1
    return answered


async def test_two_workers_answer_everything_once_and_in_order(
    sandbox: SandboxControl, stack: Stack
) -> None:
    async def customer(n: int) -> str:
        conversation = ""
        for text in SAYS:
            sent = await sandbox.play_customer(f"e2e-scale-{n}", text=text)
            assert sent.bot_status == 200
            conversation = sent.conversation_id
            await asyncio.sleep(0.01)
        return conversation

    conversations = await asyncio.gather(*(customer(n) for n in range(CUSTOMERS)))

    async def answers() -> dict[str, list[str | None]]:
        return {
            conversation: [m.text for m in await sandbox.messages(conversation_id=conversation)]
            for conversation in conversations
        }

    await eventually(
        answers, lambda got: all(len(texts) >= len(SAYS) for texts in got.values()), within=60
    )
    await settle(2.0)  # a duplicate would arrive now
    got = await answers()
    assert got == {conversation: ANSWERS for conversation in conversations}
    # Both instances took their share of the queue.
    assert turns_answered_by(stack, "worker") > 0
    assert turns_answered_by(stack, "worker-2") > 0
