"""Where the rotating OAuth pair lives.

PostgreSQL holds the truth (`tiktok_credentials`, one row): losing a rotated refresh token
means re-authorising the shop by hand, so it must survive a Redis flush. Redis holds a copy
of the access token only, so that a send costs a Redis GET instead of a database round trip;
the refresh token never leaves the database.

The token columns hold the tokens sealed with SECRET_KEY (`app.core.crypto`), so a copy of
the database (a backup, a read replica, a leaked dump) does not hand out the shop's TikTok
account. A row written before that, in plain text, is still read, and sealed on its first
read. A row that this SECRET_KEY cannot open fails like a refused refresh
(`TokensUnreadable` is a `TikTokAuthError`): every send depending on it is parked with the
reason instead of crashing the worker, until the operator restores the old SECRET_KEY or
re-connects the shop.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio.lock import Lock

from app.core import redis_keys
from app.core.clock import utc_now
from app.core.config import Settings
from app.core.crypto import SecretBox, UnreadableSecret
from app.core.logging import get_logger
from app.db.repositories.tiktok_credentials import TikTokCredentialRepository
from app.db.session import SessionFactory, transaction
from app.services.tiktok.errors import TikTokAuthError

log = get_logger(__name__)

# HKDF `info` of the key sealing the tokens: a new scheme gets a new version, and no other
# use of SECRET_KEY can derive this key.
TOKENS_KEY_PURPOSE = b"philia tiktok tokens v1"
_REMEDY = (
    "restore the previous SECRET_KEY, or connect the shop again (the Connect TikTok page, "
    "or `python -m app.cli tiktok authorize-url`), which replaces the stored tokens"
)
CONNECT_HINT = (
    "TikTok is not connected: a member of staff opens Connect TikTok (/connect/tiktok) or "
    "runs `python -m app.cli tiktok authorize-url`"
)


def token_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key.get_secret_value(), purpose=TOKENS_KEY_PURPOSE)


class TokensUnreadable(TikTokAuthError):
    """The stored tokens cannot be decrypted with this SECRET_KEY. Permanent: retrying with
    the same key fails the same way, so callers park the work as for a refused refresh."""

    def __init__(self) -> None:
        super().__init__(None, f"stored TikTok tokens cannot be decrypted: {_REMEDY}")


def refresh_lock(redis: aioredis.Redis, settings: Settings) -> Lock:
    """The one lock under which the stored pair is replaced, by a refresh or by connecting
    an account: without it a refresh of the old pair could land after a new connection.
    It outlives one refresh even when TikTok is slow, and expires by itself if its holder
    dies."""
    return redis.lock(
        redis_keys.TIKTOK_TOKEN_REFRESH_LOCK,
        timeout=settings.tiktok_http_timeout_seconds * 2 + 10,
        blocking_timeout=settings.tiktok_http_timeout_seconds + 5,
    )


class TikTokNotConnected(TikTokAuthError):
    """No tokens at all: the shop never connected its account and none were configured.
    Permanent until someone connects it."""

    def __init__(self) -> None:
        super().__init__(None, CONNECT_HINT)


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
        self,
        session_factory: SessionFactory,
        *,
        box: SecretBox,
        seed: tuple[str, str] | None,
    ) -> None:
        self._session_factory = session_factory
        self._box = box
        # (access, refresh) put in the environment by hand; None: only a connection counts.
        self._seed = seed

    @classmethod
    def from_settings(cls, session_factory: SessionFactory, settings: Settings) -> DbTokenStore:
        return cls(session_factory, box=token_box(settings), seed=settings.tiktok_hand_tokens)

    async def load(self) -> TokenPair:
        async with transaction(self._session_factory) as session:
            repository = TikTokCredentialRepository(session)
            row = await repository.get()
            if row is None:
                if self._seed is None:
                    raise TikTokNotConnected()
                seeded = await repository.seed(
                    self._box.seal(self._seed[0]), self._box.seal(self._seed[1])
                )
                if seeded:
                    log.info("tiktok_credentials_seeded")
                row = await repository.get()
            if row is None:  # pragma: no cover - the seed above just wrote it
                raise RuntimeError("tiktok_credentials row missing after seeding")
            stored_access, stored_refresh = row.access_token, row.refresh_token
            pair = TokenPair(
                access_token=self._open(stored_access),
                access_expires_at=row.access_expires_at,
                refresh_token=self._open(stored_refresh),
                refresh_expires_at=row.refresh_expires_at,
            )
            if not (self._box.is_sealed(stored_access) and self._box.is_sealed(stored_refresh)):
                # Written in plain text (before encryption, or by hand): sealed now rather
                # than at the next refresh, which for a token of unknown expiry may be never.
                sealed = await repository.replace_tokens_if_unchanged(
                    access_token=self._box.seal(pair.access_token),
                    refresh_token=self._box.seal(pair.refresh_token),
                    expected_access_token=stored_access,
                    expected_refresh_token=stored_refresh,
                )
                if sealed:
                    log.info("tiktok_credentials_sealed")
            return pair

    async def save(self, tokens: TokenPair) -> None:
        async with transaction(self._session_factory) as session:
            await TikTokCredentialRepository(session).save(
                access_token=self._box.seal(tokens.access_token),
                access_expires_at=tokens.access_expires_at,
                refresh_token=self._box.seal(tokens.refresh_token),
                refresh_expires_at=tokens.refresh_expires_at,
            )

    async def connect(self, tokens: TokenPair, *, open_id: str, scope: str | None) -> None:
        """Store the pair of a new authorisation and the account it belongs to."""
        if tokens.access_expires_at is None or tokens.refresh_expires_at is None:
            raise ValueError("an authorisation's tokens have known expiry times")
        async with transaction(self._session_factory) as session:
            await TikTokCredentialRepository(session).connect(
                access_token=self._box.seal(tokens.access_token),
                access_expires_at=tokens.access_expires_at,
                refresh_token=self._box.seal(tokens.refresh_token),
                refresh_expires_at=tokens.refresh_expires_at,
                open_id=open_id,
                scope=scope,
                connected_at=utc_now(),
            )

    def _open(self, stored: str) -> str:
        if not self._box.is_sealed(stored):
            return stored
        try:
            return self._box.open(stored)
        except UnreadableSecret:
            log.error("tiktok_tokens_undecryptable", remedy=_REMEDY)
            raise TokensUnreadable() from None


class AccessTokenCache:
    """The current access token in Redis, shared by every process."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        key: str = redis_keys.TIKTOK_ACCESS_TOKEN,
        unknown_expiry_ttl: timedelta = timedelta(hours=1),
    ) -> None:
        self._redis = redis
        self._key = key
        # A hand-pasted token has no known expiry; re-reading the database hourly picks up a
        # token replaced there by an operator without waiting for a 40105.
        self._unknown_expiry_ttl = unknown_expiry_ttl

    @property
    def key(self) -> str:
        return self._key

    async def get(self) -> CachedAccessToken | None:
        return await self.parsed(await self._redis.get(self._key))

    async def parsed(self, raw: bytes | None) -> CachedAccessToken | None:
        """The token from the key's value, read by the caller (None: not cached)."""
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
            ttl = tokens.access_expires_at - (now or utc_now())
        milliseconds = int(ttl.total_seconds() * 1000)
        if milliseconds > 0:
            await self._redis.set(self._key, cached.model_dump_json(), px=milliseconds)
        else:
            await self._redis.delete(self._key)
        return cached

    async def clear(self) -> None:
        await self._redis.delete(self._key)
