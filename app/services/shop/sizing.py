"""Tag size versus fit: how a piece really fits, from the seller's verdict or its
measurements, and how that compares with the customer's own size. Pure functions."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Protocol

from app.db.models import Category
from app.services.identifiers import LETTER_SIZES, normalize_size

# Categories measured pit to pit, laid flat.
CHART_CATEGORIES = frozenset({Category.TOPS, Category.DRESSES, Category.OUTERWEAR})


class FitKind(StrEnum):
    LETTER = "letter"  # XS..XXL
    WAIST = "waist"  # inches around
    SHOE = "shoe"  # US size
    ONE_SIZE = "one_size"
    UNKNOWN = "unknown"


class FitSource(StrEnum):
    SELLER = "seller"  # the seller's explicit fits_like
    CHART = "chart"  # pit to pit on the size chart
    MEASURED = "measured"  # waist around / US shoe size
    TAG = "tag"  # nothing better than the label
    NONE = "none"


class Verdict(StrEnum):
    TRUE_TO_SIZE = "true"
    RELAXED = "relaxed"
    SNUG = "snug"
    WONT_FIT = "no"


@dataclass(frozen=True)
class Fit:
    kind: FitKind
    size: str | None
    source: FitSource


@dataclass(frozen=True)
class OwnSize:
    kind: FitKind
    size: str


def number(value: Decimal | float | str) -> str:
    """20.00 -> "20", 21.50 -> "21.5", 21.75 -> "21.75"."""
    try:
        as_decimal = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    text = format(as_decimal.normalize(), "f")
    return text


def letter_for_pit_to_pit(pit_to_pit_in: Decimal, chart: Sequence[Decimal]) -> str:
    """XS < chart[0] <= S < chart[1] <= M < chart[2] <= L < chart[3] <= XL < chart[4] <= XXL."""
    return LETTER_SIZES[bisect_right(list(chart), pit_to_pit_in)]


def kind_of_size(size: str) -> FitKind:
    """A customer's size: letters are letter sizes; numbers of 20 and up are waists
    (inches), smaller numbers are US shoe sizes."""
    if size in LETTER_SIZES:
        return FitKind.LETTER
    try:
        value = Decimal(size)
    except InvalidOperation:
        return FitKind.UNKNOWN
    return FitKind.WAIST if value >= 20 else FitKind.SHOE


def own_size(size: str | None) -> OwnSize | None:
    if not size:
        return None
    normalized = normalize_size(size) or size
    kind = kind_of_size(normalized)
    return None if kind is FitKind.UNKNOWN else OwnSize(kind, normalized)


def _first_number(text: str | None) -> str | None:
    if not text:
        return None
    found = re.search(r"\d{1,2}(?:\.5)?", text)
    return found.group() if found else None


class Sized(Protocol):
    """What a fit is read from: a piece, or just its fit columns (`SizeRow`)."""

    @property
    def category(self) -> str: ...
    @property
    def fits_like(self) -> str | None: ...
    @property
    def tag_size(self) -> str | None: ...
    @property
    def pit_to_pit_in(self) -> Decimal | None: ...
    @property
    def waist_in(self) -> Decimal | None: ...
    @property
    def shoe_size_us(self) -> Decimal | None: ...


def fit_of(item: Sized, chart: Sequence[Decimal]) -> Fit:
    """How the piece fits: the seller's `fits_like` wins, then the measurements, then the
    tag as a last resort (said so in the answer)."""
    seller = normalize_size(item.fits_like) if item.fits_like else None
    if item.category == Category.ACCESSORIES:
        return Fit(FitKind.ONE_SIZE, None, FitSource.NONE)
    if item.category in CHART_CATEGORIES:
        if seller in LETTER_SIZES:
            return Fit(FitKind.LETTER, seller, FitSource.SELLER)
        if item.pit_to_pit_in is not None:
            return Fit(
                FitKind.LETTER, letter_for_pit_to_pit(item.pit_to_pit_in, chart), FitSource.CHART
            )
        tag = normalize_size(item.tag_size) if item.tag_size else None
        if tag in LETTER_SIZES:
            return Fit(FitKind.LETTER, tag, FitSource.TAG)
        return Fit(FitKind.UNKNOWN, None, FitSource.NONE)
    if item.category == Category.BOTTOMS:
        if seller in LETTER_SIZES:
            return Fit(FitKind.LETTER, seller, FitSource.SELLER)
        seller_waist = _first_number(item.fits_like)
        if seller_waist is not None:
            return Fit(FitKind.WAIST, seller_waist, FitSource.SELLER)
        if item.waist_in is not None:
            return Fit(FitKind.WAIST, number(item.waist_in), FitSource.MEASURED)
        tag_waist = re.search(r"\bW\s?(\d{2})\b", item.tag_size or "", re.IGNORECASE)
        if tag_waist is not None:
            return Fit(FitKind.WAIST, tag_waist.group(1), FitSource.TAG)
        return Fit(FitKind.UNKNOWN, None, FitSource.NONE)
    # shoes
    seller_shoe = _first_number(item.fits_like)
    if seller_shoe is not None:
        return Fit(FitKind.SHOE, seller_shoe, FitSource.SELLER)
    if item.shoe_size_us is not None:
        return Fit(FitKind.SHOE, number(item.shoe_size_us), FitSource.MEASURED)
    tag_us = re.search(r"\bUS\s?(\d{1,2}(?:\.5)?)\b", item.tag_size or "", re.IGNORECASE)
    if tag_us is not None:
        return Fit(FitKind.SHOE, tag_us.group(1), FitSource.TAG)
    return Fit(FitKind.UNKNOWN, None, FitSource.NONE)


def compare(fit: Fit, own: OwnSize) -> Verdict | None:
    """The piece's fit against the customer's size; None when they cannot be compared
    (a shoe size against a tee, or a piece without a known fit)."""
    if fit.size is None or fit.kind is not own.kind:
        return None
    if fit.kind is FitKind.LETTER:
        steps = LETTER_SIZES.index(fit.size) - LETTER_SIZES.index(own.size)
        return {0: Verdict.TRUE_TO_SIZE, 1: Verdict.RELAXED, -1: Verdict.SNUG}.get(
            steps, Verdict.WONT_FIT
        )
    difference = Decimal(fit.size) - Decimal(own.size)
    if fit.kind is FitKind.WAIST:
        # About two inches of waist make one size.
        if abs(difference) <= 1:
            return Verdict.TRUE_TO_SIZE
        if 1 < difference <= Decimal("2.5"):
            return Verdict.RELAXED
        if Decimal("-2.5") <= difference < -1:
            return Verdict.SNUG
        return Verdict.WONT_FIT
    # Shoes: half a size is the most that still works.
    if difference == 0:
        return Verdict.TRUE_TO_SIZE
    if difference == Decimal("0.5"):
        return Verdict.RELAXED
    if difference == Decimal("-0.5"):
        return Verdict.SNUG
    return Verdict.WONT_FIT


def compare_direction(fit: Fit, own: OwnSize) -> str:
    """ "big" when the piece runs larger than the customer's size, else "small"."""
    if fit.size is None or fit.kind is not own.kind:
        return "big"
    if fit.kind is FitKind.LETTER:
        return "big" if LETTER_SIZES.index(fit.size) > LETTER_SIZES.index(own.size) else "small"
    return "big" if Decimal(fit.size) > Decimal(own.size) else "small"


def fit_distance(a: Fit, b: Fit) -> float | None:
    """How far apart two fits are in "sizes" (for suggesting similar pieces)."""
    if a.kind is not b.kind:
        return None
    if a.kind is FitKind.ONE_SIZE:
        return 0.0
    if a.size is None or b.size is None:
        return None
    if a.kind is FitKind.LETTER:
        return float(abs(LETTER_SIZES.index(a.size) - LETTER_SIZES.index(b.size)))
    gap = abs(Decimal(a.size) - Decimal(b.size))
    return float(gap / 2) if a.kind is FitKind.WAIST else float(gap)
