"""Layer 1: menu digits and exact phrases, no model involved."""

from __future__ import annotations

import pytest

from app.services.router.models import Intent, RouterContext
from app.services.router.patterns import match_pattern


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("1", Intent.ORDER_STATUS),
        ("2", Intent.NEW_DROPS),
        ("3", Intent.HUMAN),
        (" 1 ", Intent.ORDER_STATUS),
        ("2.", Intent.NEW_DROPS),
        ("3!", Intent.HUMAN),
        ("(1)", Intent.ORDER_STATUS),
        ("#2", Intent.NEW_DROPS),
        ("option 3", Intent.HUMAN),
        ("1️⃣", Intent.ORDER_STATUS),
    ],
)
def test_menu_digits(text: str, intent: Intent) -> None:
    result = match_pattern(text)
    assert result is not None
    assert result.intent is intent
    assert result.source == "menu"
    assert result.entities.is_empty()


@pytest.mark.parametrize("text", ["4", "12", "1 2", "10", "1 jacket", "$1", "buy 2"])
def test_other_numbers_are_not_menu_digits(text: str) -> None:
    result = match_pattern(text)
    assert result is None or result.source != "menu"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("hi", Intent.MENU),
        ("Hello!", Intent.MENU),
        ("heyyy 👋", Intent.MENU),
        ("hi there", Intent.MENU),
        ("good morning", Intent.MENU),
        ("menu", Intent.MENU),
        ("Help", Intent.MENU),
        ("start", Intent.MENU),
        ("thanks!", Intent.THANKS),
        ("thank you so much", Intent.THANKS),
        ("ty", Intent.THANKS),
        ("tysm", Intent.THANKS),
        ("ok cool thanks", Intent.THANKS),
        ("appreciate it 🙏", Intent.THANKS),
        ("Thank u!!", Intent.THANKS),
    ],
)
def test_exact_phrases(text: str, intent: Intent) -> None:
    result = match_pattern(text)
    assert result is not None
    assert (result.intent, result.source) == (intent, "pattern")


@pytest.mark.parametrize(
    "text",
    [
        "hi is the jacket still available",
        "thanks, can you hold it",
        "help me my order is damaged",
        "hey what's the price",
        "ty for nothing, cancel my order",
        "how much",
    ],
)
def test_anything_more_goes_to_the_semantic_layer(text: str) -> None:
    assert match_pattern(text) is None


def test_bare_identifiers_without_context() -> None:
    sku = match_pattern("PT-0142?")
    assert sku is not None
    assert (sku.intent, sku.entities.sku, sku.source) == (Intent.AVAILABILITY, "PT-0142", "pattern")
    order = match_pattern("ph10234")
    assert order is not None
    assert (order.intent, order.entities.order_number) == (Intent.ORDER_STATUS, "PH-10234")


@pytest.mark.parametrize(
    ("text", "last", "intent"),
    [
        ("and PT-0013?", Intent.PRICE, Intent.PRICE),
        ("what about the jeans", Intent.PRICE, Intent.PRICE),
        ("how about the black one?", Intent.AVAILABILITY, Intent.AVAILABILITY),
        ("and in M?", Intent.SIZING, Intent.SIZING),
        ("PT-0019", Intent.SIZING, Intent.SIZING),
        ("what about canada", Intent.POLICY, Intent.POLICY),
        ("and PH-10235?", Intent.ORDER_STATUS, Intent.ORDER_STATUS),
    ],
)
def test_follow_ups_inherit_the_last_intent(text: str, last: Intent, intent: Intent) -> None:
    result = match_pattern(text, RouterContext(last_intent=last))
    assert result is not None
    assert result.intent is intent
    assert result.source == "pattern"


def test_follow_up_entities_are_kept() -> None:
    result = match_pattern("and PT-0013?", RouterContext(last_intent=Intent.PRICE))
    assert result is not None
    assert result.entities.sku == "PT-0013"


@pytest.mark.parametrize(
    ("text", "last"),
    [
        ("and how much is it?", Intent.AVAILABILITY),  # a question of its own
        ("what about the jeans", Intent.THANKS),  # nothing to continue
        ("what about the jeans", None),
        ("and can you hold PT-0013 for me", Intent.PRICE),
    ],
)
def test_not_inherited(text: str, last: Intent | None) -> None:
    result = match_pattern(text, RouterContext(last_intent=last))
    assert result is None or result.intent is not last
