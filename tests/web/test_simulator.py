"""The simulator's gate and its backend's answers when there is no sandbox (the browser
tests in tests/browser drive it against a real sandbox)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import Settings
from app.db.models import Item, ItemVideo
from tests.web.conftest import PRODUCTION, running, web_settings

if TYPE_CHECKING:
    from tests.conftest import TestServices

NO_SANDBOX = {"sandbox_url": None, "tiktok_api_base": "https://business-api.tiktok.com"}


def test_sandbox_url_comes_from_sandbox_url_or_a_non_tiktok_api_base() -> None:
    assert Settings(sandbox_url="http://127.0.0.1:9/").simulator_sandbox_url == "http://127.0.0.1:9"
    assert Settings(tiktok_api_base="http://127.0.0.1:7/").simulator_sandbox_url == (
        "http://127.0.0.1:7"
    )
    assert Settings(**NO_SANDBOX).simulator_sandbox_url is None  # type: ignore[arg-type]


def test_simulator_is_on_outside_production_and_off_in_it_unless_enabled() -> None:
    assert Settings(environment="development").simulator_on  # type: ignore[arg-type]
    assert Settings(environment="test").simulator_on  # type: ignore[arg-type]
    assert not Settings(**PRODUCTION).simulator_on  # type: ignore[arg-type]
    assert Settings(**PRODUCTION, simulator_enabled=True).simulator_on  # type: ignore[arg-type]


async def test_production_answers_404_everywhere_under_simulator(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    async with running(web_settings(services, **PRODUCTION)) as client:
        for path in ("/simulator", "/simulator/api/messages?user_id=a", "/simulator/media/x"):
            assert (await client.get(path)).status_code == 404, path
        sent = await client.post("/simulator/api/send", json={"user_id": "a", "kind": "photo"})
        assert sent.status_code == 404


async def test_production_serves_the_page_when_explicitly_enabled(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    settings = web_settings(services, **PRODUCTION, simulator_enabled=True)
    async with running(settings) as client:
        assert (await client.get("/simulator")).status_code == 200


async def test_page_lists_the_shops_videos_and_says_when_no_sandbox_is_configured(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    async with AsyncSession(committed_db) as session, session.begin():
        item = Item(
            sku="PT-0042",
            title="Denim jacket",
            category="outerwear",
            gender="unisex",
            condition="good",
            currency="USD",
            price=25,
        )
        session.add(item)
        await session.flush()
        session.add(ItemVideo(item_id=item.id, video_id="7300000000000000042"))
    async with running(web_settings(services, **NO_SANDBOX)) as client:
        page = await client.get("/simulator")
        assert page.status_code == 200
        assert '<option value="7300000000000000042">PT-0042 · Denim jacket</option>' in page.text
        assert "No TikTok sandbox is configured" in page.text
        assert 'src="/static/staff/simulator.js"' in page.text
        sent = await client.post("/simulator/api/send", json={"user_id": "a", "kind": "photo"})
        assert sent.status_code == 503
        assert "SANDBOX_URL" in sent.text
        script = await client.get("/static/staff/simulator.js")
        assert script.status_code == 200


async def test_send_takes_json_only_and_checks_what_it_is_given(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    async with running(web_settings(services, **NO_SANDBOX)) as client:
        # A cross-site form can only send form encodings: refused before anything happens.
        form = await client.post("/simulator/api/send", data={"user_id": "a", "kind": "photo"})
        assert form.status_code == 415
        empty = await client.post("/simulator/api/send", json={"user_id": "a", "kind": "text"})
        assert empty.status_code == 422
        bad_user = await client.post(
            "/simulator/api/send", json={"user_id": "a b<", "kind": "photo"}
        )
        assert bad_user.status_code == 422


async def test_media_without_a_sandbox_falls_back_to_the_placeholder_png(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    async with running(web_settings(services, sandbox_url="http://127.0.0.1:9")) as client:
        response = await client.get("/simulator/media/v0f044gabc")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
