"""What the pipeline asks of the part that decides what to say.

The pipeline owns windows, ordering, the outbox and human mode; a Brain only turns a
customer turn (one message, or a burst of them) into intent and replies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Conversation, Customer, Message


@dataclass(frozen=True)
class Reply:
    text: str | None = None
    image_url: str | None = None


@dataclass
class TurnResult:
    intent: str
    router_source: str
    entities: dict[str, Any] = field(default_factory=dict)
    replies: list[Reply] = field(default_factory=list)
    handoff: bool = False  # switch the conversation to a person
    handoff_reason: str | None = None  # what staff are told; None: the customer asked
    # Messages queued for other conversations this turn (a waitlist notice when a hold is
    # let go), delivered once the turn commits.
    other_outbox_ids: list[int] = field(default_factory=list)


class Brain(Protocol):
    async def respond(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        turn: list[Message],
    ) -> TurnResult: ...
