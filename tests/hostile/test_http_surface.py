"""What the app shows the internet: security headers on every page, no API map in
production, /metrics only for the scraper, the login form's cookie host-only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.http_headers import HSTS
from tests.web.conftest import PRODUCTION, add_staff, login, running, web_settings

if TYPE_CHECKING:
    from tests.conftest import TestServices

METRICS_TOKEN = "mT7vQ2xL9pR4sK8wN3yB6cF1gH5jD0zA"
HTML_PAGES = ("/login", "/inbox", "/inbox/1", "/admin/", "/admin/item/list", "/simulator")


def assert_secured(response: httpx.Response, path: str) -> None:
    assert response.headers.get("x-content-type-options") == "nosniff", path
    assert response.headers.get("referrer-policy") == "same-origin", path
    assert response.headers.get("x-frame-options") == "DENY", path
    if response.headers.get("content-type", "").startswith("text/html"):
        policy = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in policy, path
        assert "script-src 'self'" in policy, path
        assert "unsafe-eval" not in policy, path


async def test_every_page_and_endpoint_carries_the_security_headers(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    await add_staff(committed_db)
    async with running(web_settings(services)) as client:
        anonymous = [await client.get(path) for path in (*HTML_PAGES, "/docs", "/metrics")]
        assert await login(client)
        signed_in = [await client.get(path) for path in HTML_PAGES]
        for response in [*anonymous, *signed_in]:
            assert_secured(response, str(response.url))
        html = [r for r in signed_in if r.headers.get("content-type", "").startswith("text/html")]
        assert len(html) >= 5  # the pages themselves, not only redirects
        # Outside production no HSTS: development runs on plain http://127.0.0.1.
        assert all("strict-transport-security" not in r.headers for r in signed_in)


async def test_production_hides_the_api_map_and_sends_hsts(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    async with running(web_settings(services, **PRODUCTION)) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert (await client.get(path)).status_code == 404, path
        for path in ("/login", "/healthz", "/metrics"):
            response = await client.get(path)
            assert response.headers.get("strict-transport-security") == HSTS, path
            assert_secured(response, path)


async def test_metrics_in_production_need_the_token(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    async with running(web_settings(services, **PRODUCTION)) as client:
        assert (await client.get("/metrics")).status_code == 404
    settings = web_settings(services, **PRODUCTION, metrics_token=METRICS_TOKEN)
    async with running(settings) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        basic = await client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"})
        assert basic.status_code == 401
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert scraped.status_code == 200
        assert "philia_webhook_requests" in scraped.text


async def test_development_metrics_stay_open_unless_a_token_is_set(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    async with running(web_settings(services)) as client:
        assert (await client.get("/metrics")).status_code == 200
    async with running(web_settings(services, metrics_token=METRICS_TOKEN)) as client:
        assert (await client.get("/metrics")).status_code == 401


async def test_production_login_form_cookie_is_host_only(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    async with running(web_settings(services, **PRODUCTION)) as client:
        page = await client.get("/login")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("__Host-philia_login_csrf=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/;" in cookie + ";"
    assert "Domain" not in cookie
