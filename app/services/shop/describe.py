"""Facts of a piece or an order turned into the words of app/services/replies.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from app.db.models import Category, Item, ItemStatus
from app.services import replies
from app.services.identifiers import normalize_size
from app.services.shop.sizing import (
    Fit,
    FitKind,
    FitSource,
    OwnSize,
    Verdict,
    compare_direction,
    fit_of,
    kind_of_size,
    number,
)

_CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money(amount: Decimal, currency: str) -> str:
    """$120, $42.50, 80.00 CAD: whole amounts without cents, as shops write them."""
    text = f"{amount:.0f}" if amount == amount.to_integral_value() else f"{amount:.2f}"
    sign = _CURRENCY_SIGNS.get(currency.upper())
    return f"{sign}{text}" if sign else f"{amount:.2f} {currency.upper()}"


def price(item: Item) -> str:
    return money(item.price, item.currency)


def item_name(item: Item) -> str:
    return replies.ITEM_NAME.format(title=item.title, sku=item.sku)


def status_word(item: Item) -> str:
    return {
        ItemStatus.AVAILABLE: replies.STATUS_AVAILABLE,
        ItemStatus.RESERVED: replies.STATUS_RESERVED,
    }.get(item.status, replies.STATUS_SOLD)


def until(moment: datetime) -> str:
    return f"{moment:%a %b} {moment.day}, {moment:%H:%M} UTC"


def day(moment: datetime) -> str:
    return f"{moment:%b} {moment.day}"


def size_for_text(kind: FitKind, size: str) -> str:
    """ "an M", "a 32 in waist", "a US 10": a size inside a sentence."""
    if kind is FitKind.LETTER:
        # Every letter size is read with a vowel sound: an XS, an S, an M, an L, an XL.
        return replies.OWN_LETTER.format(article="an", size=size)
    if kind is FitKind.WAIST:
        return replies.OWN_WAIST.format(size=size)
    return replies.OWN_SHOE.format(size=size)


def fit_label(item: Item, chart: Sequence[Decimal]) -> str:
    """The short fit of a list line: "fits like an M", "32 in waist", "US 9", "one size"."""
    fit = fit_of(item, chart)
    if fit.kind is FitKind.LETTER and fit.size is not None:
        return replies.FIT_LETTER.format(size=size_for_text(FitKind.LETTER, fit.size))
    if fit.kind is FitKind.WAIST and fit.size is not None:
        return replies.FIT_WAIST.format(waist=fit.size)
    if fit.kind is FitKind.SHOE and fit.size is not None:
        return replies.FIT_SHOE.format(size=fit.size)
    if fit.kind is FitKind.ONE_SIZE:
        return replies.FIT_ONE_SIZE
    return replies.FIT_UNKNOWN.format(tag=item.tag_size or "?")


def fit_with_measure(item: Item, chart: Sequence[Decimal]) -> str:
    """The fit with its main measurement, for availability answers."""
    label = fit_label(item, chart)
    if item.pit_to_pit_in is not None and fit_of(item, chart).kind is FitKind.LETTER:
        tag = f"tag {item.tag_size}, " if item.tag_size else ""
        return f"{tag}{label} ({replies.MEASURE_PIT.format(pit=number(item.pit_to_pit_in))})"
    if item.tag_size and item.tag_size.lower() not in label.lower():
        return f"tag {item.tag_size}, {label}"
    return label


def item_line(item: Item, chart: Sequence[Decimal], *, with_status: bool = False) -> str:
    values = {
        "sku": item.sku,
        "title": item.title,
        "fit": fit_label(item, chart),
        "price": price(item),
        "status": status_word(item),
    }
    template = replies.ITEM_LINE_WITH_STATUS if with_status else replies.ITEM_LINE
    return template.format(**values)


def _top_measurements(item: Item) -> str | None:
    parts = []
    if item.pit_to_pit_in is not None:
        parts.append(replies.MEASURE_PIT.format(pit=number(item.pit_to_pit_in)))
    if item.length_in is not None:
        parts.append(replies.MEASURE_LENGTH.format(length=number(item.length_in)))
    return " and ".join(parts) if parts else None


def _bottom_measurements(item: Item) -> str | None:
    parts = []
    if item.waist_in is not None:
        parts.append(replies.MEASURE_WAIST.format(waist=number(item.waist_in)))
    if item.inseam_in is not None:
        parts.append(replies.MEASURE_INSEAM.format(inseam=number(item.inseam_in)))
    return " with a ".join(parts) if parts else None


def sizing_sentence(item: Item, fit: Fit) -> str:
    """Tag versus fit, always with the measurements and their units."""
    name = item_name(item)
    tag = item.tag_size or "no size"
    if fit.kind is FitKind.ONE_SIZE:
        return replies.SIZE_ONE_SIZE.format(item=name)
    if fit.kind is FitKind.SHOE and fit.size is not None:
        tag_note = ""
        if item.tag_size and item.tag_size.replace(" ", "").upper() != f"US{fit.size}":
            tag_note = replies.SIZE_SHOE_TAG_NOTE.format(tag=item.tag_size)
        return replies.SIZE_SHOE.format(item=name, size=fit.size, tag_note=tag_note)
    if fit.kind is FitKind.WAIST:
        measured = _bottom_measurements(item)
        if measured is None:
            return replies.SIZE_TAG_ONLY.format(item=name, tag=tag)
        return replies.SIZE_WAIST.format(item=name, tag=tag, measurements=measured)
    if fit.kind is FitKind.LETTER and fit.size is not None:
        fit_text = size_for_text(FitKind.LETTER, fit.size)
        measured = (
            _top_measurements(item) if item.category != "bottoms" else _bottom_measurements(item)
        )
        if fit.source is FitSource.TAG or (measured is None and fit.source is not FitSource.SELLER):
            return replies.SIZE_TAG_ONLY.format(item=name, tag=tag)
        if measured is None:
            return replies.SIZE_SELLER_ONLY.format(item=name, tag=tag, fit=fit_text)
        same = normalize_size(item.tag_size or "") == fit.size
        template = replies.SIZE_TAG_MATCHES if same else replies.SIZE_TAG_DIFFERS
        return template.format(item=name, tag=tag, measurements=measured, fit=fit_text)
    return replies.SIZE_UNKNOWN.format(item=name)


def verdict_sentence(verdict: Verdict, own: OwnSize) -> str:
    if own.kind is FitKind.SHOE and verdict in (Verdict.RELAXED, Verdict.SNUG):
        # Half a shoe size is "roomy" or "snug", never "oversized".
        shoe = replies.FIT_SHOE_ROOMY if verdict is Verdict.RELAXED else replies.FIT_SNUG
        return shoe.format(size=size_for_text(own.kind, own.size))
    template = {
        Verdict.TRUE_TO_SIZE: replies.FIT_TRUE,
        Verdict.RELAXED: replies.FIT_RELAXED,
        Verdict.SNUG: replies.FIT_SNUG,
        Verdict.WONT_FIT: replies.FIT_WONT,
    }[verdict]
    return template.format(size=size_for_text(own.kind, own.size))


def verdict_suffix(verdict: Verdict, fit: Fit, own: OwnSize) -> str:
    """The few words an availability line adds when the customer's size is known."""
    if verdict is Verdict.TRUE_TO_SIZE:
        return replies.FOR_YOU_TRUE
    if verdict is Verdict.RELAXED:
        return replies.FOR_YOU_RELAXED
    if verdict is Verdict.SNUG:
        return replies.FOR_YOU_SNUG
    return replies.FOR_YOU_WONT.format(direction=compare_direction(fit, own))


_ALERT_CATEGORIES = {
    Category.TOPS: "tops",
    Category.OUTERWEAR: "jackets & coats",
    Category.BOTTOMS: "bottoms",
    Category.DRESSES: "dresses",
    Category.SHOES: "shoes",
    Category.ACCESSORIES: "accessories",
}


def alert_subject(category: Category | None, size: str | None) -> str:
    """ "jackets & coats that fit an M", "pieces": what a customer's alerts are about."""
    what = _ALERT_CATEGORIES[category] if category is not None else "pieces"
    if size is None:
        return what
    kind = kind_of_size(size)
    shown = size_for_text(kind, size) if kind is not FitKind.UNKNOWN else size
    return f"{what} that fit {shown}"
