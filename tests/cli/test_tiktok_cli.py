"""`python -m app.cli tiktok ...`: connecting the shop from a terminal, as a process against
the TikTok stand-in over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import PROJECT_ROOT, get_settings
from app.sandbox.control import SandboxControl
from app.sandbox.owner import authorise_as_owner
from app.sandbox.server import BackgroundServer, start_tiktok_sandbox
from tests.conftest import TestServices

PUBLIC = "https://shop.philia.test"


@pytest.fixture(scope="module")
def tiktok() -> Iterator[BackgroundServer]:
    server = start_tiktok_sandbox(get_settings(), webhook_url=None)
    yield server
    server.stop()


def cli(
    services: TestServices, tiktok: BackgroundServer, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "TIKTOK_API_BASE": tiktok.url,
        "PUBLIC_BASE_URL": PUBLIC,
        "LOG_JSON": "true",
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "tiktok", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_connect_from_a_terminal(
    services: TestServices, tiktok: BackgroundServer, committed_db: AsyncEngine
) -> None:
    async with SandboxControl(tiktok.url) as sandbox:
        await sandbox.reset()
    before = cli(services, tiktok, "status")
    assert before.returncode == 0, before.stderr
    assert "from: configured" in before.stdout

    link = cli(services, tiktok, "authorize-url")
    assert link.returncode == 0, link.stderr
    url = link.stdout.strip().splitlines()[-1]
    assert url.startswith(f"{tiktok.url}/portal/auth?")
    async with httpx.AsyncClient() as owner:
        back = await authorise_as_owner(owner, url)
    assert back.startswith(f"{PUBLIC}/connect/tiktok/callback?")

    connected = cli(services, tiktok, "connect", back)
    assert connected.returncode == 0, connected.stderr
    assert f"connected TikTok account {get_settings().tiktok_business_id}" in connected.stdout
    assert f"webhook: {PUBLIC}/webhook/tiktok" in connected.stdout

    after = cli(services, tiktok, "status")
    assert "from: connected" in after.stdout and "granted: " in after.stdout
    shown = cli(services, tiktok, "webhook-show")
    assert shown.stdout.strip() == f"webhook: {PUBLIC}/webhook/tiktok"

    # the same address again: its state is used up
    again = cli(services, tiktok, "connect", back)
    assert again.returncode == 1
    assert "already used" in again.stderr


async def test_a_refused_connection_exits_non_zero_with_the_reason(
    services: TestServices, tiktok: BackgroundServer, committed_db: AsyncEngine
) -> None:
    refused = cli(services, tiktok, "connect", f"{PUBLIC}/connect/tiktok/callback?auth_code=x")
    assert refused.returncode == 1
    assert "no state" in refused.stderr


async def test_webhook_register_needs_tiktok_to_agree(
    services: TestServices, tiktok: BackgroundServer, committed_db: AsyncEngine
) -> None:
    async with SandboxControl(tiktok.url) as sandbox:
        await sandbox.reset()
        await sandbox.fail_next(1, "code_40001", endpoints=["webhook_update"])
        failed = cli(services, tiktok, "webhook-register")
        assert failed.returncode == 1 and "TikTok answered" in failed.stderr
        done = cli(services, tiktok, "webhook-register")
        assert done.returncode == 0 and f"{PUBLIC}/webhook/tiktok" in done.stdout
