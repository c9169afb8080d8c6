"""Which TikTok account the bot speaks for: the business id of every send, and the
`user_openid` of the webhooks that are the shop's.

It is the open_id of the account connected through OAuth (recorded with its tokens), else
TIKTOK_BUSINESS_ID as configured. tiktok-api.md: the business id *is* the account's OAuth
open_id, so a shop that connects through the app never has to copy it by hand, and a
configured value that disagrees with the connected account loses.

Every inbound event and every send asks, so the answer lives in Redis (a copy, refilled
from PostgreSQL when Redis lost it) rather than costing a database round trip each time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

from app.core import redis_keys
from app.core.config import Settings
from app.db.repositories.tiktok_credentials import TikTokCredentialRepository
from app.db.session import SessionFactory, transaction

# A copy refilled from the database this often at the latest: a row changed by hand (or
# restored from a backup) is picked up without a restart.
_COPY_TTL_SECONDS = 3600


class AccountIdentity(Protocol):
    async def business_id(self) -> str | None: ...

    async def business_id_with(self, key: str) -> tuple[str | None, bytes | None]:
        """`business_id`, and the value of another Redis key (None when it is missing):
        in one round trip where the account is kept in Redis."""


@dataclass(frozen=True)
class ConfiguredAccount:
    """The configured business id alone: for tools and tests without a database."""

    settings: Settings
    redis: aioredis.Redis | None = None  # where `business_id_with` reads its other key

    async def business_id(self) -> str | None:
        return self.settings.tiktok_configured_business_id

    async def business_id_with(self, key: str) -> tuple[str | None, bytes | None]:
        value = await self.redis.get(key) if self.redis is not None else None
        return self.settings.tiktok_configured_business_id, value


@dataclass(frozen=True)
class BusinessAccount:
    settings: Settings
    redis: aioredis.Redis
    session_factory: SessionFactory

    async def business_id(self) -> str | None:
        """The connected account's open_id, else TIKTOK_BUSINESS_ID; None when neither is
        known (production, never connected)."""
        return await self.connected_open_id() or self.settings.tiktok_configured_business_id

    async def business_id_with(self, key: str) -> tuple[str | None, bytes | None]:
        """`business_id`, and the value of another key (None when it is missing) read in
        the same round trip: every webhook event and every call to TikTok needs both."""
        raw, value = await self.redis.mget(redis_keys.TIKTOK_BUSINESS_ID, key)
        if raw is None:  # not copied to Redis yet: from the database, as `business_id` does
            return await self.business_id(), value
        return _open_id(raw) or self.settings.tiktok_configured_business_id, value

    async def connected_open_id(self) -> str | None:
        raw = await self.redis.get(redis_keys.TIKTOK_BUSINESS_ID)
        if raw is not None:
            return _open_id(raw)
        async with transaction(self.session_factory) as session:
            open_id = await TikTokCredentialRepository(session).open_id()
        # nx: a connection that committed meanwhile wrote the newer value; this read of the
        # database may be older than it and must not replace it.
        await self.redis.set(
            redis_keys.TIKTOK_BUSINESS_ID, open_id or "", ex=_COPY_TTL_SECONDS, nx=True
        )
        return open_id

    async def has_stored_tokens(self) -> bool:
        """Whether a pair is stored (connected, or seeded from hand-put tokens)."""
        async with transaction(self.session_factory) as session:
            return await TikTokCredentialRepository(session).get() is not None

    async def remember(self, open_id: str) -> None:
        """After a connection: every process sees the new account at its next question."""
        await self.redis.set(redis_keys.TIKTOK_BUSINESS_ID, open_id, ex=_COPY_TTL_SECONDS)


def _open_id(raw: bytes | str) -> str | None:
    """The connected account's open_id as Redis keeps it ("" for none)."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return text or None
