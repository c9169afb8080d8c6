"""Garment and brand names read as one word each, so an unseen noun does not change the
intent the router reads."""

from __future__ import annotations

import pytest

from app.services.router.lexicon import generalise
from app.services.router.local import LocalRouter, prepare
from app.services.router.models import Intent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how much is the blouse", "how much is the zgarment"),
        ("those two pairs of loafers", "those two zgarment of zgarment"),
        ("the t-shirts and the shirt", "the zgarment and the zgarment"),
        ("my north face puffer", "my zbrand zgarment"),
        ("does it fit", "does it fit"),
        ("i guess the gap is fine", "i guess the gap is fine"),
        ("shirtless", "shirtless"),
        ("where is my parcel", "where is my package"),
        ("do you offer reimbursement", "do you offer refund"),
        ("i want to purchase it", "i want to buy it"),
    ],
)
def test_names_become_placeholders(text: str, expected: str) -> None:
    assert " ".join(generalise(text).split()) == expected


def test_prepare_reads_garments_alike() -> None:
    assert prepare("How much is the BLOUSE?") == prepare("how much is the jacket?")


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("how much is the anorak", Intent.PRICE),
        ("is the tunic still available", Intent.AVAILABILITY),
        ("what size are the espadrilles", Intent.SIZING),
    ],
)
def test_a_garment_it_never_trained_on_keeps_the_intent(
    local_router: LocalRouter, text: str, intent: Intent
) -> None:
    assert local_router.route(text).intent is intent
