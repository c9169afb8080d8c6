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
    # Described, pointed at and wrapped the way people talk to a sales assistant.
    ("could you put the mustard corduroy blazer in my basket", Intent.HOLD),
    ("i'll grab the two striped tees you showed at the end", Intent.HOLD),
    ("ok go ahead, ring up the navy peacoat for me", Intent.HOLD),
    ("what are you asking for the suede loafers on the shelf", Intent.PRICE),
    ("what's the price tag on that teal anorak?", Intent.PRICE),
    ("how much do the ones on the right go for", Intent.PRICE),
    ("i'm searching for a wool peacoat for my dad", Intent.AVAILABILITY),
    ("any pleated skirts in a small?", Intent.AVAILABILITY),
    ("hi! i want to see some denim overalls", Intent.AVAILABILITY),
    ("what size is the olive parka hanging up", Intent.SIZING),
    ("would the tan trench fit someone who's 5'4", Intent.SIZING),
    # A support queue's words.
    ("i'd like to call off my order", Intent.HUMAN),
    ("i was charged two times for one purchase", Intent.HUMAN),
    ("how many days does delivery usually take", Intent.POLICY),
    ("which payment methods can i use", Intent.POLICY),
    ("what is your policy on reimbursements", Intent.POLICY),
    ("when will my stuff get here", Intent.ORDER_STATUS),
    ("i can't log into my account", Intent.OTHER),
    ("how do i top up my card", Intent.OTHER),
    ("what's the exchange rate for euros", Intent.OTHER),
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
