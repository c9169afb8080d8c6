"""Connecting the shop's account against the TikTok stand-in over real HTTP: the
authorisation link and its state, the code exchange, the stored (encrypted) tokens and
open_id, the webhook registration, and every way it can be refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.core.config import Environment, Settings
from app.db.models import TikTokCredential
from app.db.session import SessionFactory
from app.sandbox.control import SandboxControl
from app.sandbox.owner import authorise_as_owner
from app.services.tiktok.account import BusinessAccount
from app.services.tiktok.client import TikTokClient
from app.services.tiktok.connect import (
    COMMAND_LINE,
    ConnectRefused,
    TikTokConnector,
    staff_holder,
)
from app.services.tiktok.connection import disconnected_since, mark_disconnected
from app.services.tiktok.errors import TikTokAuthError
from app.services.tiktok.tokens import DbTokenStore, refresh_lock
from app.services.tiktok.transport import build_http_client
from tests.conftest import TestServices

ANA = staff_holder(1)
BEN = staff_holder(2)


def params_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
async def tiktok_http(tiktok_settings: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    """The bot's client for TikTok's API."""
    async with build_http_client(tiktok_settings) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The shop owner's browser."""
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def connector(
    tiktok_settings: Settings,
    token_sessions: SessionFactory,
    redis_client: aioredis.Redis,
    tiktok_http: aiohttp.ClientSession,
    sandbox: SandboxControl,
) -> TikTokConnector:
    return TikTokConnector(tiktok_settings, redis_client, token_sessions, tiktok_http)


async def owner_says_yes(
    connector: TikTokConnector, http: httpx.AsyncClient, holder: str = ANA, **answer: object
) -> dict[str, str]:
    link = await connector.start(holder)
    back = await authorise_as_owner(http, link, **answer)  # type: ignore[arg-type]
    assert back.startswith(connector.redirect_uri + "?")
    return params_of(back)


async def stored_row(engine: AsyncEngine) -> TikTokCredential | None:
    async with AsyncSession(engine) as session:
        return await session.scalar(select(TikTokCredential))


async def test_the_link_asks_for_the_messaging_scopes_with_a_state(
    connector: TikTokConnector, tiktok_settings: Settings
) -> None:
    link = await connector.start(ANA)
    assert link.startswith(f"{tiktok_settings.tiktok_api_base}/portal/auth?")
    query = params_of(link)
    assert query["app_id"] == tiktok_settings.tiktok_client_key
    assert query["redirect_uri"] == connector.redirect_uri
    assert len(query["state"]) >= 32
    assert set(query["scope"].split(",")) >= {
        "message.list.read",
        "message.list.send",
        "message.list.manage",
    }
    # every link has its own state
    assert params_of(await connector.start(ANA))["state"] != query["state"]


async def test_connecting_stores_the_tokens_encrypted_and_the_account(
    connector: TikTokConnector,
    http: httpx.AsyncClient,
    sandbox: SandboxControl,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    tiktok_settings: Settings,
    token_sessions: SessionFactory,
) -> None:
    await mark_disconnected(redis_client)
    await redis_client.set(redis_keys.TIKTOK_ACCESS_TOKEN, "stale")
    back = await owner_says_yes(connector, http)

    connected = await connector.finish(state=back["state"], auth_code=back["auth_code"], holder=ANA)

    issued = await sandbox.tokens()
    assert connected.open_id == tiktok_settings.tiktok_business_id
    assert connected.scopes is not None and "message.list.send" in connected.scopes
    row = await stored_row(committed_db)
    assert row is not None and row.open_id == connected.open_id
    assert row.connected_at is not None and row.scope is not None
    # encrypted at rest: neither token appears in the row as it is
    assert issued.access_token not in row.access_token
    assert issued.refresh_token not in row.refresh_token
    pair = await DbTokenStore.from_settings(token_sessions, tiktok_settings).load()
    assert (pair.access_token, pair.refresh_token) == (issued.access_token, issued.refresh_token)
    # the stale cached token is gone, the disconnection is over
    assert await redis_client.get(redis_keys.TIKTOK_ACCESS_TOKEN) is None
    assert await disconnected_since(redis_client) is None
    # and TikTok now sends the shop's webhooks to this bot
    assert connected.webhook is not None
    assert connected.webhook.callback_url == connector.callback_url
    on_file = await connector.webhook_on_file()
    assert on_file.callback_url == connector.callback_url


async def test_the_connected_open_id_is_the_business_id_of_every_send(
    connector: TikTokConnector,
    http: httpx.AsyncClient,
    sandbox: SandboxControl,
    tiktok_settings: Settings,
    token_sessions: SessionFactory,
    services: TestServices,
    tiktok_http: aiohttp.ClientSession,
) -> None:
    # The configured id is wrong; the stand-in only takes sends for its own account.
    wrong = tiktok_settings.model_copy(update={"tiktok_business_id": "not-the-open-id"})
    wrong_connector = TikTokConnector(wrong, connector.redis, token_sessions, tiktok_http)
    back = await owner_says_yes(wrong_connector, http)
    connected = await wrong_connector.finish(
        state=back["state"], auth_code=back["auth_code"], holder=ANA
    )
    assert any("TIKTOK_BUSINESS_ID is not-the-open-id" in note for note in connected.notes)

    redis = aioredis.Redis.from_url(services.redis_url)  # another process's connection
    try:
        client = TikTokClient.with_stored_tokens(wrong, tiktok_http, redis, token_sessions)
        assert await client.business_id() == tiktok_settings.tiktok_business_id
        message_id = await client.send_text("conversation-1", "hello from the connected shop")
    finally:
        await redis.aclose()
    (sent,) = await sandbox.messages()
    assert sent.message_id == message_id


async def test_the_account_survives_a_redis_flush(
    connector: TikTokConnector,
    http: httpx.AsyncClient,
    redis_client: aioredis.Redis,
    tiktok_settings: Settings,
    token_sessions: SessionFactory,
    tiktok_http: aiohttp.ClientSession,
) -> None:
    wrong = tiktok_settings.model_copy(update={"tiktok_business_id": "not-the-open-id"})
    wrong_connector = TikTokConnector(wrong, redis_client, token_sessions, tiktok_http)
    back = await owner_says_yes(wrong_connector, http)
    await wrong_connector.finish(state=back["state"], auth_code=back["auth_code"], holder=ANA)
    await redis_client.flushdb()
    account = BusinessAccount(wrong, redis_client, token_sessions)
    assert await account.business_id() == tiktok_settings.tiktok_business_id


async def test_the_code_may_come_as_code(
    connector: TikTokConnector, http: httpx.AsyncClient, committed_db: AsyncEngine
) -> None:
    back = await owner_says_yes(connector, http, code_parameter="code")
    assert "auth_code" not in back
    await connector.finish(state=back["state"], auth_code=back["code"], holder=ANA)
    row = await stored_row(committed_db)
    assert row is not None and row.open_id is not None


async def test_a_state_works_once(connector: TikTokConnector, http: httpx.AsyncClient) -> None:
    back = await owner_says_yes(connector, http)
    await connector.finish(state=back["state"], auth_code=back["auth_code"], holder=ANA)
    with pytest.raises(ConnectRefused, match="already used"):
        await connector.finish(state=back["state"], auth_code=back["auth_code"], holder=ANA)


@pytest.mark.parametrize("state", [None, "", "made-up-state"])
async def test_a_missing_or_unknown_state_is_refused(
    connector: TikTokConnector,
    http: httpx.AsyncClient,
    committed_db: AsyncEngine,
    state: str | None,
) -> None:
    back = await owner_says_yes(connector, http)
    with pytest.raises(ConnectRefused):
        await connector.finish(state=state, auth_code=back["auth_code"], holder=ANA)
    assert await stored_row(committed_db) is None


async def test_someone_elses_state_is_refused_and_left_for_its_holder(
    connector: TikTokConnector, http: httpx.AsyncClient, committed_db: AsyncEngine
) -> None:
    back = await owner_says_yes(connector, http, holder=ANA)
    with pytest.raises(ConnectRefused, match="someone else"):
        await connector.finish(state=back["state"], auth_code=back["auth_code"], holder=BEN)
    assert await stored_row(committed_db) is None
    await connector.finish(state=back["state"], auth_code=back["auth_code"], holder=ANA)
    assert await stored_row(committed_db) is not None


async def test_a_command_line_link_needs_no_session(
    connector: TikTokConnector, http: httpx.AsyncClient, committed_db: AsyncEngine
) -> None:
    back = await owner_says_yes(connector, http, holder=COMMAND_LINE)
    await connector.finish(state=back["state"], auth_code=back["auth_code"], holder=None)
    row = await stored_row(committed_db)
    assert row is not None and row.open_id is not None


async def test_a_staff_link_is_not_finished_without_its_session(
    connector: TikTokConnector, http: httpx.AsyncClient
) -> None:
    back = await owner_says_yes(connector, http, holder=ANA)
    with pytest.raises(ConnectRefused, match="someone else"):
        await connector.finish(state=back["state"], auth_code=back["auth_code"], holder=None)


async def test_the_owner_declining_is_reported(
    connector: TikTokConnector, http: httpx.AsyncClient, committed_db: AsyncEngine
) -> None:
    back = await owner_says_yes(connector, http, decision="cancel")
    assert back["error"] == "access_denied"
    with pytest.raises(ConnectRefused, match="did not authorise"):
        await connector.finish(
            state=back["state"], auth_code=None, holder=ANA, error=back["error_description"]
        )
    assert await stored_row(committed_db) is None


async def test_a_grant_without_the_messaging_scopes_keeps_the_old_connection(
    connector: TikTokConnector,
    http: httpx.AsyncClient,
    committed_db: AsyncEngine,
    sandbox: SandboxControl,
) -> None:
    first = await owner_says_yes(connector, http)
    await connector.finish(state=first["state"], auth_code=first["auth_code"], holder=ANA)
    before = await stored_row(committed_db)

    partial = await owner_says_yes(connector, http, scopes=["user.info.basic", "message.list.read"])
    with pytest.raises(ConnectRefused, match=r"message\.list\.manage, message\.list\.send missing"):
        await connector.finish(state=partial["state"], auth_code=partial["auth_code"], holder=ANA)

    after = await stored_row(committed_db)
    assert before is not None and after is not None
    assert after.access_token == before.access_token


async def test_a_code_tiktok_refuses_is_reported(
    connector: TikTokConnector, http: httpx.AsyncClient, committed_db: AsyncEngine
) -> None:
    back = await owner_says_yes(connector, http)
    with pytest.raises(ConnectRefused, match="could not complete"):
        await connector.finish(state=back["state"], auth_code="ac.forged", holder=ANA)
    assert await stored_row(committed_db) is None


async def test_a_wrong_client_secret_is_reported(
    tiktok_settings: Settings,
    token_sessions: SessionFactory,
    redis_client: aioredis.Redis,
    http: httpx.AsyncClient,
    sandbox: SandboxControl,
    tiktok_http: aiohttp.ClientSession,
) -> None:
    wrong = tiktok_settings.model_copy(update={"tiktok_client_secret": SecretStr("not-the-secret")})
    connector = TikTokConnector(wrong, redis_client, token_sessions, tiktok_http)
    back = await owner_says_yes(connector, http)
    with pytest.raises(ConnectRefused, match="client_secret is wrong"):
        await connector.finish(state=back["state"], auth_code=back["auth_code"], holder=ANA)


async def test_a_failed_webhook_registration_leaves_the_account_connected(
    connector: TikTokConnector,
    http: httpx.AsyncClient,
    sandbox: SandboxControl,
    committed_db: AsyncEngine,
) -> None:
    back = await owner_says_yes(connector, http)
    await sandbox.fail_next(1, "http_503", endpoints=["webhook_update"])
    connected = await connector.finish(state=back["state"], auth_code=back["auth_code"], holder=ANA)
    assert connected.webhook is None and connected.webhook_error is not None
    row = await stored_row(committed_db)
    assert row is not None and row.open_id == connected.open_id
    # registering again works
    registered = await connector.register_webhook()
    assert registered.callback_url == connector.callback_url


async def test_status_says_where_the_business_id_comes_from(
    connector: TikTokConnector, http: httpx.AsyncClient
) -> None:
    before = await connector.status()
    assert before.source == "configured" and before.open_id is None
    back = await owner_says_yes(connector, http)
    await connector.finish(state=back["state"], auth_code=back["auth_code"], holder=ANA)
    after = await connector.status()
    assert after.source == "connected" and after.open_id == after.business_id
    assert after.connected_at is not None and after.access_expires_at is not None


async def test_production_needs_a_public_https_address(
    tiktok_settings: Settings,
    token_sessions: SessionFactory,
    redis_client: aioredis.Redis,
    http: httpx.AsyncClient,
    tiktok_http: aiohttp.ClientSession,
) -> None:
    production = tiktok_settings.model_copy(
        update={"environment": Environment.PRODUCTION, "public_base_url": "http://127.0.0.1:8000"}
    )
    connector = TikTokConnector(production, redis_client, token_sessions, tiktok_http)
    with pytest.raises(ConnectRefused, match="PUBLIC_BASE_URL"):
        await connector.start(ANA)
    with pytest.raises(ConnectRefused, match="PUBLIC_BASE_URL"):
        await connector.register_webhook()


async def test_a_shop_never_connected_cannot_send(
    tiktok_settings: Settings,
    token_sessions: SessionFactory,
    redis_client: aioredis.Redis,
    http: httpx.AsyncClient,
    tiktok_http: aiohttp.ClientSession,
) -> None:
    # Production without hand-put tokens or business id: nothing to send with or as.
    bare = Settings(
        **{
            **tiktok_settings.model_dump(
                exclude={"tiktok_access_token", "tiktok_refresh_token", "tiktok_business_id"}
            ),
            "environment": "production",
            "tiktok_client_key": "live-client",
            "tiktok_client_secret": "Zq8vL2mN4pR7sT1wX5yB",
            "secret_key": "k3Jd9QmZ2vLx8PnR4tWy7BcF1gHs6NaE0uYo",
            "database_url": "postgresql+asyncpg://x@127.0.0.1/x",
            "redis_url": "redis://127.0.0.1:6379/0",
        }
    )
    assert bare.tiktok_hand_tokens is None and bare.tiktok_configured_business_id is None
    store = DbTokenStore.from_settings(token_sessions, bare)
    client = TikTokClient(
        bare,
        tiktok_http,
        redis_client,
        store,
        account=BusinessAccount(bare, redis_client, token_sessions),
    )
    with pytest.raises(TikTokAuthError, match="not connected"):
        await client.send_text("conversation-1", "hello")
    with pytest.raises(TikTokAuthError, match="not connected"):
        await store.load()


async def test_connecting_waits_for_a_refresh_and_drops_an_unsaved_old_pair(
    connector: TikTokConnector,
    http: httpx.AsyncClient,
    redis_client: aioredis.Redis,
    tiktok_settings: Settings,
    token_sessions: SessionFactory,
) -> None:
    await redis_client.set(redis_keys.TIKTOK_UNSAVED_TOKENS, "the old account's pair")
    back = await owner_says_yes(connector, http)
    refreshing = refresh_lock(redis_client, tiktok_settings)
    assert await refreshing.acquire()  # a worker refreshing the old pair right now
    finishing = asyncio.create_task(
        connector.finish(state=back["state"], auth_code=back["auth_code"], holder=ANA)
    )
    await asyncio.sleep(0.5)
    assert not finishing.done()  # the new pair is not written under the refresh
    await refreshing.release()
    connected = await finishing
    assert await redis_client.get(redis_keys.TIKTOK_UNSAVED_TOKENS) is None
    pair = await DbTokenStore.from_settings(token_sessions, tiktok_settings).load()
    assert connected.open_id and pair.access_expires_at is not None
