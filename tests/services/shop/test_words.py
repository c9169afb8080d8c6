"""Reading the customer's words: which pieces, yes/no, waitlist, haggling (pure)."""

from __future__ import annotations

import pytest

from app.db.repositories.items import SearchRow
from app.services.shop.words import (
    IndexBuilder,
    ItemMatcher,
    asks_waitlist,
    browsed_category,
    haggles,
    is_no,
    is_yes,
    ordinal_choice,
    refers_back,
)

ROWS = [
    SearchRow("PT-0001", "Vintage Carhartt Detroit Jacket", "Carhartt", "brown", "outerwear"),
    SearchRow("PT-0002", "Levi's 501 Straight Jeans", "Levi's", "light wash", "bottoms"),
    SearchRow(
        "PT-0007", "The North Face Nuptse 700 Puffer", "The North Face", "black", "outerwear"
    ),
    SearchRow("PT-0011", "Wrangler Cowboy Cut Jeans", "Wrangler", "dark wash", "bottoms"),
    SearchRow("PT-0018", "Carhartt Double Knee Work Pants", "Carhartt", "tan", "bottoms"),
    SearchRow("PT-0012", "Vintage Nike Windbreaker", "Nike", "green/purple", "outerwear"),
]


@pytest.fixture
def matcher() -> ItemMatcher:
    return ItemMatcher(ROWS)


def test_title_word_beats_category_word(matcher: ItemMatcher) -> None:
    assert matcher.match("is the jacket still available?").skus == ["PT-0001"]


def test_typos_are_tolerated(matcher: ItemMatcher) -> None:
    assert matcher.match("the carhart jaket").skus == ["PT-0001"]
    assert matcher.match("north face nupste").skus == ["PT-0007"]
    assert matcher.match("levis").skus == ["PT-0002"]


def test_several_matches_are_all_returned(matcher: ItemMatcher) -> None:
    assert matcher.match("do you have any carhartt").skus == ["PT-0001", "PT-0018"]
    assert matcher.match("the jeans").skus == ["PT-0002", "PT-0011"]


def test_the_conversation_pieces_win(matcher: ItemMatcher) -> None:
    # After a video with the Carhartt jacket and the Levi's: "the jeans" are those Levi's.
    assert matcher.match("the jeans", ["PT-0001", "PT-0002"]).skus == ["PT-0002"]
    # ...but a piece named outright is not bent towards the conversation.
    assert matcher.match("the north face puffer", ["PT-0001"]).skus == ["PT-0007"]


def test_words_naming_nothing_are_reported(matcher: ItemMatcher) -> None:
    match = matcher.match("do you have any prada?")
    assert match.skus == [] and match.unmatched == ["prada"]
    # Identifiers, prices and sizes are not words of a piece.
    assert matcher.match("is PT-0001 $120 in size 32?").unmatched == []


@pytest.mark.parametrize("batch", [1, 2, 4, 100])
def test_an_index_built_batch_by_batch_is_the_index_of_all_the_rows(batch: int) -> None:
    in_sku_order = sorted(ROWS, key=lambda row: row.sku)
    building = IndexBuilder()
    for start in range(0, len(in_sku_order), batch):
        building.add(in_sku_order[start : start + batch])
    built, whole = building.matcher(), ItemMatcher(ROWS)
    assert len(built) == len(whole) == len(ROWS)
    for words in ("carhart jaket", "the jeans", "do you have any carhartt", "prada"):
        assert built.match(words) == whole.match(words)


def test_a_skus_first_row_names_it() -> None:
    again = SearchRow("PT-0001", "Silk Scarf", None, "red", "accessories")
    matcher = ItemMatcher([*ROWS, again])
    assert len(matcher) == len(ROWS)
    assert matcher.match("silk scarf").skus == []
    assert matcher.match("carhartt detroit").skus == ["PT-0001"]


def test_a_big_catalogue_ranks_as_a_small_one() -> None:
    """Thousands of pieces (most of them sold, all still answerable): the best score first,
    ties in SKU order, rarity weighing the words, the conversation's pieces first."""
    brands = ["Nike", "Adidas", "Champion", "Wrangler", "Dickies"]
    filler = [
        SearchRow(f"PT-{n:04d}", f"Vintage {brands[n % 5]} Hoodie", brands[n % 5], "grey", "tops")
        for n in range(2000, 7000)
    ]
    big = ItemMatcher([*filler, *reversed(ROWS)])
    assert big.match("is the carhartt jacket still available?").skus[0] == "PT-0001"
    assert big.match("the carhartt").skus == ["PT-0001", "PT-0018"]
    nike = big.match("nike hoodie").skus
    assert len(nike) == 1000 and nike[:2] == ["PT-2000", "PT-2005"] and nike == sorted(nike)
    assert big.match("nike hoodie", limit=2).skus == ["PT-2000", "PT-2005"]  # the first two
    assert big.match("nike hoodie", ["PT-2010", "PT-0012"]).skus == ["PT-2010"]
    assert big.match("the windbreaker").skus == ["PT-0012"]
    assert big.match("do you have any prada?").unmatched == ["prada"]


def test_yes_no() -> None:
    for text in ("yes", "Yes please!", "yess", "sure", "ok", "yeah go ahead", "yes pls 🙏"):
        assert is_yes(text), text
    for text in ("yes but is it warm?", "no", "thanks", "what?"):
        assert not is_yes(text), text
    assert is_no("no thanks") and is_no("nah") and not is_no("not sure about the size")


def test_waitlist_and_haggling_cues() -> None:
    assert asks_waitlist("WAITLIST") and asks_waitlist("add me to the wait list")
    assert asks_waitlist("let me know if it comes back")
    assert not asks_waitlist("is it available?")
    for text in ("would you take $30?", "any discount?", "bundle deal?", "can you do 20% off"):
        assert haggles(text), text
    assert not haggles("how much is it?")


def test_references_ordinals_and_browsing() -> None:
    assert refers_back("is it still available?") and not refers_back("the jacket")
    assert ordinal_choice("the second one") == 1 and ordinal_choice("last one pls") == -1
    assert ordinal_choice("the second jacket is nice") is None
    assert browsed_category("any jackets?") == "outerwear"
    assert browsed_category("do you have shoes in size 10") == "shoes"
    assert browsed_category("is the jacket still available") is None
    assert browsed_category("do you have any carhartt") is None
