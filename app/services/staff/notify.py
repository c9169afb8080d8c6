"""Telling the shop a conversation needs a person, or that the whole shop does (TikTok was
disconnected): a log event always, and a POST to a configurable URL (Slack/Discord/Zapier-
style incoming webhook) when one is set."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.core.config import Settings
from app.core.logging import get_logger
from app.db.models import Conversation

log = get_logger(__name__)


@dataclass
class StaffNotifier:
    settings: Settings
    http: httpx.AsyncClient

    async def __call__(self, conversation: Conversation | None, reason: str) -> None:
        """`conversation` is None for a notice about the shop as a whole."""
        tiktok_id = conversation.tiktok_conversation_id if conversation is not None else None
        log.info("staff_notified", conversation=tiktok_id, reason=reason)
        url = self.settings.staff_webhook_url
        if not url:
            return
        inbox_url = f"{self.settings.public_base_url}/inbox"
        payload = {
            "text": f"Philia: {reason}.",
            "conversation_id": None,
            "reason": reason,
            "inbox_url": inbox_url,
        }
        if conversation is not None:
            payload.update(
                text=f"Philia: a customer needs a person ({reason}).",
                conversation_id=tiktok_id,
                inbox_url=f"{inbox_url}/{conversation.id}",
            )
        try:
            response = await self.http.post(url, json=payload, timeout=5.0)
            response.raise_for_status()
        except httpx.HTTPError as error:
            # The hand-off itself is committed; a missed ping must not undo it.
            log.warning("staff_notify_failed", error=repr(error))
