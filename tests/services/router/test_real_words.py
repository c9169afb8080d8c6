"""The kinds of words real customers use that the project's grammars did not (issue 12):
unseen nouns, synonyms, hurried greetings, intent over keywords, off-topic lines. Written
for this test and kept out of the training data (checked below), so they measure how the
router generalises rather than what it memorised."""

from __future__ import annotations

import pytest

from app.services.router.local import LocalRouter, load_examples
from app.services.router.models import Intent
from tools.router_data.build_train import normalise_for_leak_check

CASES: list[tuple[str, Intent]] = [
    ("hellooooo there", Intent.MENU),
    ("good mornng", Intent.MENU),
    ("wat cn u help with", Intent.MENU),
    ("how much is the kimono", Intent.PRICE),
    ("price for the two pairs of mules?", Intent.PRICE),
    ("is the tunic still up for sale", Intent.AVAILABILITY),
    ("do you offer reimbursements on returns", Intent.POLICY),
    ("what's the dispatch time to kampala", Intent.POLICY),
    ("can u ship to lyon", Intent.POLICY),
    ("my parcel never came what is going on", Intent.ORDER_STATUS),
    ("it's been forever where is my package", Intent.ORDER_STATUS),
    ("the package came today, all perfect, thank you!!", Intent.THANKS),
    ("i need to purchase a gift", Intent.AVAILABILITY),
    ("what sizes do those come in", Intent.SIZING),
    ("will it rain this weekend", Intent.OTHER),
    ("what's a good recipe for pasta", Intent.OTHER),
    ("book me a cab to the airport", Intent.OTHER),
]


@pytest.fixture(scope="module")
def trained() -> set[str]:
    return {normalise_for_leak_check(example.text) for example in load_examples()}


@pytest.mark.parametrize(("text", "intent"), CASES)
def test_real_words_are_read_for_their_intent(
    local_router: LocalRouter, trained: set[str], text: str, intent: Intent
) -> None:
    assert normalise_for_leak_check(text) not in trained, "a training line measures nothing"
    assert local_router.route(text).intent is intent
