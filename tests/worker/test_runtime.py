"""The one helper through which tasks run async code: one loop per process, rebuilt
after a fork, with the engine of the parent abandoned rather than shared."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from app.worker import runtime as runtime_module
from app.worker.runtime import WorkerRuntime, get_runtime, reset_after_fork, run_async
from tests.conftest import TestServices


async def _backend_pid(rt: WorkerRuntime) -> int:
    async with rt.engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest.fixture
def fresh_runtime(services: TestServices) -> object:
    runtime_module.shutdown_runtime()
    yield
    runtime_module.shutdown_runtime()


def test_one_loop_and_engine_per_process(fresh_runtime: object) -> None:
    first = get_runtime()
    assert run_async(_backend_pid) == run_async(_backend_pid)  # pooled connection reused
    assert get_runtime() is first
    assert first.loop is get_runtime().loop
    assert not first.loop.is_closed()


def test_child_after_fork_builds_its_own_runtime(fresh_runtime: object) -> None:
    parent_runtime = get_runtime()
    parent_backend = run_async(_backend_pid)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            reset_after_fork()
            child_runtime = get_runtime()
            child_backend = run_async(_backend_pid)
            ok = child_runtime is not parent_runtime and child_backend != parent_backend
            os.write(write, str(child_backend).encode())
            code = 0 if ok else 2
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(child, 0)
    child_backend = int(os.read(read, 64) or b"0")
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_backend != parent_backend
    # the parent's pooled connection survived the child's start and exit
    assert run_async(_backend_pid) == parent_backend


def test_task_signals_reset_runtime_in_a_forked_child(fresh_runtime: object) -> None:
    get_runtime()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        from app.worker import tasks

        tasks._after_fork()
        os._exit(0 if runtime_module._runtime is None else 3)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
