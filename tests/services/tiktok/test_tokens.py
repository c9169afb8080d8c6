from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy import func, select

from app.core import redis_keys
from app.core.config import get_settings
from app.db.models import TikTokCredential
from app.db.session import SessionFactory
from app.services.tiktok.tokens import (
    AccessTokenCache,
    DbTokenStore,
    TokenPair,
    token_box,
)


def _store(sessions: SessionFactory) -> DbTokenStore:
    return DbTokenStore(
        sessions,
        box=token_box(get_settings()),
        seed=("seed-access", "seed-refresh"),
    )


async def test_first_load_seeds_the_row_from_settings(token_sessions: SessionFactory) -> None:
    pair = await _store(token_sessions).load()

    assert (pair.access_token, pair.refresh_token) == ("seed-access", "seed-refresh")
    assert pair.access_expires_at is None and pair.refresh_expires_at is None


async def test_concurrent_first_loads_seed_one_row(token_sessions: SessionFactory) -> None:
    pairs = await asyncio.gather(*(_store(token_sessions).load() for _ in range(8)))

    assert {pair.access_token for pair in pairs} == {"seed-access"}
    async with token_sessions() as session:
        assert await session.scalar(select(func.count()).select_from(TikTokCredential)) == 1


async def test_saved_tokens_win_over_the_seed(token_sessions: SessionFactory) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rotated = TokenPair(
        access_token="act.new",
        access_expires_at=now + timedelta(hours=24),
        refresh_token="rft.new",
        refresh_expires_at=now + timedelta(days=365),
    )
    await _store(token_sessions).save(rotated)

    # A restarted process with the old tokens still in its environment.
    assert await _store(token_sessions).load() == rotated
    await _store(token_sessions).save(rotated.model_copy(update={"access_token": "act.newer"}))
    assert (await _store(token_sessions).load()).access_token == "act.newer"


async def test_token_pair_does_not_show_tokens_in_repr() -> None:
    pair = TokenPair(access_token="act.secret", refresh_token="rft.secret")
    assert "secret" not in repr(pair)


async def test_cache_expires_with_the_access_token(redis_client: aioredis.Redis) -> None:
    cache = AccessTokenCache(redis_client)
    expires = datetime.now(UTC) + timedelta(minutes=30)

    cached = await cache.set(
        TokenPair(access_token="a", refresh_token="r", access_expires_at=expires)
    )

    assert await cache.get() == cached
    assert 29 * 60 < await redis_client.ttl(redis_keys.TIKTOK_ACCESS_TOKEN) <= 30 * 60
    # The refresh token never goes to Redis.
    stored = json.loads(await redis_client.get(redis_keys.TIKTOK_ACCESS_TOKEN) or b"{}")
    assert set(stored) == {"access_token", "expires_at"}


async def test_cache_of_unknown_expiry_is_reread_hourly(redis_client: aioredis.Redis) -> None:
    await AccessTokenCache(redis_client).set(TokenPair(access_token="a", refresh_token="r"))
    assert 3500 < await redis_client.ttl(redis_keys.TIKTOK_ACCESS_TOKEN) <= 3600


async def test_expired_token_is_not_cached(redis_client: aioredis.Redis) -> None:
    cache = AccessTokenCache(redis_client)
    past = datetime.now(UTC) - timedelta(seconds=1)
    await cache.set(TokenPair(access_token="a", refresh_token="r", access_expires_at=past))
    assert await cache.get() is None


async def test_corrupt_cache_entry_is_dropped(redis_client: aioredis.Redis) -> None:
    await redis_client.set(redis_keys.TIKTOK_ACCESS_TOKEN, b"not json")
    assert await AccessTokenCache(redis_client).get() is None
    assert await redis_client.exists(redis_keys.TIKTOK_ACCESS_TOKEN) == 0
