"""Entities found by code: the regex extractor every layer trusts for identifiers."""

from __future__ import annotations

import re

from app.services.identifiers import (
    find_order_number,
    find_size,
    find_sku,
    mentions_size,
    normalize_size,
    parse_order_number,
    parse_sku,
)
from app.services.router.models import Entities

# Identifiers and sizes are read in the start of a message, like its intent: a pasted
# essay must not cost more time than a DM.
MAX_ENTITY_CHARS = 2000


def extract_entities(text: str) -> Entities:
    text = text[:MAX_ENTITY_CHARS]
    return Entities(order_number=find_order_number(text), sku=find_sku(text), size=find_size(text))


def merge_model_entities(
    text: str,
    found: Entities,
    *,
    order_number: str | None,
    sku: str | None,
    size: str | None,
) -> Entities:
    """Combine what a model (the LLM) extracted with what the regexes found.

    Identifiers found by the regexes win. A model's identifier or size is only kept when
    it re-normalises and its digits / words really occur in the message: a model can
    misread or invent a number, and a wrong order number is worse than none.
    """
    text = text[:MAX_ENTITY_CHARS]
    model_order = parse_order_number(order_number) if order_number else None
    model_sku = parse_sku(sku) if sku else None
    model_size = normalize_size(size) if size else None
    if model_order is not None and not _number_in_text(model_order, text, found):
        model_order = None
    if model_sku is not None and not _number_in_text(model_sku, text, found):
        model_sku = None
    if model_size is not None and not mentions_size(text, model_size):
        model_size = None
    return Entities(
        order_number=found.order_number or model_order,
        sku=found.sku or model_sku,
        size=found.size or model_size,
    )


def _number_in_text(identifier: str, text: str, found: Entities) -> bool:
    """Whether the identifier's number is written in the message as a number of its own,
    not as a price, a measurement, the size the regexes found, or part of a longer run
    (a tracking or phone number)."""
    number = int(identifier.split("-", 1)[1])
    if found.size is not None and found.size == str(number):
        return False
    for match in re.finditer(r"(?<![\d.,$£€])\d{1,6}(?![\d.,])", text):
        if int(match.group()) == number and not _UNIT_AFTER.match(text, match.end()):
            return True
    return False


_UNIT_AFTER = re.compile(
    r"\s*(?:%|\$|inch|inches|in\b|cm|mm|ft|lbs?|kg|dollars?|bucks|usd|days?|weeks?|years?)",
    re.IGNORECASE,
)
