"""Whether the shop's TikTok account is connected to the app.

TikTok's `authorization.removed` event says the shop disconnected the app: every send fails
from then on, so replies wait in the outbox (see `messaging.delivery`) until someone
reconnects. The flag has no expiry: only an explicit reconnect clears it (the OAuth connect
flow, or `python -m app.cli tiktok reconnected` after new tokens were put in place by hand);
a token refresh or a send never does, as neither proves the shop authorised the app again.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis

from app.core import redis_keys
from app.core.clock import unix_now

# What staff are told (the notifier) and shown (the inbox, /readyz).
DISCONNECTED_NOTICE = (
    "TikTok disconnected: the shop removed the app's authorisation; reconnect it to resume replies"
)


async def mark_disconnected(redis: aioredis.Redis) -> bool:
    """Record the disconnection; False when it was recorded already (a redelivered event),
    which keeps the first time and lets the caller tell staff once."""
    return bool(await redis.set(redis_keys.TIKTOK_DISCONNECTED, f"{unix_now():.6f}", nx=True))


async def mark_connected(redis: aioredis.Redis) -> bool:
    """Clear the flag; True when TikTok was marked disconnected."""
    return bool(await redis.delete(redis_keys.TIKTOK_DISCONNECTED))


async def disconnected_since(redis: aioredis.Redis) -> datetime | None:
    raw = await redis.get(redis_keys.TIKTOK_DISCONNECTED)
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        # Whatever is there, the flag is set: disconnected since an unknown time.
        return datetime.fromtimestamp(0, UTC)
