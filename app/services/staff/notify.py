"""Telling the shop a conversation needs a person: a log event always, and a POST to a
configurable URL (Slack/Discord/Zapier-style incoming webhook) when one is set."""

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

    async def __call__(self, conversation: Conversation, reason: str) -> None:
        log.info(
            "staff_notified",
            conversation=conversation.tiktok_conversation_id,
            reason=reason,
        )
        url = self.settings.staff_webhook_url
        if not url:
            return
        payload = {
            "text": f"Philia: a customer needs a person ({reason}).",
            "conversation_id": conversation.tiktok_conversation_id,
            "reason": reason,
            "inbox_url": f"{self.settings.public_base_url}/inbox/{conversation.id}",
        }
        try:
            response = await self.http.post(url, json=payload, timeout=5.0)
            response.raise_for_status()
        except httpx.HTTPError as error:
            # The hand-off itself is committed; a missed ping must not undo it.
            log.warning("staff_notify_failed", error=repr(error))
