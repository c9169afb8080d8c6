"""Fitting text into TikTok's 6,000-character messages.

Length is counted in UTF-16 code units, not Python code points: TikTok does not say what a
"character" is, and an emoji that is one code point here is two units in a JavaScript or
Java backend. Counting the larger way can only make a part shorter than necessary, never
too long.
"""

from __future__ import annotations

import re
import unicodedata

DEFAULT_LIMIT = 6000

# Cut after sentence-ending punctuation (and any closing quotes or brackets) that is
# followed by whitespace; the whitespace itself is dropped at the cut.
_SENTENCE_END = re.compile(r"[.!?…。！？]+[\"'”’)\]]*(?=\s)")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_WHITESPACE = re.compile(r"\s+")

# Characters that belong to the character before them: cutting in front of one would leave
# half an emoji or an accent on its own at the start of the next part.
_JOINERS = frozenset({"\u200d", "\ufe0e", "\ufe0f"})


def text_length(text: str) -> int:
    """Length as TikTok may count it: UTF-16 code units. (Counted by the codec: every
    reply is measured, and a loop over its characters cost more than the rest of the send's
    checks together.)"""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def split_text(text: str, limit: int = DEFAULT_LIMIT) -> list[str]:
    """Split `text` into parts of at most `limit` UTF-16 units each, preferring paragraph
    breaks, then sentence ends, then whitespace, and cutting inside a word only when a
    single word is longer than the limit. Whitespace at the cuts is dropped; blank text
    gives no parts."""
    if limit < 2:
        raise ValueError("limit must be at least 2 (one astral character is two units)")
    parts: list[str] = []
    remaining = text.strip()
    while remaining:
        if text_length(remaining) <= limit:
            parts.append(remaining)
            break
        cut = _cut_position(remaining, _fitting_prefix_length(remaining, limit))
        part, remaining = remaining[:cut].rstrip(), remaining[cut:].lstrip()
        if part:
            parts.append(part)
    return parts


def _fitting_prefix_length(text: str, limit: int) -> int:
    """The number of code points of the longest prefix within `limit` units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def _cut_position(text: str, fits: int) -> int:
    """Where to cut `text` so that `text[:cut]` fits, given that `text[:fits]` does and
    `text[: fits + 1]` does not."""
    window = text[: fits + 1]  # one more char: a boundary right after the fitting prefix counts
    # A boundary in the first half would leave a part much shorter than it could be; then a
    # finer kind of boundary further on is the better cut.
    minimum = max(1, fits // 2)
    for pattern in (_PARAGRAPH, _SENTENCE_END):
        best = _last_boundary(pattern, window, minimum, fits, at_end=pattern is _SENTENCE_END)
        if best is not None:
            return best
    best = _last_boundary(_WHITESPACE, window, 1, fits, at_end=False)
    if best is not None:
        return best
    return _hard_cut(text, fits)


def _last_boundary(
    pattern: re.Pattern[str], window: str, minimum: int, fits: int, *, at_end: bool
) -> int | None:
    best: int | None = None
    for match in pattern.finditer(window):
        cut = match.end() if at_end else match.start()
        if minimum <= cut <= fits:
            best = cut
    return best


def _hard_cut(text: str, fits: int) -> int:
    cut = fits
    while cut > 1 and _belongs_to_previous(text, cut):
        cut -= 1
    # A single cluster longer than the limit cannot be kept whole; cut it at the limit.
    return cut if cut > 0 and not _belongs_to_previous(text, cut) else fits


def _belongs_to_previous(text: str, index: int) -> bool:
    char, previous = text[index], text[index - 1]
    return (
        char in _JOINERS
        or previous == "\u200d"
        or unicodedata.combining(char) != 0
        or 0x1F3FB <= ord(char) <= 0x1F3FF  # skin-tone modifiers
    )
