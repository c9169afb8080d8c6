"""What is wrong with TikTok, shown to staff: a banner on the inbox per warning, and the
`tiktok reconnected` command that clears the disconnection."""

from __future__ import annotations

import asyncio

import httpx
import redis.asyncio as aioredis
from typer.testing import CliRunner

from app.cli.main import cli as cli_app
from app.core import redis_keys
from app.core.config import get_settings
from app.services.tiktok.connection import disconnected_since, mark_disconnected

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
