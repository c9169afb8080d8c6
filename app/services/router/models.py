"""The router's vocabulary: intents, entities and the result every layer returns."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer


class Intent(StrEnum):
    MENU = "menu"
    ORDER_STATUS = "order_status"
    NEW_DROPS = "new_drops"
    HUMAN = "human"
    AVAILABILITY = "availability"
    SIZING = "sizing"
    HOLD = "hold"
    PRICE = "price"
    POLICY = "policy"
    THANKS = "thanks"
    OTHER = "other"


RouteSource = Literal["menu", "pattern", "local", "llm"]


class Entities(BaseModel):
    """Normalised identifiers: `PH-10234`, `PT-0142`, `M` / `32`; None when absent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_number: str | None = Field(default=None, pattern=r"^PH-\d{5}$")
    sku: str | None = Field(default=None, pattern=r"^PT-\d{4}$")
    size: str | None = Field(default=None, pattern=r"^(XS|S|M|L|XL|XXL|\d{1,2}(\.5)?)$")

    @model_serializer(mode="wrap")
    def _drop_absent(self, handler: Any) -> dict[str, Any]:
        # The router contract leaves absent entities out instead of writing nulls.
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}

    def is_empty(self) -> bool:
        return self.order_number is None and self.sku is None and self.size is None


class RouteResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    intent: Intent
    entities: Entities = Field(default_factory=Entities)
    source: RouteSource
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)

    def contract_dict(self) -> dict[str, Any]:
        """The `python -m app.cli route` line: intent, entities, source (no confidence)."""
        return {
            "intent": self.intent.value,
            "entities": self.entities.model_dump(),
            "source": self.source,
        }


class RouterContext(BaseModel):
    """What the conversation layer knows from earlier turns, so that a bare follow-up
    ("and PT-0013?", "what about the jeans") can inherit the intent it continues."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    last_intent: Intent | None = None
