"""Entities found by code: the regex extractor every layer trusts for identifiers."""

from __future__ import annotations

from app.services.normalize import (
    find_order_number,
    find_size,
    find_sku,
    normalize_size,
    parse_order_number,
    parse_sku,
)
from app.services.router.models import Entities


def extract_entities(text: str) -> Entities:
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
    model_order = parse_order_number(order_number) if order_number else None
    model_sku = parse_sku(sku) if sku else None
    model_size = normalize_size(size) if size else None
    if model_order is not None and not _digits_in_text(model_order, text):
        model_order = None
    if model_sku is not None and not _digits_in_text(model_sku, text):
        model_sku = None
    if model_size is not None and not _size_in_text(model_size, text):
        model_size = None
    return Entities(
        order_number=found.order_number or model_order,
        sku=found.sku or model_sku,
        size=found.size or model_size,
    )


def _digits_in_text(identifier: str, text: str) -> bool:
    number = int(identifier.split("-", 1)[1])
    # Long runs (tracking numbers, phone numbers) are never an order or SKU mention.
    return any(len(run) <= 6 and int(run) == number for run in _digit_runs(text))


def _digit_runs(text: str) -> list[str]:
    return "".join(ch if ch.isdigit() else " " for ch in text).split()


def _size_in_text(size: str, text: str) -> bool:
    words = "".join(ch if ch.isalnum() or ch == "." else " " for ch in text).split()
    # "extra large" / "x large" are two words: also try each adjacent pair.
    pairs = [a + b for a, b in zip(words, words[1:], strict=False)]
    return any(normalize_size(word) == size for word in (*words, *pairs))
