"""The TikTok tokens at rest: sealed with a key derived from SECRET_KEY, read back in plain,
legacy plain rows sealed on their first read, and a row sealed under another key refused
as a permanent auth failure that parks the send instead of crashing the worker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.crypto import SEALED_PREFIX, SecretBox, UnreadableSecret
from app.db.models import Conversation, DeadLetter, OutboxEntry
from app.db.repositories.tiktok_credentials import TikTokCredentialRepository
from app.db.session import SessionFactory, transaction
from app.sandbox.control import SandboxControl
from app.services.messaging.delivery import Delivery, DeliveryService
from app.services.messaging.inbound import InboundPipeline, Outcome
from app.services.tiktok.errors import TikTokAuthError, TikTokPermanentError
from app.services.tiktok.tokens import (
    TOKENS_KEY_PURPOSE,
    DbTokenStore,
    TokenPair,
    TokensUnreadable,
    token_box,
)
from tests.factories import as_queued, text_message
from tests.fakes import FixedMedia, MenuBrain
from tests.services.tiktok.conftest import ClientFactory

ACCESS = "act.PLAIN-ACCESS-7f3a9c"
REFRESH = "rft.PLAIN-REFRESH-2b8e41"
OTHER_KEY = "another-secret-key-after-a-careless-rotation-41f9"


def _store(sessions: SessionFactory, settings: Settings) -> DbTokenStore:
    return DbTokenStore.from_settings(sessions, settings)


def _rekeyed(settings: Settings) -> Settings:
    return settings.model_copy(update={"secret_key": SecretStr(OTHER_KEY)})


async def _raw_row(engine: AsyncEngine) -> tuple[str, str]:
    """The token columns exactly as PostgreSQL holds them, past the ORM."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT access_token, refresh_token FROM tiktok_credentials")
            )
        ).one()
    return row.access_token, row.refresh_token


async def _insert_plain_row(engine: AsyncEngine, access: str, refresh: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO tiktok_credentials (id, access_token, refresh_token) "
                "VALUES (1, :access, :refresh)"
            ),
            {"access": access, "refresh": refresh},
        )


def _holds_no_plain_token(stored: Sequence[str], *plain: str) -> bool:
    return all(token not in value for value in stored for token in plain)


# -- the box ---------------------------------------------------------------------------------


def test_box_seals_with_a_version_tag_and_a_fresh_nonce() -> None:
    box = SecretBox("a-secret-key", purpose=TOKENS_KEY_PURPOSE)

    first, second = box.seal(ACCESS), box.seal(ACCESS)

    assert first.startswith(SEALED_PREFIX) and ACCESS not in first
    assert first != second  # the same token twice does not show as the same ciphertext
    assert box.open(first) == box.open(second) == ACCESS


def test_box_keys_differ_by_secret_and_by_purpose() -> None:
    sealed = SecretBox("a-secret-key", purpose=TOKENS_KEY_PURPOSE).seal(ACCESS)

    for stranger in (
        SecretBox("b-secret-key", purpose=TOKENS_KEY_PURPOSE),
        SecretBox("a-secret-key", purpose=b"philia something else v1"),
    ):
        with pytest.raises(UnreadableSecret) as refused:
            stranger.open(sealed)
        assert ACCESS not in str(refused.value)


def test_box_refuses_altered_and_unsealed_values() -> None:
    box = SecretBox("a-secret-key", purpose=TOKENS_KEY_PURPOSE)
    sealed = box.seal(ACCESS)
    flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]

    for bad in (flipped, SEALED_PREFIX + "not base64 at all ✗", ACCESS):
        with pytest.raises(UnreadableSecret):
            box.open(bad)


# -- the store in PostgreSQL -----------------------------------------------------------------


async def test_saved_tokens_are_sealed_in_the_row_and_load_in_plain(
    committed_db: AsyncEngine, token_sessions: SessionFactory, tiktok_settings: Settings
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    pair = TokenPair(
        access_token=ACCESS,
        access_expires_at=now + timedelta(hours=24),
        refresh_token=REFRESH,
        refresh_expires_at=now + timedelta(days=365),
    )

    await _store(token_sessions, tiktok_settings).save(pair)

    stored = await _raw_row(committed_db)
    assert all(value.startswith(SEALED_PREFIX) for value in stored)
    assert _holds_no_plain_token(stored, ACCESS, REFRESH)
    assert await _store(token_sessions, tiktok_settings).load() == pair


async def test_tokens_seeded_from_the_environment_are_sealed(
    committed_db: AsyncEngine, token_sessions: SessionFactory, tiktok_settings: Settings
) -> None:
    settings = tiktok_settings.model_copy(
        update={
            "tiktok_access_token": SecretStr(ACCESS),
            "tiktok_refresh_token": SecretStr(REFRESH),
        }
    )

    pair = await _store(token_sessions, settings).load()

    assert (pair.access_token, pair.refresh_token) == (ACCESS, REFRESH)
    stored = await _raw_row(committed_db)
    assert all(value.startswith(SEALED_PREFIX) for value in stored)
    assert _holds_no_plain_token(stored, ACCESS, REFRESH)


async def test_legacy_plain_row_is_read_and_sealed(
    committed_db: AsyncEngine, token_sessions: SessionFactory, tiktok_settings: Settings
) -> None:
    await _insert_plain_row(committed_db, ACCESS, REFRESH)

    pair = await _store(token_sessions, tiktok_settings).load()

    assert (pair.access_token, pair.refresh_token) == (ACCESS, REFRESH)
    # Sealed by that first read, not left in plain until a refresh that may never come.
    sealed = await _raw_row(committed_db)
    assert all(value.startswith(SEALED_PREFIX) for value in sealed)
    assert _holds_no_plain_token(sealed, ACCESS, REFRESH)
    assert await _store(token_sessions, tiktok_settings).load() == pair

    rotated = pair.model_copy(update={"access_token": "act.rotated-after-legacy"})
    await _store(token_sessions, tiktok_settings).save(rotated)
    resaved = await _raw_row(committed_db)
    assert all(value.startswith(SEALED_PREFIX) for value in resaved)
    assert _holds_no_plain_token(resaved, "act.rotated-after-legacy", REFRESH)
    assert await _store(token_sessions, tiktok_settings).load() == rotated


async def test_sealing_a_legacy_row_never_overwrites_a_newer_pair(
    committed_db: AsyncEngine, token_sessions: SessionFactory, tiktok_settings: Settings
) -> None:
    """Another worker rotated the pair between this worker's read of the plain row and its
    sealing write: the rotated pair stays."""
    await _insert_plain_row(committed_db, ACCESS, REFRESH)
    box = token_box(tiktok_settings)
    newer = TokenPair(access_token="act.newer", refresh_token="rft.newer")
    await _store(token_sessions, tiktok_settings).save(newer)

    async with transaction(token_sessions) as session:
        rewritten = await TikTokCredentialRepository(session).replace_tokens_if_unchanged(
            access_token=box.seal(ACCESS),
            refresh_token=box.seal(REFRESH),
            expected_access_token=ACCESS,
            expected_refresh_token=REFRESH,
        )

    assert not rewritten
    assert await _store(token_sessions, tiktok_settings).load() == newer


async def test_tokens_sealed_under_another_key_are_a_typed_auth_error(
    committed_db: AsyncEngine,
    token_sessions: SessionFactory,
    tiktok_settings: Settings,
    capfd: pytest.CaptureFixture[str],
) -> None:
    await _store(token_sessions, tiktok_settings).save(
        TokenPair(access_token=ACCESS, refresh_token=REFRESH)
    )
    before = await _raw_row(committed_db)
    capfd.readouterr()

    with pytest.raises(TokensUnreadable) as refused:
        await _store(token_sessions, _rekeyed(tiktok_settings)).load()

    # A refused refresh to everything above the store: permanent, never retried in a loop.
    assert isinstance(refused.value, TikTokAuthError)
    assert isinstance(refused.value, TikTokPermanentError)
    assert "SECRET_KEY" in str(refused.value) and "connect the shop again" in str(refused.value)
    out = capfd.readouterr().out
    assert "tiktok_tokens_undecryptable" in out
    assert _holds_no_plain_token([out, str(refused.value)], ACCESS, REFRESH)
    # The row is left as it was: the old key still opens it once it is restored.
    assert await _raw_row(committed_db) == before
    assert (await _store(token_sessions, tiktok_settings).load()).access_token == ACCESS


async def test_client_with_unreadable_tokens_calls_nothing(
    make_client: ClientFactory,
    sandbox: SandboxControl,
    token_sessions: SessionFactory,
    tiktok_settings: Settings,
) -> None:
    await _store(token_sessions, tiktok_settings).save(
        TokenPair(access_token=ACCESS, refresh_token=REFRESH)
    )
    client = make_client(store=_store(token_sessions, _rekeyed(tiktok_settings)))

    with pytest.raises(TokensUnreadable):
        await client.send_text("conv-rekeyed", "hello")

    assert await sandbox.calls() == []


async def test_send_with_unreadable_tokens_is_parked_not_crashed(
    committed_db: AsyncEngine,
    make_client: ClientFactory,
    sandbox: SandboxControl,
    token_sessions: SessionFactory,
    tiktok_settings: Settings,
    redis_client: aioredis.Redis,
) -> None:
    """The delivery the worker runs settles the reply as failed and parks it with the
    reason: no exception escapes to the task, which would re-enqueue it forever."""
    await _store(token_sessions, tiktok_settings).save(
        TokenPair(access_token=ACCESS, refresh_token=REFRESH)
    )
    factory = async_sessionmaker(committed_db, expire_on_commit=False, autoflush=False)
    queued: list[int] = []

    async def enqueue(ids: Sequence[int]) -> None:
        queued.extend(ids)

    async def notify(conversation: Conversation, reason: str) -> None:
        return None

    pipeline = InboundPipeline(tiktok_settings, factory, redis_client, MenuBrain(), enqueue, notify)
    delivery = DeliveryService(
        tiktok_settings,
        factory,
        redis_client,
        make_client(store=_store(token_sessions, _rekeyed(tiktok_settings))),
        FixedMedia(),
    )

    assert await pipeline.handle(as_queued(text_message("hi"))) is Outcome.HANDLED
    assert len(queued) == 1
    result = await delivery.deliver(queued[0])

    assert result.outcome is Delivery.FAILED
    async with AsyncSession(committed_db) as session:
        entry = await session.get(OutboxEntry, queued[0])
        letters = list((await session.scalars(select(DeadLetter))).all())
    assert entry is not None and entry.status == "failed"
    assert [letter.kind for letter in letters] == ["send"]
    assert "cannot be decrypted" in letters[0].error and "SECRET_KEY" in letters[0].error
    assert await sandbox.messages() == []
