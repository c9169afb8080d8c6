from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.services.tiktok.text import split_text, text_length


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_short_text_is_one_part() -> None:
    assert split_text("  Still available!  ") == ["Still available!"]


def test_blank_text_has_no_parts() -> None:
    assert split_text("") == []
    assert split_text(" \n\t ") == []


def test_exactly_the_limit_is_not_split() -> None:
    assert split_text("a" * 6000) == ["a" * 6000]


def test_splits_at_sentence_ends() -> None:
    text = "First sentence here. Second one is here! Third? Fourth."
    assert split_text(text, limit=25) == [
        "First sentence here.",
        "Second one is here!",
        "Third? Fourth.",
    ]


def test_prefers_a_paragraph_break_over_a_later_sentence_end() -> None:
    text = "Tops and tees. Jeans.\n\nShoes. Bags."
    assert split_text(text, limit=30) == ["Tops and tees. Jeans.", "Shoes. Bags."]


def test_closing_quotes_stay_with_their_sentence() -> None:
    text = 'She said "it fits like an M." Then she bought it.'
    assert split_text(text, limit=35) == ['She said "it fits like an M."', "Then she bought it."]


def test_falls_back_to_whitespace_within_a_long_sentence() -> None:
    text = "one two three four five six seven eight nine ten"
    parts = split_text(text, limit=15)
    assert parts == ["one two three", "four five six", "seven eight", "nine ten"]


def test_early_sentence_end_does_not_make_a_tiny_part() -> None:
    # The only sentence end is at 3 chars; cutting there would waste a whole message.
    text = "Hi. " + "word " * 10
    parts = split_text(text, limit=30)
    assert len(parts[0]) > 20


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    assert split_text("x" * 25, limit=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_length_counts_astral_characters_twice() -> None:
    assert text_length("ab") == 2
    assert text_length("😀") == 2
    assert split_text("😀" * 5, limit=4) == ["😀😀", "😀😀", "😀"]


@given(st.text(alphabet=st.characters(exclude_categories=[])))
@example("caf\u00e9 \ud83d alone, \U0001f600 paired")
def test_length_is_utf16_units_whatever_the_text(text: str) -> None:
    # By definition: one unit per code point, two for one beyond the BMP (a lone
    # surrogate, which a webhook body can carry, is one).
    assert text_length(text) == sum(2 if ord(char) > 0xFFFF else 1 for char in text)


def test_hard_cut_keeps_emoji_sequences_together() -> None:
    family = "👩\u200d👩\u200d👧"  # one visible emoji, five code points, eight units
    parts = split_text("ab" + family, limit=8)
    assert parts == ["ab", family]


def test_hard_cut_keeps_combining_accents_on_their_letter() -> None:
    parts = split_text("abcde\u0301fgh", limit=5)
    assert parts == ["abcd", "e\u0301fgh"]


def test_limit_below_two_is_refused() -> None:
    with pytest.raises(ValueError):
        split_text("abc", limit=1)


_TEXT = st.text(
    alphabet=st.sampled_from([*"abcXYZ .,!?…\n\t\"')", "😀", "\u200d", "\u0301", "é", "\u00a0"]),
    max_size=400,
)


@settings(max_examples=400)
@given(text=_TEXT, limit=st.integers(min_value=2, max_value=80))
@example(text="a. " * 100, limit=2)
@example(text="😀" * 50, limit=3)
def test_split_properties(text: str, limit: int) -> None:
    parts = split_text(text, limit)

    for part in parts:
        assert 0 < text_length(part) <= limit
        assert part == part.strip()
    # Nothing lost, nothing reordered: only whitespace at the cuts goes.
    assert _squash("".join(parts)) == _squash(text)
    if text.strip() and text_length(text.strip()) <= limit:
        assert parts == [text.strip()]
