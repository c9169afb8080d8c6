"""Logging in and out: argon2, server-side sessions, cookies, login CSRF, throttling."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
import pytest
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.responses import Response

from app.core import redis_keys
from app.core.config import Settings
from app.db.models import StaffUser
from app.web.guards import set_session_cookie
from tests.web.conftest import (
    CHEAP_HASHER,
    EMAIL,
    PASSWORD,
    add_staff,
    csrf_in,
    login,
    page_csrf,
    running,
    web_settings,
)

if TYPE_CHECKING:
    from tests.conftest import TestServices


async def test_login_sets_a_safe_session_cookie_and_opens_the_inbox(
    web: httpx.AsyncClient, staff: StaffUser, redis_client: aioredis.Redis
) -> None:
    response = await login(web)
    assert response.status_code == 303
    assert response.headers["location"] == "/inbox"
    cookie = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith("philia_staff=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # the test environment is plain http
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    # Redis holds a digest of the token, never the token; idle expiry is 12 h.
    assert await redis_client.get(f"{redis_keys.PREFIX}:staff:session:{token}") is None
    assert 11 * 3600 < await redis_client.ttl(redis_keys.staff_session(token)) <= 12 * 3600
    inbox = await web.get("/inbox")
    assert inbox.status_code == 200
    assert "Ana" in inbox.text
    assert inbox.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in inbox.headers["content-security-policy"]


async def test_emails_are_matched_case_insensitively(
    web: httpx.AsyncClient, staff: StaffUser
) -> None:
    assert (await login(web, email="  ANA@Philia.Test ")).status_code == 303


@pytest.mark.parametrize(
    ("email", "password"),
    [
        pytest.param(EMAIL, "wrong password!", id="wrong-password"),
        pytest.param("nobody@philia.test", PASSWORD, id="unknown-email"),
    ],
)
async def test_failed_login_gives_one_message_and_no_session(
    web: httpx.AsyncClient, staff: StaffUser, email: str, password: str
) -> None:
    response = await login(web, email=email, password=password)
    assert response.status_code == 401
    assert "Wrong email or password." in response.text
    assert "philia_staff" not in web.cookies
    assert (await web.get("/inbox")).status_code == 303


async def test_disabled_account_cannot_log_in(
    web: httpx.AsyncClient, staff: StaffUser, committed_db: AsyncEngine
) -> None:
    async with AsyncSession(committed_db) as session, session.begin():
        (await session.get_one(StaffUser, staff.id)).is_active = False
    assert (await login(web)).status_code == 401


async def test_login_form_needs_its_csrf_token(web: httpx.AsyncClient, staff: StaffUser) -> None:
    await web.get("/login")  # sets the login CSRF cookie
    form = {"email": EMAIL, "password": PASSWORD, "next": "/inbox"}
    missing = await web.post("/login", data=form)
    wrong = await web.post("/login", data={**form, "csrf_token": "forged-token-value"})
    assert missing.status_code == wrong.status_code == 403
    assert "philia_staff" not in web.cookies


async def test_next_only_leads_to_staff_pages(web: httpx.AsyncClient, staff: StaffUser) -> None:
    page = await web.get("/login", params={"next": "https://evil.example/"})
    response = await web.post(
        "/login",
        data={
            "email": EMAIL,
            "password": PASSWORD,
            "csrf_token": csrf_in(page.text),
            "next": "//evil.example/inbox",
        },
    )
    assert response.headers["location"] == "/inbox"


async def test_a_page_asked_for_without_a_session_goes_to_login_and_back(
    web: httpx.AsyncClient, staff: StaffUser
) -> None:
    response = await web.get("/inbox/7")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/inbox/7"
    page = await web.get(response.headers["location"])
    assert 'name="next" value="/inbox/7"' in page.text


async def test_email_is_locked_after_five_failures_even_for_the_right_password(
    web: httpx.AsyncClient, staff: StaffUser, committed_db: AsyncEngine
) -> None:
    for _ in range(5):
        assert (await login(web, password="not the password")).status_code == 401
    locked = await login(web)
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.text
    assert "try again in 15 minutes" in locked.text
    assert 14 * 60 < int(locked.headers["retry-after"]) <= 15 * 60
    assert "philia_staff" not in web.cookies
    # The lock is per email (the per-IP limit is higher): a colleague still gets in.
    await add_staff(committed_db, "bo@philia.test", name="Bo")
    assert (await login(web, email="bo@philia.test")).status_code == 303


async def test_a_parallel_burst_of_guesses_gets_no_more_than_the_limit(
    web: httpx.AsyncClient, staff: StaffUser
) -> None:
    page = await web.get("/login")
    form = {"email": EMAIL, "password": "guess", "csrf_token": csrf_in(page.text)}
    answers = await asyncio.gather(*(web.post("/login", data=form) for _ in range(12)))
    statuses = sorted(answer.status_code for answer in answers)
    # Attempts are counted before the (slow) password check, so only five are checked.
    assert statuses == [401] * 5 + [429] * 7


async def test_an_ip_guessing_at_many_emails_is_locked(
    services: TestServices,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    staff: StaffUser,
) -> None:
    settings = web_settings(services, staff_login_max_failures_per_ip=3)
    async with running(settings) as client:
        for guess in ("a@philia.test", "b@philia.test", "c@philia.test"):
            assert (await login(client, email=guess)).status_code == 401
        locked = await login(client)
        assert locked.status_code == 429
        assert "Too many failed logins" in locked.text


async def test_a_success_clears_the_email_count(web: httpx.AsyncClient, staff: StaffUser) -> None:
    for _ in range(4):
        await login(web, password="not the password")
    assert (await login(web)).status_code == 303
    web.cookies.clear()
    for _ in range(4):
        assert (await login(web, password="not the password")).status_code == 401
    assert (await login(web)).status_code == 303


async def test_logout_ends_the_session_on_the_server(
    web: httpx.AsyncClient, staff: StaffUser
) -> None:
    assert (await login(web)).status_code == 303
    token = web.cookies["philia_staff"]
    csrf = await page_csrf(web)
    response = await web.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert (await web.get("/inbox")).status_code == 303
    # A copy of the old cookie is worth nothing now.
    web.cookies.set("philia_staff", token)
    assert (await web.get("/inbox")).status_code == 303


async def test_logout_needs_the_csrf_token(signed_in: httpx.AsyncClient) -> None:
    assert (await signed_in.post("/logout")).status_code == 403
    assert (await signed_in.post("/logout", data={"csrf_token": "x" * 43})).status_code == 403
    assert (await signed_in.get("/inbox")).status_code == 200
    page = await signed_in.get("/logout")
    assert page.status_code == 200 and "Log out?" in page.text


async def test_a_session_ends_after_its_idle_time(
    services: TestServices,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    staff: StaffUser,
) -> None:
    settings = web_settings(services, staff_session_idle_hours=1 / 3600)
    async with running(settings) as client:
        assert (await login(client)).status_code == 303
        assert (await client.get("/inbox")).status_code == 200
        await asyncio.sleep(1.5)
        assert (await client.get("/inbox")).status_code == 303


async def test_a_hash_with_old_parameters_is_upgraded_at_login(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    older = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    staff = await add_staff(committed_db, hasher=older)
    assert "m=2048,t=2" in staff.password_hash
    async with running(web_settings(services), hasher=CHEAP_HASHER) as client:
        assert (await login(client)).status_code == 303
    async with AsyncSession(committed_db) as session:
        stored = await session.scalar(select(StaffUser).where(StaffUser.id == staff.id))
    assert stored is not None
    assert "m=1024,t=1" in stored.password_hash
    assert stored.last_login_at is not None
    CHEAP_HASHER.verify(stored.password_hash, PASSWORD)


def test_production_cookies_are_secure_and_host_only() -> None:
    settings = Settings(
        environment="production",
        database_url="postgresql://db.internal/philia",
        redis_url="redis://cache.internal:6379/0",
        tiktok_client_key="ck-live",
        tiktok_client_secret="Zq8vL2mN4pR7sT1wX5yB",
        tiktok_business_id="biz-live",
        tiktok_access_token="act.9fK2mQ7xL4vN8pR3sT6wY1zB",
        tiktok_refresh_token="rft.3hJ8kM2nP5qR9tV4wX7yZ1aC",
        secret_key="k3Jd9QmZ2vLx8PnR4tWy7BcF1gHs6NaE0uYo",
    )
    response = Response()
    set_session_cookie(response, settings, "token-value")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-philia_staff=token-value")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/" in cookie


async def test_logging_in_again_replaces_the_session(
    web: httpx.AsyncClient, staff: StaffUser
) -> None:
    assert (await login(web)).status_code == 303
    first = web.cookies["philia_staff"]
    # A login form left open in another tab, submitted while still logged in.
    web.cookies.set("philia_login_csrf", "T" * 43, domain="philia.test", path="/login")
    again = await web.post(
        "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": "T" * 43}
    )
    assert again.status_code == 303
    second = web.cookies["philia_staff"]
    assert second != first
    web.cookies.delete("philia_staff")
    web.cookies.set("philia_staff", first, domain="philia.test")
    assert (await web.get("/inbox")).status_code == 303
    web.cookies.set("philia_staff", second, domain="philia.test")
    assert (await web.get("/inbox")).status_code == 200
