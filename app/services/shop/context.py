"""What the shop brain remembers of a conversation, kept in `conversation.context` (JSONB).

Shape (version 1):

    {"shop": {
        "v": 1,
        "last_intent": "availability",        # the intent the last turn acted on
        "last_sku": "PT-0001",                # the piece talked about last ("is *it*...")
        "last_list": ["PT-0001", "PT-0002"],  # the last list shown ("the jacket")
        "offer": {"action": "hold", "sku": "PT-0001"},   # what a bare "yes" accepts
        "sizes": {"letter": "M", "waist": "32", "shoe": "10"}  # the customer's own sizes
    }}

The offer lives for one turn only: a "yes" two messages later is not an answer to it.
Everything sits under one key so other parts of the pipeline can keep their own.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from app.core.logging import get_logger
from app.db.models import Conversation

log = get_logger(__name__)

CONTEXT_KEY = "shop"


class Offer(BaseModel):
    """A question the bot just asked that a short answer completes."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["hold", "waitlist", "choose"]
    sku: str | None = None
    skus: list[str] = Field(default_factory=list)  # for "choose": the pieces listed
    intent: str | None = None  # for "choose": what the customer was asking about them


class ShopContext(BaseModel):
    model_config = ConfigDict(extra="ignore")

    v: int = 1
    last_intent: str | None = None
    last_sku: str | None = None
    last_list: list[str] = Field(default_factory=list)
    offer: Offer | None = None
    sizes: dict[str, str] = Field(default_factory=dict)
    # The pieces this turn's answer was about, one by one (not lists): not saved.
    _discussed: list[str] = PrivateAttr(default_factory=list)

    @property
    def discussed(self) -> list[str]:
        return list(dict.fromkeys(self._discussed))

    def candidates(self) -> list[str]:
        """The pieces words are matched against first: those just listed or discussed."""
        pool: list[str] = []
        if self.offer is not None and self.offer.action == "choose":
            pool.extend(self.offer.skus)
        pool.extend(self.last_list)
        if self.last_sku:
            pool.append(self.last_sku)
        return list(dict.fromkeys(pool))

    def remember_item(self, sku: str) -> None:
        self.last_sku = sku
        self._discussed.append(sku)

    def remember_list(self, skus: list[str]) -> None:
        self.last_list = list(skus)
        self.last_sku = skus[0] if len(skus) == 1 else None


def load_context(conversation: Conversation) -> ShopContext:
    raw: Any = (conversation.context or {}).get(CONTEXT_KEY)
    if not isinstance(raw, dict):
        return ShopContext()
    try:
        return ShopContext.model_validate(raw)
    except ValidationError:
        # A context written by an older version is a convenience, not a fact: start over.
        log.warning("shop_context_unreadable", conversation_id=conversation.id)
        return ShopContext()


def save_context(conversation: Conversation, context: ShopContext) -> None:
    # A new dict, so SQLAlchemy sees the JSONB column change (in-place edits go unnoticed);
    # none when nothing changed, so the turn leaves the ORM nothing to compare at its flush.
    saved = {
        **(conversation.context or {}),
        CONTEXT_KEY: context.model_dump(mode="json", exclude_none=True),
    }
    if saved != conversation.context:
        conversation.context = saved
