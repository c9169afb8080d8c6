from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from app.core import redis_keys
from app.core.config import Settings, get_settings
from app.db.repositories.tiktok_credentials import TikTokCredentialRepository
from app.db.session import SessionFactory
from app.sandbox.control import SandboxControl
from app.sandbox.server import free_port
from app.services.tiktok.account import BusinessAccount
from app.services.tiktok.errors import (
    TikTokAuthError,
    TikTokPermanentError,
    TikTokRequestInvalid,
    TikTokTransientError,
    TransientKind,
)
from app.services.tiktok.tokens import (
    CachedAccessToken,
    DbTokenStore,
    TokenPair,
    token_box,
)
from tests.services.tiktok.conftest import ClientFactory

# Real TikTok ids carry "+", "/" and "=": they must arrive byte-exact.
CONVERSATION = "u5JhpselBAhoPOlnH0tZ9y07kg=="
OTHER_CONVERSATION = "+ZMM6/abc+def/ghi=="
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(200)


async def _stored_credential(sessions: SessionFactory) -> TokenPair:
    """The row as PostgreSQL holds it, its tokens opened with the app's key (which fails for
    a token stored in plain text)."""
    async with sessions() as session:
        row = await TikTokCredentialRepository(session).get()
        assert row is not None
        box = token_box(get_settings())
        return TokenPair(
            access_token=box.open(row.access_token),
            access_expires_at=row.access_expires_at,
            refresh_token=box.open(row.refresh_token),
            refresh_expires_at=row.refresh_expires_at,
        )


async def test_send_text_reaches_tiktok_in_its_shape(
    make_client: ClientFactory, sandbox: SandboxControl
) -> None:
    client = make_client()

    message_id = await client.send_text(CONVERSATION, "Still available! 🧥 $34, fits like an M.")

    [message] = await sandbox.messages()
    assert message.message_id == message_id
    assert message.conversation_id == CONVERSATION
    assert message.message_type == "TEXT"
    assert message.text == "Still available! 🧥 $34, fits like an M."
    [call] = await sandbox.calls()
    # The sandbox only accepts the spec's exact body (extra fields forbidden) and header.
    assert (call.endpoint, call.path, call.code) == (
        "send",
        "/open_api/v1.3/business/message/send/",
        0,
    )


async def _calls_of(redis: aioredis.Redis, *commands: str) -> list[int]:
    stats = await redis.info("commandstats")
    return [int(stats.get(f"cmdstat_{command}", {}).get("calls", 0)) for command in commands]


@pytest.mark.parametrize("kept", ["connected-account", "configured-account"])
async def test_a_send_reads_the_account_and_the_token_in_one_round_trip(
    make_client: ClientFactory,
    sandbox: SandboxControl,
    redis_client: aioredis.Redis,
    token_sessions: SessionFactory,
    tiktok_settings: Settings,
    kept: str,
) -> None:
    account = (
        BusinessAccount(tiktok_settings, redis_client, token_sessions)
        if kept == "connected-account"
        else None
    )
    client = make_client(account=account)
    await client.send_text(CONVERSATION, "first")  # the copies in Redis are made
    before = await _calls_of(redis_client, "get", "mget")
    await client.send_text(CONVERSATION, "second")
    after = await _calls_of(redis_client, "get", "mget")
    # Before: a GET for the business id, another for the token.
    assert sum(after) - sum(before) == 1
    assert [message.text for message in await sandbox.messages()] == ["first", "second"]


async def test_upload_then_send_image(make_client: ClientFactory, sandbox: SandboxControl) -> None:
    client = make_client()

    png_id = await client.upload_image(PNG, "pt-0142.png", "image/png")
    jpeg_id = await client.upload_image(JPEG, "pt-0143.jpg", "image/jpeg")
    message_id = await client.send_image(CONVERSATION, png_id)

    assert png_id != jpeg_id
    [message] = await sandbox.messages()
    assert (message.message_id, message.message_type, message.media_id, message.text) == (
        message_id,
        "IMAGE",
        png_id,
        None,
    )
    assert [call.endpoint for call in await sandbox.calls()] == [
        "media_upload",
        "media_upload",
        "send",
    ]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"GIF89a" + bytes(50), "image/gif"),
        (PNG, "image/jpeg"),  # declared JPEG, is PNG
        (b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024), "image/png"),  # over 3 MB
    ],
)
async def test_upload_refuses_what_tiktok_would_refuse_without_calling(
    make_client: ClientFactory, sandbox: SandboxControl, content: bytes, content_type: str
) -> None:
    with pytest.raises(TikTokRequestInvalid):
        await make_client().upload_image(content, "photo", content_type)
    assert await sandbox.calls() == []


@pytest.mark.parametrize("text", ["", "   \n", "x" * 6001, "😀" * 3001])
async def test_send_text_refuses_empty_or_overlong_text(
    make_client: ClientFactory, sandbox: SandboxControl, text: str
) -> None:
    with pytest.raises(TikTokRequestInvalid):
        await make_client().send_text(CONVERSATION, text)
    assert await sandbox.calls() == []


@pytest.mark.parametrize(
    ("kind", "expected", "maybe_delivered"),
    [
        ("http_500", TransientKind.SERVER_ERROR, True),
        ("http_503", TransientKind.SERVER_ERROR, True),
        ("code_40100", TransientKind.RATE_LIMITED, False),
        ("code_40064", TransientKind.TOO_FAST, False),
        ("code_51065", TransientKind.SYSTEM_ERROR, False),
    ],
)
async def test_transient_failures(
    make_client: ClientFactory,
    sandbox: SandboxControl,
    kind: str,
    expected: TransientKind,
    maybe_delivered: bool,
) -> None:
    client = make_client()
    await sandbox.fail_next(1, kind)

    with pytest.raises(TikTokTransientError) as caught:
        await client.send_text(CONVERSATION, "hello")

    assert caught.value.kind is expected
    assert caught.value.maybe_delivered is maybe_delivered
    assert caught.value.long_backoff is (expected is TransientKind.TOO_FAST)
    assert await sandbox.messages() == []
    # One attempt only: retrying is the caller's business.
    assert len(await sandbox.calls()) == 1
    # The failure was consumed; the same call now goes through.
    assert await client.send_text(CONVERSATION, "hello")


@pytest.mark.parametrize(
    ("kind", "code", "http_status"),
    [
        ("code_40001", 40001, 200),
        ("code_40002", 40002, 200),
        ("code_40007", 40007, 200),
        ("code_40908", 40908, 200),
        ("code_49999", 49999, 200),  # unknown codes are not retried
        ("http_400", None, 400),
        ("http_404", None, 404),
    ],
)
async def test_permanent_failures(
    make_client: ClientFactory,
    sandbox: SandboxControl,
    kind: str,
    code: int | None,
    http_status: int,
) -> None:
    await sandbox.fail_next(1, kind)

    with pytest.raises(TikTokPermanentError) as caught:
        await make_client().send_text(CONVERSATION, "hello")

    assert not isinstance(caught.value, TikTokTransientError)
    assert (caught.value.code, caught.value.http_status) == (code, http_status)
    if code is not None:
        assert caught.value.request_id  # TikTok's request id travels with the error
    assert await sandbox.messages() == []


async def test_unknown_media_id_is_permanent_not_found(
    make_client: ClientFactory, sandbox: SandboxControl
) -> None:
    with pytest.raises(TikTokPermanentError) as caught:
        await make_client().send_image(CONVERSATION, "v10033g5-never-uploaded")
    assert caught.value.code == 40007


async def test_wrong_business_id_is_a_permission_error(
    make_client: ClientFactory, tiktok_settings: Settings, sandbox: SandboxControl
) -> None:
    settings = tiktok_settings.model_copy(update={"tiktok_business_id": "someone-else"})
    with pytest.raises(TikTokPermanentError) as caught:
        await make_client(settings).send_text(CONVERSATION, "hello")
    assert caught.value.code == 40001


async def test_read_timeout_is_transient_and_may_have_been_delivered(
    make_client: ClientFactory, tiktok_settings: Settings, sandbox: SandboxControl
) -> None:
    settings = tiktok_settings.model_copy(update={"tiktok_http_timeout_seconds": 0.3})
    await sandbox.fail_next(1, "delay", seconds=0.8)

    with pytest.raises(TikTokTransientError) as caught:
        await make_client(settings).send_text(CONVERSATION, "are you there?")

    assert caught.value.kind is TransientKind.TIMEOUT
    assert caught.value.maybe_delivered
    # TikTok carried on after the client gave up: exactly why a blind resend is unsafe.
    await asyncio.sleep(0.8)
    assert [m.text for m in await sandbox.messages()] == ["are you there?"]


async def test_unreachable_tiktok_is_transient_and_not_delivered(
    make_client: ClientFactory, tiktok_settings: Settings
) -> None:
    settings = tiktok_settings.model_copy(
        update={"tiktok_api_base": f"http://127.0.0.1:{free_port()}"}
    )
    # The token comes from the database, so only the API call itself fails.
    with pytest.raises(TikTokTransientError) as caught:
        await make_client(settings).send_text(CONVERSATION, "hello")
    assert caught.value.kind is TransientKind.CONNECTION
    assert not caught.value.maybe_delivered


# -- tokens --------------------------------------------------------------------------------


async def test_rejected_token_is_refreshed_once_and_the_call_retried(
    make_client: ClientFactory,
    sandbox: SandboxControl,
    token_sessions: SessionFactory,
    redis_client: aioredis.Redis,
) -> None:
    client = make_client()
    await sandbox.expire_access_token()

    message_id = await client.send_text(CONVERSATION, "hello")

    calls = await sandbox.calls()
    assert [(c.endpoint, c.code) for c in calls] == [
        ("send", 40105),
        ("refresh_token", 0),
        ("send", 0),
    ]
    assert [m.message_id for m in await sandbox.messages()] == [message_id]
    tokens = await sandbox.tokens()
    stored = await _stored_credential(token_sessions)
    # The rotated refresh token is in PostgreSQL: it is the only way back in.
    assert stored.refresh_token == tokens.refresh_token
    assert stored.access_token == tokens.access_token
    assert stored.access_expires_at is not None and stored.refresh_expires_at is not None
    assert stored.access_expires_at - datetime.now(UTC) > timedelta(hours=23)
    assert stored.refresh_expires_at - datetime.now(UTC) > timedelta(days=300)
    cached = CachedAccessToken.model_validate_json(
        await redis_client.get(redis_keys.TIKTOK_ACCESS_TOKEN)
    )
    assert cached.access_token == tokens.access_token


async def test_a_refresh_that_fails_after_reaching_tiktok_is_no_maybe_sent_message(
    make_client: ClientFactory, sandbox: SandboxControl
) -> None:
    # The send is refused (40105), the refresh answers 502: the message never went out,
    # so the outbox must retry it rather than wait for an echo.
    await sandbox.expire_access_token()
    await sandbox.fail_next(1, "http_502", endpoints=["refresh_token"])

    with pytest.raises(TikTokTransientError) as caught:
        await make_client().send_text(CONVERSATION, "hello")

    assert caught.value.kind is TransientKind.SERVER_ERROR
    assert not caught.value.maybe_delivered
    assert await sandbox.messages() == []


async def test_token_rejected_twice_is_an_auth_error(
    make_client: ClientFactory, sandbox: SandboxControl
) -> None:
    await sandbox.fail_next(2, "code_40105", endpoints=["send"])

    with pytest.raises(TikTokAuthError) as caught:
        await make_client().send_text(CONVERSATION, "hello")

    assert caught.value.code == 40105
    assert [(c.endpoint, c.code) for c in await sandbox.calls()] == [
        ("send", 40105),
        ("refresh_token", 0),
        ("send", 40105),
    ]


async def test_refused_refresh_is_an_auth_error(
    make_client: ClientFactory,
    sandbox: SandboxControl,
    token_sessions: SessionFactory,
    tiktok_settings: Settings,
) -> None:
    settings = tiktok_settings
    store = DbTokenStore.from_settings(token_sessions, settings)
    await store.save(
        TokenPair(
            access_token=settings.tiktok_access_token.get_secret_value(),
            refresh_token="revoked-by-the-shop",
        )
    )
    await sandbox.expire_access_token()

    with pytest.raises(TikTokAuthError, match="refresh refused"):
        await make_client().send_text(CONVERSATION, "hello")
    assert await sandbox.messages() == []


async def test_token_is_refreshed_ahead_of_expiry(
    make_client: ClientFactory,
    sandbox: SandboxControl,
    token_sessions: SessionFactory,
    tiktok_settings: Settings,
) -> None:
    client = make_client()
    settings = tiktok_settings
    soon = datetime.now(UTC) + timedelta(minutes=5)
    await DbTokenStore.from_settings(token_sessions, settings).save(
        TokenPair(
            access_token=settings.tiktok_access_token.get_secret_value(),
            access_expires_at=soon,
            refresh_token=settings.tiktok_refresh_token.get_secret_value(),
        )
    )

    await client.send_text(CONVERSATION, "hello")

    assert [(c.endpoint, c.code) for c in await sandbox.calls()] == [
        ("refresh_token", 0),
        ("send", 0),
    ]
    stored = await _stored_credential(token_sessions)
    assert stored.access_expires_at is not None and stored.access_expires_at > soon


async def test_token_far_from_expiry_is_not_refreshed(
    make_client: ClientFactory,
    sandbox: SandboxControl,
    token_sessions: SessionFactory,
    tiktok_settings: Settings,
) -> None:
    client = make_client()
    settings = tiktok_settings
    await DbTokenStore.from_settings(token_sessions, settings).save(
        TokenPair(
            access_token=settings.tiktok_access_token.get_secret_value(),
            access_expires_at=datetime.now(UTC) + timedelta(hours=3),
            refresh_token=settings.tiktok_refresh_token.get_secret_value(),
        )
    )

    await client.send_text(CONVERSATION, "one")
    await client.send_text(CONVERSATION, "two")

    assert [c.endpoint for c in await sandbox.calls()] == ["send", "send"]


async def test_concurrent_workers_refresh_exactly_once(
    make_client: ClientFactory, sandbox: SandboxControl, token_sessions: SessionFactory
) -> None:
    clients = [make_client() for _ in range(5)]
    await clients[0].send_text(CONVERSATION, "warm-up")  # seeds the row and the cache
    await sandbox.reset()
    await sandbox.expire_access_token()

    ids = await asyncio.gather(
        *(
            client.send_text(CONVERSATION, f"worker {n} message {m}")
            for n, client in enumerate(clients)
            for m in range(3)
        )
    )

    assert len(set(ids)) == 15
    calls = await sandbox.calls()
    assert sum(1 for c in calls if c.endpoint == "refresh_token") == 1
    assert sum(1 for c in calls if c.endpoint == "send" and c.code == 0) == 15
    assert len(await sandbox.messages()) == 15
    stored = await _stored_credential(token_sessions)
    assert stored.refresh_token == (await sandbox.tokens()).refresh_token


class _SaveFailsOnce:
    """The real database store, with one failed write: the database going away right after
    TikTok rotated the pair."""

    def __init__(self, inner: DbTokenStore) -> None:
        self.inner = inner
        self.failed = False

    async def load(self) -> TokenPair:
        return await self.inner.load()

    async def save(self, tokens: TokenPair) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("database unavailable")
        await self.inner.save(tokens)


async def test_rotated_tokens_survive_a_failed_database_write(
    make_client: ClientFactory,
    sandbox: SandboxControl,
    token_sessions: SessionFactory,
    tiktok_settings: Settings,
    redis_client: aioredis.Redis,
) -> None:
    store = _SaveFailsOnce(DbTokenStore.from_settings(token_sessions, tiktok_settings))
    client = make_client(store=store)
    await sandbox.expire_access_token()

    await client.send_text(CONVERSATION, "sent with the new token")

    assert store.failed
    assert await redis_client.get(redis_keys.TIKTOK_UNSAVED_TOKENS) is not None
    # The next refresh must use the rotated refresh token, which only Redis holds now.
    await sandbox.expire_access_token()
    await client.send_text(CONVERSATION, "sent after the second refresh")

    tokens = await sandbox.tokens()
    assert tokens.refresh_count == 2
    assert await redis_client.get(redis_keys.TIKTOK_UNSAVED_TOKENS) is None
    assert (await _stored_credential(token_sessions)).refresh_token == tokens.refresh_token
    assert len(await sandbox.messages()) == 2


# -- capabilities ----------------------------------------------------------------------------


async def test_capabilities_answer_is_cached_per_conversation(
    make_client: ClientFactory, sandbox: SandboxControl, redis_client: aioredis.Redis
) -> None:
    client = make_client()
    await sandbox.set_image_send(False, conversation_id=OTHER_CONVERSATION)

    assert await client.can_send_images(CONVERSATION) is True
    assert await client.can_send_images(OTHER_CONVERSATION) is False
    await sandbox.set_image_send(False)  # the cached answers stand until they expire
    assert await client.can_send_images(CONVERSATION) is True
    assert await client.can_send_images(OTHER_CONVERSATION) is False

    calls = await sandbox.calls()
    assert [c.endpoint for c in calls] == ["capabilities", "capabilities"]
    ttl = await redis_client.ttl(redis_keys.tiktok_image_capability(CONVERSATION))
    assert 5 * 3600 < ttl <= 6 * 3600


async def test_capabilities_fall_back_to_text_when_tiktok_fails(
    make_client: ClientFactory, sandbox: SandboxControl
) -> None:
    client = make_client()
    await sandbox.fail_next(1, "http_500", endpoints=["capabilities"])

    assert await client.can_send_images(CONVERSATION) is False
    # A failure is not cached: the next reply asks again.
    assert await client.can_send_images(CONVERSATION) is True
    assert [c.http_status for c in await sandbox.calls()] == [500, 200]


async def test_images_switched_off_never_asks_tiktok(
    make_client: ClientFactory, tiktok_settings: Settings, sandbox: SandboxControl
) -> None:
    client = make_client(tiktok_settings.model_copy(update={"images_enabled": False}))
    assert await client.can_send_images(CONVERSATION) is False
    assert await sandbox.calls() == []
