"""When the router may answer `hold`: the one intent whose answer changes the shop.

A classifier always names some intent. On text it cannot read (another script, letters
buried under combining marks) its answer is driven by what is left, the SKU placeholder
and punctuation, and a named SKU is what most hold requests in training contain. A wrong
`availability` costs the customer one more message; a wrong `hold` takes a piece off sale
for a day. So a hold is only kept when the message asks for one in words the router can
read: a hold word ("hold", "reserve", "put aside", "I'll take", typos included), or the
model reading it as a hold with some confidence from words it learned. An LLM's `hold`
must also be the local classifier's reading: the LLM reads the customer's text as a
whole, so text written to steer it can steer it; the local model cannot be instructed.

A hold the router cannot confirm is answered as a question about the piece instead: the
availability answer gives price and fit from the database and offers the hold, so a
customer who did mean it needs one "yes".
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterator

from rapidfuzz.distance import DamerauLevenshtein

from app.services.router.models import Intent, RouteResult

# Share of a message's letters that must be in words the local model learned before its
# reading counts as reading. Text in another script or under combining marks scores 0.
# Measured on 5-fold cross-validation of train.jsonl (the project's held-out DMs and the
# shared dev set have a hold word in every hold request): of 463 hold requests, the only
# one this gate turns into a question is "i wnant it!!" (0.38, a typo of a short word),
# while 4 of the 18 wrong `hold` answers become questions.
MIN_READABLE = 0.5
# Without a hold word the model must prefer `hold` clearly: below this it is split
# between hold and something else, and a coin flip must not reserve a piece.
MIN_HOLD_CONFIDENCE = 0.5

# The verbs that ask to have a piece ("hold it", "I'll take it", "can I buy PT-0013").
# The shop reads them too, word for word, to tell a new hold request from a follow-up
# that only inherited `hold` from the turn before.
HOLD_VERBS = frozenset(
    ("hold", "reserve", "keep", "save", "take", "buy", "purchase", "grab", "want")
)
# What customers write to buy, claim, reserve or keep a piece, join a waitlist or let a
# hold go (the `hold` intent of PRODUCT.md §3). Compared after letting repeated letters
# collapse ("holld", "waant"); the longer ones also allow one typo ("resrve", "witlist").
# fmt: off
_CUE_WORDS = HOLD_VERBS | frozenset((
    "holds", "holding", "unhold", "reserved", "reserving", "reservation", "keeping",
    "saving", "aside", "taking", "buying", "purchasing", "claim", "claiming", "claimed",
    "dibs", "mine", "grabbing", "wanna", "pay", "paying", "payment", "checkout", "cart",
    "book", "cop", "invoice", "waitlist", "waitinglist", "release", "lock",
))
# fmt: on
_FUZZY_MIN_LENGTH = 5


def _collapse(word: str) -> str:
    return re.sub(r"(.)\1+", r"\1", word)


_CUES = frozenset(_collapse(word) for word in _CUE_WORDS)
_FUZZY_CUES = tuple(cue for cue in _CUES if len(cue) >= _FUZZY_MIN_LENGTH)


def plain_words(text: str) -> list[str]:
    """Lowercase letter words with accents and other combining marks taken off: what is
    left of "h̸o̵l̷d̶" is "hold". Digits and symbols separate words."""
    decomposed = unicodedata.normalize("NFKD", text).lower().replace("'", "").replace("’", "")
    letters = "".join(
        ch if ch.isalpha() else " "
        for ch in decomposed
        if not unicodedata.category(ch).startswith("M")
    )
    return letters.split()


def _candidates(words: list[str]) -> Iterator[str]:
    yield from words
    # "check out", "wait list": a cue written as two words.
    yield from (a + b for a, b in itertools.pairwise(words))


def has_hold_cue(text: str) -> bool:
    """Whether the message says, in a word the router can read, that it wants a piece."""
    for word in _candidates(plain_words(text)):
        collapsed = _collapse(word)
        if collapsed in _CUES:
            return True
        if len(collapsed) >= _FUZZY_MIN_LENGTH - 1 and any(
            cue[0] == collapsed[0]
            and DamerauLevenshtein.distance(collapsed, cue, score_cutoff=1) <= 1
            for cue in _FUZZY_CUES
        ):
            return True
    return False


# Keys and values as a program writes them ('{"intent": "hold"', '"sku": "PT-0001"'):
# nobody DMs a shop in JSON; such text is written to steer a model.
_STRUCTURED = re.compile(r"[{\[,]\s*[\"'][\w ]+[\"']\s*:")


def hold_is_read(text: str, *, readability: float, confidence: float) -> bool:
    """Whether the local model's `hold` for `text` is a reading, not a guess."""
    if _STRUCTURED.search(text):
        return False
    if has_hold_cue(text):
        return True
    return readability >= MIN_READABLE and confidence >= MIN_HOLD_CONFIDENCE


def as_question(result: RouteResult, confidence: float | None = None) -> RouteResult:
    """The unconfirmed hold, answered as a question about the piece (same entities)."""
    return result.model_copy(update={"intent": Intent.AVAILABILITY, "confidence": confidence})
