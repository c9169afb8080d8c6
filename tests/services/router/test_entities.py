"""Identifiers and sizes as customers write them, normalised."""

from __future__ import annotations

import pytest

from app.services.identifiers import (
    find_order_number,
    find_size,
    find_sku,
    mentions_size,
    normalize_size,
    parse_order_number,
    parse_sku,
)
from app.services.router.entities import extract_entities, merge_model_entities
from app.services.router.models import Entities


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tracking number for PH-10234 please", "PH-10234"),
        ("my order ph10877 says pending", "PH-10877"),
        ("order #10561 status?", "PH-10561"),
        ("where is order 10234", "PH-10234"),
        ("order number: 10412 hasn't come", "PH-10412"),
        ("#10234", "PH-10234"),
        ("PH 10999?", "PH-10999"),
        ("ph-123", "PH-00123"),
        ("i ordered 10500 last week", "PH-10500"),
        ("where is my order", None),
        ("order 2 items", None),
        ("is item 88 available", None),
        ("call me at 5551234567", None),
        ("tracking 9400111899223344556677", None),
    ],
)
def test_order_numbers(text: str, expected: str | None) -> None:
    assert find_order_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("do you still have PT-0142?", "PT-0142"),
        ("pt0142 available", "PT-0142"),
        ("is item 88 available", "PT-0088"),
        ("item #23 pls", "PT-0023"),
        ("item number 7?", "PT-0007"),
        ("sku: 301", "PT-0301"),
        ("is #142 sold", "PT-0142"),
        ("PT 55 and pt 13", "PT-0055"),
        ("order #10561", None),
        ("any discount if i buy 2 items", None),
        ("#1 shop ever", None),
        ("my order ph10877", None),
    ],
)
def test_skus(text: str, expected: str | None) -> None:
    assert find_sku(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the tag says L but how does it actually fit", "L"),
        ("i'm usually a medium, would it fit me", "M"),
        ("would PT-0211 fit a size 8 women's", "8"),
        ("I wear an XS", "XS"),
        ("do you have it in small", "S"),
        ("is this an xl", "XL"),
        ("size: x-large?", "XL"),
        ("im a 32 waist", "32"),
        ("W30 L32 jeans?", "30"),
        ("32x30?", "32"),
        ("I wear a 10 in shoes", "10"),
        ("size 10.5 mens", "10.5"),
        ("M or L?", "M"),
        ("how about PT-0019, the tag says S", "S"),
        # Not sizes: measurements, prices, quantities, fit words, menu digits, ids.
        ("my chest is 40 inches will the jacket fit", None),
        ("would you take $30 for it", None),
        ("would you take 30 bucks", None),
        ("any discount if i buy 2", None),
        ("does it run small?", None),
        ("does the hoodie run big or small", None),
        ("is it true to size", None),
        ("what size is it?", None),
        ("1", None),
        ("do you still have PT-0142?", None),
        ("i'm 25 and 5'6", None),
        ("a small stain on the sleeve?", None),
        ("can you ship in 10 days", None),
        ("IS IT STILL AVAILABLE", None),
    ],
)
def test_sizes(text: str, expected: str | None) -> None:
    assert find_size(text) == expected


def test_normalize_size_keeps_its_catalogue_behaviour() -> None:
    assert normalize_size("medium") == "M"
    assert normalize_size("x-large") == "XL"
    assert normalize_size("2XL") == "XXL"
    assert normalize_size("32") == "32"
    assert normalize_size("10.5") == "10.5"
    assert normalize_size("W32 L30") is None
    assert normalize_size("One size") is None


@pytest.mark.parametrize(
    ("raw", "order", "sku"),
    [
        ("PH-10234", "PH-10234", None),
        ("ph10234", "PH-10234", None),
        ("#10234", "PH-10234", None),
        ("10234", "PH-10234", None),
        ("PT-0142", None, "PT-0142"),
        ("pt142", None, "PT-0142"),
        ("item 23", None, "PT-0023"),
        ("23", None, "PT-0023"),
        ("PH-123456", None, None),
        ("banana", None, None),
    ],
)
def test_parse_identifiers(raw: str, order: str | None, sku: str | None) -> None:
    assert parse_order_number(raw) == order
    assert parse_sku(raw) == sku


def test_extract_entities_finds_all_three() -> None:
    entities = extract_entities("order #10561: can i swap PT-0211 for a size medium?")
    assert entities == Entities(order_number="PH-10561", sku="PT-0211", size="M")


def test_entities_serialise_without_absent_fields() -> None:
    assert Entities(sku="PT-0142").model_dump() == {"sku": "PT-0142"}
    assert Entities().model_dump() == {}


def test_mentions_size() -> None:
    assert mentions_size("im usually medium ish", "M")
    assert mentions_size("i wear a 32", "32")
    assert not mentions_size("my chest is 40 inches", "40")
    assert not mentions_size("$32 ok?", "32")
    assert not mentions_size("pt-0032 pls", "32")


class TestMergeModelEntities:
    """The LLM's entities are re-normalised and must be backed by the message."""

    def merge(self, text: str, **model: str | None) -> Entities:
        fields: dict[str, str | None] = {"order_number": None, "sku": None, "size": None}
        fields.update(model)
        return merge_model_entities(text, extract_entities(text), **fields)

    def test_regex_wins_for_identifiers(self) -> None:
        merged = self.merge("is item 142 still up", sku="PT-0999")
        assert merged.sku == "PT-0142"

    def test_model_identifier_renormalised_when_in_the_text(self) -> None:
        assert self.merge("the piece numbered 142 please", sku="pt142").sku == "PT-0142"

    def test_invented_identifiers_dropped(self) -> None:
        assert self.merge("where is my order", order_number="PH-10234").order_number is None
        assert self.merge("would you take $30", sku="PT-0030").sku is None
        assert self.merge("i'm a 32 waist", sku="PT-0032") == Entities(size="32")

    def test_model_size_renormalised_and_checked(self) -> None:
        assert self.merge("im usually medium ish", size="medium").size == "M"
        assert self.merge("my chest is 40 inches", size="40").size is None
        assert self.merge("does it run small", size="banana").size is None


@pytest.mark.parametrize(
    "text",
    [
        # a plural is not a size
        "what sizes do you have",
        "which sizes are left?",
        "sizes?",
        # abbreviations and initials
        "can it arrive before 3 P.M. tomorrow",
        "do you ship to the U.S.?",
        "my cousin in L.A. loves your page",
        "is that on the S&P list lol",
        "tell Anna M i said hi",
        "the letter S on the sweater is cute",
        "is there vitamin D in that juice",
        # a size word describing something that is not clothing
        "there was a small problem with my payment",
        "i made a large order last week",
        "it was a medium priority thing",
        "for a large refund how long does it take",
        # amounts and measurements after a number
        "how much is 50 US dollars in euros",
        "is it within a 2 mile radius",
        "add 1/2 cup of sugar",
        # a lone lowercase letter without a size's frame
        "can you save one for m",
        # a to-do list's item, not a piece
        "remove item 3 from my list",
    ],
)
def test_what_only_looks_like_an_entity_is_none(text: str) -> None:
    entities = extract_entities(text)
    assert (entities.size, entities.sku, entities.order_number) == (None, None, None), text


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("size M?", "M"),
        ("size:L", "L"),
        ("sz8", "8"),
        ("do you have it in a large", "L"),
        ("M or L?", "M"),
        ("i'm usually a small tbh", "S"),
        ("i wear a large and my sister a medium", "L"),
        ("do u have this in m", "M"),
        ("10 US in the sneakers?", "10"),
    ],
)
def test_sizes_stay_found_where_the_text_names_them(text: str, size: str) -> None:
    assert find_size(text) == size


@pytest.mark.parametrize(
    ("text", "size"),
    [("S/M?", "S"), ("M/L", "M"), ("size 32/34", "32"), ("size 8/9", "8"), ("L/XL pls", "L")],
)
def test_a_slash_between_sizes_keeps_them(text: str, size: str) -> None:
    assert find_size(text) == size


@pytest.mark.timeout(10)
def test_one_enormous_word_is_read_in_linear_time() -> None:
    assert extract_entities("a" * 200_000 + " M") == extract_entities("")
    assert find_size("x" * 100_000 + " is it M") == "M"
