"""The login lock keys on the real client address, and only a trusted proxy names it.

The API runs as production runs it (`python -m app.cli serve`, a real uvicorn on a socket):
with FORWARDED_ALLOW_IPS empty, X-Forwarded-For is not believed, so rotating it buys a
guesser nothing; with the proxy's address in FORWARDED_ALLOW_IPS, the client it names is
the address the lock counts, so one guesser behind the proxy does not lock out everyone
else behind it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.sandbox.stack import free_port, wait_for_http
from tests.web.conftest import add_staff, login

if TYPE_CHECKING:
    from tests.conftest import TestServices

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serving(services: TestServices, forwarded_allow_ips: str) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "FORWARDED_ALLOW_IPS": forwarded_allow_ips,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", 60, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


async def guess_from(url: str, forwarded_for: str, password: str) -> int:
    async with httpx.AsyncClient(
        base_url=url, headers={"X-Forwarded-For": forwarded_for}
    ) as client:
        return (await login(client, password=password)).status_code


async def test_without_a_trusted_proxy_forwarded_for_is_ignored(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    await add_staff(committed_db)
    with serving(services, forwarded_allow_ips="") as url:
        statuses = [await guess_from(url, f"203.0.113.{n}", "wrong") for n in range(6)]
        assert statuses == [401] * 5 + [429]
        # The right password from "another" forged address is still locked out.
        assert await guess_from(url, "192.0.2.55", "correct horse battery") == 429


async def test_behind_a_trusted_proxy_each_client_has_its_own_count(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    await add_staff(committed_db)
    with serving(services, forwarded_allow_ips="127.0.0.1") as url:
        statuses = [await guess_from(url, "203.0.113.9", "wrong") for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        # The proxy appends the real client; its left-hand part is what a client wrote.
        assert await guess_from(url, "192.0.2.55", "correct horse battery") == 303
        assert await guess_from(url, "192.0.2.55, 203.0.113.9", "correct horse battery") == 429
