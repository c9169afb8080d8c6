"""Tag size versus fit, and the customer's own size against it (pure functions)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core.config import Settings
from app.db.models import Item
from app.services.shop.sizing import (
    Fit,
    FitKind,
    FitSource,
    OwnSize,
    Verdict,
    compare,
    fit_of,
    letter_for_pit_to_pit,
    own_size,
)
from app.services.shop.words import stated_own_size

CHART = Settings().size_chart_pit_to_pit_in


def piece(category: str, **fields: object) -> Item:
    values: dict[str, object] = {
        "sku": "PT-0900",
        "title": "Test piece",
        "category": category,
        "gender": "unisex",
        "condition": "good",
        "price": Decimal("10"),
        "currency": "USD",
        "status": "available",
    }
    values.update(fields)
    return Item(**values)


@pytest.mark.parametrize(
    ("pit", "size"),
    [
        ("17.99", "XS"),
        ("18", "S"),
        ("19.49", "S"),
        ("19.5", "M"),
        ("20", "M"),
        ("21", "L"),
        ("22.49", "L"),
        ("22.5", "XL"),
        ("23.99", "XL"),
        ("24", "XXL"),
        ("30", "XXL"),
    ],
)
def test_default_chart_boundaries(pit: str, size: str) -> None:
    assert letter_for_pit_to_pit(Decimal(pit), CHART) == size


def test_the_shop_can_change_the_chart() -> None:
    chart = Settings(size_chart_pit_to_pit_in="17,18.5,20,21.5,23").size_chart_pit_to_pit_in
    assert letter_for_pit_to_pit(Decimal("20"), chart) == "L"


def test_seller_fits_like_wins_over_the_measurements() -> None:
    tee = piece("tops", tag_size="S", fits_like="L", pit_to_pit_in=Decimal("19"))
    assert fit_of(tee, CHART) == Fit(FitKind.LETTER, "L", FitSource.SELLER)


def test_tops_dresses_outerwear_use_pit_to_pit() -> None:
    for category in ("tops", "dresses", "outerwear"):
        measured = piece(category, tag_size="XL", pit_to_pit_in=Decimal("20"))
        assert fit_of(measured, CHART) == Fit(FitKind.LETTER, "M", FitSource.CHART)


def test_without_measurements_the_tag_is_all_there_is() -> None:
    assert fit_of(piece("tops", tag_size="L"), CHART) == Fit(FitKind.LETTER, "L", FitSource.TAG)
    assert fit_of(piece("tops"), CHART).kind is FitKind.UNKNOWN


def test_bottoms_by_waist_shoes_by_us_size_accessories_one_size() -> None:
    jeans = piece("bottoms", tag_size="W34 L32", waist_in=Decimal("33"))
    assert fit_of(jeans, CHART) == Fit(FitKind.WAIST, "33", FitSource.MEASURED)
    assert fit_of(piece("bottoms", tag_size="W26"), CHART) == Fit(
        FitKind.WAIST, "26", FitSource.TAG
    )
    boots = piece("shoes", tag_size="UK 6", shoe_size_us=Decimal("8.0"))
    assert fit_of(boots, CHART) == Fit(FitKind.SHOE, "8", FitSource.MEASURED)
    assert fit_of(piece("accessories", tag_size="One size"), CHART).kind is FitKind.ONE_SIZE


@pytest.mark.parametrize(
    ("fit", "own", "verdict"),
    [
        ("M", "M", Verdict.TRUE_TO_SIZE),
        ("L", "M", Verdict.RELAXED),
        ("S", "M", Verdict.SNUG),
        ("XL", "M", Verdict.WONT_FIT),
        ("XS", "M", Verdict.WONT_FIT),
    ],
)
def test_letter_fit_against_own_size(fit: str, own: str, verdict: Verdict) -> None:
    assert compare(Fit(FitKind.LETTER, fit, FitSource.CHART), OwnSize(FitKind.LETTER, own)) is (
        verdict
    )


def test_waist_and_shoe_against_own_size() -> None:
    waist = Fit(FitKind.WAIST, "33", FitSource.MEASURED)
    assert compare(waist, OwnSize(FitKind.WAIST, "32")) is Verdict.TRUE_TO_SIZE
    assert compare(waist, OwnSize(FitKind.WAIST, "31")) is Verdict.RELAXED
    assert compare(waist, OwnSize(FitKind.WAIST, "35")) is Verdict.SNUG
    assert compare(waist, OwnSize(FitKind.WAIST, "36")) is Verdict.WONT_FIT
    shoe = Fit(FitKind.SHOE, "9", FitSource.MEASURED)
    assert compare(shoe, OwnSize(FitKind.SHOE, "9")) is Verdict.TRUE_TO_SIZE
    assert compare(shoe, OwnSize(FitKind.SHOE, "9.5")) is Verdict.SNUG
    assert compare(shoe, OwnSize(FitKind.SHOE, "11")) is Verdict.WONT_FIT
    # A shoe size says nothing about a tee.
    assert compare(Fit(FitKind.LETTER, "M", FitSource.CHART), OwnSize(FitKind.SHOE, "9")) is None


def test_own_size_kinds() -> None:
    assert own_size("medium") == OwnSize(FitKind.LETTER, "M")
    assert own_size("32") == OwnSize(FitKind.WAIST, "32")
    assert own_size("10.5") == OwnSize(FitKind.SHOE, "10.5")
    assert own_size(None) is None


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("I'm usually a medium, would it fit me?", "M"),
        ("im an XL", "XL"),
        ("I wear a 10, do the sambas fit?", "10"),
        ("I'm a 32 waist will the levis fit", "32"),
        ("usually a small", "S"),
        ("my size is large", "L"),
        ("how about PT-0019, the tag says S", None),
        ("is it an M?", None),
        ("I'm 25 and love vintage", None),
        ("I'm sure it's great", None),
    ],
)
def test_stated_own_size(text: str, size: str | None) -> None:
    assert stated_own_size(text) == size
