"""What is wrong with TikTok, shown to staff: a banner on the inbox per warning, and the
`tiktok reconnected` command that clears the disconnection."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from app.cli.main import cli as cli_app
from app.core import redis_keys
from app.core.config import Settings, get_settings
from app.services.tiktok.connection import disconnected_since, mark_disconnected
from tests.conftest import LoggedEvents, TestServices
from tests.web.conftest import PRODUCTION, running

BANNER = '<p class="error banner" role="alert" data-alert="{code}">'


async def test_the_inbox_shows_a_banner_per_warning(
    signed_in: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    quiet = (await signed_in.get("/inbox")).text
    assert "banner" not in quiet

    await mark_disconnected(redis_client)
    await redis_client.set(redis_keys.TIKTOK_OTHER_ACCOUNT, "<b>other</b>")
    page = await signed_in.get("/inbox")
    assert page.status_code == 200
    assert BANNER.format(code="tiktok_disconnected") in page.text
    assert "TikTok disconnected: the shop removed the app&#39;s authorisation" in page.text
    assert BANNER.format(code="tiktok_account_mismatch") in page.text
    assert "&lt;b&gt;other&lt;/b&gt;" in page.text and "<b>other</b>" not in page.text
    assert get_settings().tiktok_business_id in page.text


async def test_tiktok_reconnected_clears_the_flag(redis_client: aioredis.Redis) -> None:
    await mark_disconnected(redis_client)
    cleared = await asyncio.to_thread(CliRunner().invoke, cli_app, ["tiktok", "reconnected"])
    assert cleared.exit_code == 0, cleared.output
    assert "marked connected" in cleared.output
    assert await disconnected_since(redis_client) is None
    again = await asyncio.to_thread(CliRunner().invoke, cli_app, ["tiktok", "reconnected"])
    assert again.exit_code == 0 and "nothing to do" in again.output


@pytest.mark.parametrize("business_id_set", [False, True])
async def test_a_deployment_never_connected_says_so_at_start_and_on_readyz(
    services: TestServices,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    logged_events: LoggedEvents,
    business_id_set: bool,
) -> None:
    # Without tokens nothing can be sent, whether TIKTOK_BUSINESS_ID is set or not.
    unconnected = {"tiktok_access_token", "tiktok_refresh_token"}
    if not business_id_set:
        unconnected.add("tiktok_business_id")
    values = get_settings().model_dump(exclude=unconnected)
    values.update({k: v for k, v in PRODUCTION.items() if k not in unconnected})
    values.update(
        database_url=services.database_url,
        redis_url=services.redis_url,
        log_json=True,
        public_base_url="https://shop.philia.test",
    )
    settings = Settings(**values)
    logged_events()
    async with running(settings) as client:
        ready = (await client.get("/readyz")).json()
    codes = [warning["code"] for warning in ready["warnings"]]
    assert codes == ["tiktok_not_connected"]
    started = [e for e in logged_events() if e["event"] == "tiktok_alert"]
    assert [e["code"] for e in started] == ["tiktok_not_connected"]
    assert "Connect TikTok" in started[0]["message"]
