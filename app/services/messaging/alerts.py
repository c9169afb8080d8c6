"""What is wrong with the TikTok connection as a whole, for /readyz and the staff inbox:
the account was never connected, the shop removed the app's authorisation, or webhook
events arrive for another account than the shop's. None makes the app unready: webhooks
must still be accepted."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from app.core.config import Settings
from app.db.session import SessionFactory
from app.services.messaging.inbound import other_account_seen
from app.services.tiktok.account import BusinessAccount
from app.services.tiktok.connection import DISCONNECTED_NOTICE, disconnected_since
from app.services.tiktok.tokens import CONNECT_HINT

TIKTOK_NOT_CONNECTED = "tiktok_not_connected"
TIKTOK_DISCONNECTED = "tiktok_disconnected"
TIKTOK_ACCOUNT_MISMATCH = "tiktok_account_mismatch"


@dataclass(frozen=True)
class TikTokAlert:
    code: str
    message: str
    details: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, **self.details}


async def tiktok_alerts(
    redis: aioredis.Redis, settings: Settings, session_factory: SessionFactory
) -> list[TikTokAlert]:
    alerts: list[TikTokAlert] = []
    account = BusinessAccount(settings, redis, session_factory)
    business_id = await account.business_id()
    if business_id is None or (
        settings.tiktok_hand_tokens is None and not await account.has_stored_tokens()
    ):
        alerts.append(TikTokAlert(TIKTOK_NOT_CONNECTED, CONNECT_HINT))
    since = await disconnected_since(redis)
    if since is not None:
        alerts.append(
            TikTokAlert(
                TIKTOK_DISCONNECTED,
                f"{DISCONNECTED_NOTICE} (since {since:%Y-%m-%d %H:%M} UTC)",
                {"since": since.isoformat()},
            )
        )
    seen = await other_account_seen(redis, account)
    if seen is not None:
        alerts.append(
            TikTokAlert(
                TIKTOK_ACCOUNT_MISMATCH,
                f"TikTok events arrive for account {seen}, not for the shop's account "
                f"{business_id or '(none)'}: TIKTOK_BUSINESS_ID must be the account's OAuth "
                "open_id; connecting the account through Connect TikTok records it",
                {"seen_open_id": seen, "configured_business_id": business_id or ""},
            )
        )
    return alerts
