"""Collecting fakes of the outside world's ports (never of our own database or cache)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Conversation, Customer, Message
from app.services import replies
from app.services.tiktok.errors import TikTokPermanentError, TikTokTransientError, TransientKind
from app.services.turns import Reply, TurnResult


@dataclass
class SentMessage:
    conversation_id: str
    text: str | None = None
    media_id: str | None = None


@dataclass
class CollectingSender:
    """A TikTokSender that records what would have gone out; can be told to fail."""

    sent: list[SentMessage] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)
    images: bool = True
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, *errors: Exception) -> None:
        self.failures.extend(errors)

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    async def send_text(self, conversation_id: str, text: str) -> str:
        self._maybe_fail()
        self.sent.append(SentMessage(conversation_id, text=text))
        return f"tt-{next(self._ids)}"

    async def send_image(self, conversation_id: str, media_id: str) -> str:
        self._maybe_fail()
        self.sent.append(SentMessage(conversation_id, media_id=media_id))
        return f"tt-{next(self._ids)}"

    async def can_send_images(self, conversation_id: str) -> bool:
        return self.images


@dataclass
class FixedMedia:
    async def media_id_for(self, image_url: str) -> str:
        return f"media-for-{image_url.rsplit('/', 1)[-1]}"


def server_error() -> TikTokTransientError:
    return TikTokTransientError(None, "HTTP 503", kind=TransientKind.SERVER_ERROR, http_status=503)


def too_fast() -> TikTokTransientError:
    return TikTokTransientError(40064, "sending too fast", kind=TransientKind.TOO_FAST)


def bad_parameters() -> TikTokPermanentError:
    return TikTokPermanentError(40002, "bad parameters")


class MenuBrain:
    """The fallback brain: menu digit 3 hands over, everything else gets the menu."""

    async def respond(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        turn: list[Message],
    ) -> TurnResult:
        last = turn[-1]
        if last.message_type != "text":
            return TurnResult("other", "pattern", replies=[Reply(replies.CANNOT_READ_MEDIA)])
        if (last.text or "").strip() == "3":
            return TurnResult(
                "human", "menu", replies=[Reply(replies.HANDOFF_CONFIRM)], handoff=True
            )
        return TurnResult("menu", "menu", replies=[Reply(replies.MENU)])
