"""Connect TikTok as a member of staff does it: the page, TikTok's authorisation page (the
stand-in, over real HTTP), the way back to the callback, and the webhook registration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import get_settings
from app.db.models import StaffUser, TikTokCredential
from app.db.session import create_session_factory
from app.sandbox.control import SandboxControl
from app.sandbox.owner import authorise_as_owner
from app.sandbox.server import BackgroundServer, start_tiktok_sandbox
from app.services.tiktok.connect import COMMAND_LINE, TikTokConnector
from app.services.tiktok.transport import build_http_client
from tests.conftest import TestServices
from tests.web.conftest import csrf_in, login, running, web_settings

PUBLIC = "https://shop.philia.test"


@pytest.fixture(scope="module")
def tiktok() -> Iterator[BackgroundServer]:
    server = start_tiktok_sandbox(get_settings(), webhook_url=None)
    yield server
    server.stop()


@pytest.fixture
async def sandbox(tiktok: BackgroundServer) -> AsyncIterator[SandboxControl]:
    async with SandboxControl(tiktok.url) as control:
        await control.reset()
        yield control


@pytest.fixture
async def web(
    services: TestServices,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    tiktok: BackgroundServer,
    sandbox: SandboxControl,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = web_settings(services, tiktok_api_base=tiktok.url, public_base_url=PUBLIC)
    async with running(settings) as client:
        yield client


@pytest.fixture
async def owner() -> AsyncIterator[httpx.AsyncClient]:
    """The shop owner's browser at TikTok."""
    async with httpx.AsyncClient() as client:
        yield client


def local(url: str) -> str:
    """The bot's own address as the test client reaches it."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC
    return parts.path + (f"?{parts.query}" if parts.query else "")


def connect_link(page: str) -> str:
    marker = "data-connect-link"
    assert marker in page, "no Connect TikTok link on the page"
    before = page.split(marker)[0]
    return before.rsplit('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")


async def stored(engine: AsyncEngine) -> TikTokCredential | None:
    async with AsyncSession(engine) as session:
        return await session.scalar(select(TikTokCredential))


async def test_the_page_is_for_staff_only(web: httpx.AsyncClient) -> None:
    response = await web.get("/connect/tiktok")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/connect/tiktok")


async def test_staff_connect_the_account_and_the_webhook_is_registered(
    web: httpx.AsyncClient,
    staff: StaffUser,
    owner: httpx.AsyncClient,
    committed_db: AsyncEngine,
    sandbox: SandboxControl,
) -> None:
    await login(web)
    page = await web.get("/connect/tiktok")
    assert page.status_code == 200
    assert "data-webhook-none" in page.text  # nothing registered at TikTok yet
    assert f"{PUBLIC}/connect/tiktok/callback" in page.text  # the redirect URI to set

    back = await authorise_as_owner(owner, connect_link(page.text))
    done = await web.get(local(back))

    assert done.status_code == 200, done.text
    assert "data-notice" in done.text and "connected" in done.text
    assert f"data-webhook-url>{PUBLIC}/webhook/tiktok<" in done.text
    row = await stored(committed_db)
    assert row is not None and row.open_id == get_settings().tiktok_business_id
    webhooks = [call for call in await sandbox.calls() if call.endpoint == "webhook_update"]
    assert len(webhooks) == 1


async def test_a_callback_with_a_bad_state_changes_nothing(
    web: httpx.AsyncClient,
    staff: StaffUser,
    owner: httpx.AsyncClient,
    committed_db: AsyncEngine,
) -> None:
    await login(web)
    page = await web.get("/connect/tiktok")
    back = await authorise_as_owner(owner, connect_link(page.text))
    forged = local(back).replace("state=", "state=x")
    response = await web.get(forged)
    assert response.status_code == 400
    assert "data-problem" in response.text and "start again" in response.text
    assert await stored(committed_db) is None


async def test_a_session_that_ended_meanwhile_logs_in_and_goes_on(
    web: httpx.AsyncClient,
    staff: StaffUser,
    owner: httpx.AsyncClient,
    committed_db: AsyncEngine,
) -> None:
    await login(web)
    page = await web.get("/connect/tiktok")
    back = local(await authorise_as_owner(owner, connect_link(page.text)))
    csrf = csrf_in(page.text)
    await web.post("/logout", data={"csrf_token": csrf})
    assert await stored(committed_db) is None

    sent_to_login = await web.get(back)
    assert sent_to_login.status_code == 303
    assert sent_to_login.headers["location"].startswith("/login?next=/connect/tiktok/callback")
    login_page = await web.get("/login")
    logged_in = await web.post(
        "/login",
        data={
            "email": staff.email,
            "password": "correct horse battery",
            "csrf_token": csrf_in(login_page.text),
            "next": back,
        },
    )
    assert logged_in.status_code == 303 and logged_in.headers["location"] == back
    done = await web.get(back)
    assert done.status_code == 200 and "connected" in done.text
    assert await stored(committed_db) is not None


async def test_a_command_line_link_finishes_without_a_session(
    web: httpx.AsyncClient,
    owner: httpx.AsyncClient,
    services: TestServices,
    tiktok: BackgroundServer,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
) -> None:
    settings = web_settings(services, tiktok_api_base=tiktok.url, public_base_url=PUBLIC)
    async with build_http_client(settings) as http:
        connector = TikTokConnector(
            settings, redis_client, create_session_factory(committed_db), http
        )
        link = await connector.start(COMMAND_LINE)
    back = await authorise_as_owner(owner, link)
    done = await web.get(local(back))
    assert done.status_code == 200
    assert "TikTok connected" in done.text
    assert "Log out" not in done.text  # no staff page for a visitor without a session
    assert await stored(committed_db) is not None


async def test_registering_the_webhook_again_needs_the_csrf_token(
    web: httpx.AsyncClient, staff: StaffUser, sandbox: SandboxControl
) -> None:
    await login(web)
    page = await web.get("/connect/tiktok")
    refused = await web.post("/connect/tiktok/webhook", data={})
    assert refused.status_code == 403
    done = await web.post("/connect/tiktok/webhook", data={"csrf_token": csrf_in(page.text)})
    assert done.status_code == 200
    assert f"TikTok now sends direct messages to {PUBLIC}/webhook/tiktok" in done.text
    assert "(this bot)" in done.text


async def test_tiktok_failing_to_say_is_shown_not_crashed(
    web: httpx.AsyncClient, staff: StaffUser, sandbox: SandboxControl
) -> None:
    await login(web)
    await sandbox.fail_next(1, "http_502", endpoints=["webhook_list"])
    page = await web.get("/connect/tiktok")
    assert page.status_code == 200
    assert "data-webhook-problem" in page.text


async def test_a_refused_registration_is_shown_on_the_page(
    web: httpx.AsyncClient, staff: StaffUser, sandbox: SandboxControl
) -> None:
    await login(web)
    page = await web.get("/connect/tiktok")
    await sandbox.fail_next(1, "code_40001", endpoints=["webhook_update"])
    refused = await web.post("/connect/tiktok/webhook", data={"csrf_token": csrf_in(page.text)})
    assert refused.status_code == 200
    assert "data-problem" in refused.text and "Not registered" in refused.text
