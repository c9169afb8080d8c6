"""Where the rotating OAuth pair lives.

PostgreSQL holds the truth (`tiktok_credentials`, one row): losing a rotated refresh token
means re-authorising the shop by hand, so it must survive a Redis flush. Redis holds a copy
of the access token only, so that a send costs a Redis GET instead of a database round trip;
the refresh token never leaves the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.config import Settings
from app.core.logging import get_logger
from app.db.repositories.tiktok import TikTokCredentialRepository
from app.db.session import SessionFactory, transaction

log = get_logger(__name__)

ACCESS_TOKEN_CACHE_KEY = "tiktok:access-token"


class TokenPair(BaseModel):
    """The access token and the refresh token with their expiry times (None: unknown, as
    for tokens pasted into the environment by hand)."""

    model_config = ConfigDict(frozen=True)

    access_token: str = Field(min_length=1, repr=False)
    access_expires_at: datetime | None = None
    refresh_token: str = Field(min_length=1, repr=False)
    refresh_expires_at: datetime | None = None


class CachedAccessToken(BaseModel):
    model_config = ConfigDict(frozen=True)

    access_token: str = Field(min_length=1, repr=False)
    expires_at: datetime | None = None


class TokenStore(Protocol):
    async def load(self) -> TokenPair: ...

    async def save(self, tokens: TokenPair) -> None: ...


class DbTokenStore:
    """The single `TikTokCredential` row, seeded from the configured tokens on first use.

    Each call is its own short transaction: token storage is a boundary of its own and must
    not ride along with (or be rolled back by) the business transaction of the caller.
    """

    def __init__(
        self, session_factory: SessionFactory, *, seed_access_token: str, seed_refresh_token: str
    ) -> None:
        self._session_factory = session_factory
        self._seed_access_token = seed_access_token
        self._seed_refresh_token = seed_refresh_token

    @classmethod
    def from_settings(cls, session_factory: SessionFactory, settings: Settings) -> DbTokenStore:
        return cls(
            session_factory,
            seed_access_token=settings.tiktok_access_token.get_secret_value(),
            seed_refresh_token=settings.tiktok_refresh_token.get_secret_value(),
        )

    async def load(self) -> TokenPair:
        async with transaction(self._session_factory) as session:
            repository = TikTokCredentialRepository(session)
            row = await repository.get()
            if row is None:
                if await repository.seed(self._seed_access_token, self._seed_refresh_token):
                    log.info("tiktok_credentials_seeded")
                row = await repository.get()
            if row is None:  # pragma: no cover - the seed above just wrote it
                raise RuntimeError("tiktok_credentials row missing after seeding")
            return TokenPair(
                access_token=row.access_token,
                access_expires_at=row.access_expires_at,
                refresh_token=row.refresh_token,
                refresh_expires_at=row.refresh_expires_at,
            )

    async def save(self, tokens: TokenPair) -> None:
        async with transaction(self._session_factory) as session:
            await TikTokCredentialRepository(session).save(
                access_token=tokens.access_token,
                access_expires_at=tokens.access_expires_at,
                refresh_token=tokens.refresh_token,
                refresh_expires_at=tokens.refresh_expires_at,
            )


class AccessTokenCache:
    """The current access token in Redis, shared by every process."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        key: str = ACCESS_TOKEN_CACHE_KEY,
        unknown_expiry_ttl: timedelta = timedelta(hours=1),
    ) -> None:
        self._redis = redis
        self._key = key
        # A hand-pasted token has no known expiry; re-reading the database hourly picks up a
        # token replaced there by an operator without waiting for a 40105.
        self._unknown_expiry_ttl = unknown_expiry_ttl

    async def get(self) -> CachedAccessToken | None:
        raw = await self._redis.get(self._key)
        if raw is None:
            return None
        try:
            return CachedAccessToken.model_validate_json(raw)
        except ValidationError:
            log.warning("tiktok_access_token_cache_invalid")
            await self._redis.delete(self._key)
            return None

    async def set(self, tokens: TokenPair, *, now: datetime | None = None) -> CachedAccessToken:
        cached = CachedAccessToken(
            access_token=tokens.access_token, expires_at=tokens.access_expires_at
        )
        ttl = self._unknown_expiry_ttl
        if tokens.access_expires_at is not None:
            ttl = tokens.access_expires_at - (now or datetime.now(UTC))
        milliseconds = int(ttl.total_seconds() * 1000)
        if milliseconds > 0:
            await self._redis.set(self._key, cached.model_dump_json(), px=milliseconds)
        else:
            await self._redis.delete(self._key)
        return cached

    async def clear(self) -> None:
        await self._redis.delete(self._key)
