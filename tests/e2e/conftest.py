"""The real thing: API and Celery worker processes, the TikTok stand-in, real PostgreSQL
and Redis. One stack per module; each test uses conversations of its own."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import Settings, get_settings
from app.sandbox.control import SandboxControl
from app.sandbox.stack import Stack, free_port
from tests.conftest import TestServices, truncate_all

T = TypeVar("T")

E2E_ENV = {
    "TIKTOK_CLIENT_SECRET": "e2e-client-secret",
    "TIKTOK_ACCESS_TOKEN": "dev",
    "RETRY_BACKOFF_BASE_SECONDS": "0.2",
    "RETRY_BACKOFF_CAP_SECONDS": "2",
    "TOO_FAST_BACKOFF_SECONDS": "1.5",
    "SEND_UNKNOWN_GRACE_SECONDS": "3",
    "OUTBOX_SWEEP_SECONDS": "1",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "8",
    "LOG_JSON": "true",
}


@contextlib.contextmanager
def running_stack(root: Path, extra_env: dict[str, str]) -> Iterator[Stack]:
    """The whole bot as processes, its logs' tails printed when it stops (pytest shows them
    for a failed test)."""
    settings = Settings(**{**get_settings().model_dump(), "tiktok_access_token": "dev"})
    bot = Stack(
        settings,
        data_dir=root,
        api_port=free_port(),
        log_dir=root / "logs",
        extra_env=extra_env,
        worker_concurrency=2,
    )
    try:
        bot.start_services()
        bot.start_processes()
        yield bot
    finally:
        bot.stop()
        for log in sorted((root / "logs").glob("*.log")):
            tail = log.read_text(errors="replace")[-3000:]
            print(f"\n===== {log.name} (tail) =====\n{tail}")


@contextlib.contextmanager
def module_stack(
    services: TestServices,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    env: dict[str, str],
) -> Iterator[Stack]:
    """A stack for one test module; the rows it wrote are gone when it stops."""
    try:
        with running_stack(tmp_path_factory.mktemp(name), env) as bot:
            yield bot
    finally:
        asyncio.run(_truncate(services.database_url))


@pytest.fixture(scope="module")
def stack(services: TestServices, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with module_stack(services, tmp_path_factory, "e2e", E2E_ENV) as bot:
        yield bot


async def _truncate(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        await truncate_all(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def sandbox(stack: Stack) -> AsyncIterator[SandboxControl]:
    assert stack.sandbox_url is not None
    async with SandboxControl(stack.sandbox_url) as control:
        await control.clear_failures()
        yield control


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    within: float = 20.0,
    interval: float = 0.1,
) -> T:
    deadline = time.monotonic() + within
    value = await probe()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s; last value: {value!r}")
        await asyncio.sleep(interval)
        value = await probe()
    return value


async def settle(seconds: float) -> None:
    """Give a system that should do nothing the time to do the wrong thing."""
    await asyncio.sleep(seconds)
