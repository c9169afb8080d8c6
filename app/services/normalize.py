"""Canonical forms of the shop's identifiers and sizes, shared by import and router."""

from __future__ import annotations

import re

SKU_PATTERN = re.compile(r"PT-\d{4}")
ORDER_NUMBER_PATTERN = re.compile(r"PH-\d{5}")
LETTER_SIZES: tuple[str, ...] = ("XS", "S", "M", "L", "XL", "XXL")

_LETTER_SIZE_WORDS: dict[str, str] = {
    "xs": "XS",
    "xsmall": "XS",
    "extrasmall": "XS",
    "s": "S",
    "sm": "S",
    "small": "S",
    "m": "M",
    "med": "M",
    "medium": "M",
    "l": "L",
    "lg": "L",
    "large": "L",
    "xl": "XL",
    "xlarge": "XL",
    "extralarge": "XL",
    "xxl": "XXL",
    "2xl": "XXL",
    "xxlarge": "XXL",
}


def normalize_sku(number: str | int) -> str:
    return f"PT-{int(number):04d}"


def normalize_order_number(number: str | int) -> str:
    return f"PH-{int(number):05d}"


def normalize_size(raw: str) -> str | None:
    """`medium` -> `M`, `x-large` -> `XL`, `32` -> `32`; None when it is not a size."""
    compact = re.sub(r"[\s\-_.]", "", raw.strip().lower())
    if compact in _LETTER_SIZE_WORDS:
        return _LETTER_SIZE_WORDS[compact]
    if re.fullmatch(r"\d{1,2}(\.5)?", compact):
        return compact
    return None
