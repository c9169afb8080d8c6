"""The one helper through which tasks run async code: one loop per process, rebuilt
after a fork, with the engine of the parent abandoned rather than shared."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import uvloop
from sqlalchemy import text

from app.core.config import PROJECT_ROOT
from app.worker import runtime as runtime_module
from app.worker.runtime import WorkerRuntime, get_runtime, run_async
from tests.conftest import TestServices


async def _backend_pid(rt: WorkerRuntime) -> int:
    async with rt.engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest.fixture
def fresh_runtime(services: TestServices) -> Iterator[None]:
    runtime_module.shutdown_runtime()
    yield
    runtime_module.shutdown_runtime()


def test_one_loop_and_engine_per_process(fresh_runtime: None) -> None:
    first = get_runtime()
    assert run_async(_backend_pid) == run_async(_backend_pid)  # pooled connection reused
    assert get_runtime() is first
    assert not first.loop.is_closed()
    assert isinstance(first.loop, uvloop.Loop)  # where uvloop runs, as here


def test_shutdown_closes_the_loop(fresh_runtime: None) -> None:
    runtime = get_runtime()
    run_async(_backend_pid)
    runtime_module.shutdown_runtime()
    assert runtime.loop.is_closed()
    assert get_runtime() is not runtime


def test_forked_child_builds_its_own_runtime_and_leaves_the_parents_alone(
    services: TestServices,
) -> None:
    # A clean interpreter: forking this test process (with its helper threads) could
    # deadlock the child in libc, which says nothing about the code under test.
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tests" / "worker" / "fork_probe.py")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["child_exit"] == 0
    assert report["child"]["fresh_runtime"] and report["child"]["fresh_loop"]
    assert report["child"]["backend"] != report["parent_before"]
    # the parent's pooled connection survived the child's start and exit
    assert report["parent_after"] == report["parent_before"]


def test_a_cancelled_redis_command_leaves_no_reply_behind_for_the_next(
    fresh_runtime: None,
) -> None:
    """The worker's Redis client sends every command on one connection (no pool checkout
    per command): a command cancelled while it waits must take that connection down with
    it, or its late reply would be read as the answer to the next command."""
    key = f"test:cancelled:{uuid.uuid4().hex}"

    async def scenario(rt: WorkerRuntime) -> tuple[object, object, object]:
        waiting = asyncio.create_task(rt.redis.blpop([key], timeout=5))
        await asyncio.sleep(0.2)  # the BLPOP is at the server, holding the connection
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        # A BLPOP still open on the connection would take this element, and its reply
        # would be what the commands below read.
        await rt.redis.rpush(key, "late")
        await rt.redis.set(f"{key}:value", "value", ex=60)
        value = await rt.redis.get(f"{key}:value")
        clients = await rt.redis.client_list()
        left = await rt.redis.lrange(key, 0, -1)
        await rt.redis.delete(key, f"{key}:value")
        blocked = [c for c in clients if c.get("cmd") == "blpop"]
        return value, left, blocked

    value, left, blocked = run_async(scenario)
    assert value == b"value"
    assert left == [b"late"]
    assert blocked == []
