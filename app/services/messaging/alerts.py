"""What is wrong with the TikTok connection as a whole, for /readyz and the staff inbox:
the shop removed the app's authorisation, or webhook events arrive for another account than
TIKTOK_BUSINESS_ID. Neither makes the app unready: webhooks must still be accepted."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from app.core.config import Settings
from app.services.messaging.inbound import other_account_seen
from app.services.tiktok.connection import DISCONNECTED_NOTICE, disconnected_since

TIKTOK_DISCONNECTED = "tiktok_disconnected"
TIKTOK_ACCOUNT_MISMATCH = "tiktok_account_mismatch"


@dataclass(frozen=True)
class TikTokAlert:
    code: str
    message: str
    details: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, **self.details}


async def tiktok_alerts(redis: aioredis.Redis, settings: Settings) -> list[TikTokAlert]:
    alerts: list[TikTokAlert] = []
    since = await disconnected_since(redis)
    if since is not None:
        alerts.append(
            TikTokAlert(
                TIKTOK_DISCONNECTED,
                f"{DISCONNECTED_NOTICE} (since {since:%Y-%m-%d %H:%M} UTC)",
                {"since": since.isoformat()},
            )
        )
    seen = await other_account_seen(redis, settings)
    if seen is not None:
        alerts.append(
            TikTokAlert(
                TIKTOK_ACCOUNT_MISMATCH,
                f"TikTok events arrive for account {seen}, not for the configured "
                f"TIKTOK_BUSINESS_ID {settings.tiktok_business_id}: check that it is the "
                "account's OAuth open_id",
                {"seen_open_id": seen, "configured_business_id": settings.tiktok_business_id},
            )
        )
    return alerts
