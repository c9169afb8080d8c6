"""Layer 1: menu digits and a few exact phrases, decided without any model.

Deliberately small and exact: anything that is not unmistakably a menu choice, a
greeting, a thank-you or a bare identifier goes to the semantic router. A pattern that
guesses would override a classifier that knows better.
"""

from __future__ import annotations

import re
import unicodedata

from app.services.router.entities import extract_entities
from app.services.router.models import Entities, Intent, RouterContext, RouteResult

MENU_DIGITS: dict[str, Intent] = {
    "1": Intent.ORDER_STATUS,
    "2": Intent.NEW_DROPS,
    "3": Intent.HUMAN,
}

# "1", " 2. ", "3!", "#1", "option 2", "1️⃣": a digit with nothing but decoration around it.
# Decoration is anything but letters, digits and money signs: "$1" is a price, not a choice.
_MENU_DIGIT = re.compile(
    r"[^\w$£€%]*(?:(?:option|opt|number|no|choice|menu)\s*)?#?\s*([123])(?:\ufe0f?\u20e3)?"
    r"[^\w$£€%]*",
    re.IGNORECASE,
)

_GREETING = re.compile(
    r"(?:(?:hi+|hey+|hello+|hell?o+|hiya|heya|yo+|sup|wass?up|whats up|hola|howdy|hai)"
    r"(?:\s+(?:there|philia|philia thrifts|guys|all|everyone|team|friend|bestie))?"
    r"|good (?:morning|afternoon|evening|day)|morning|gm|greetings"
    r"|menu|the menu|main menu|show (?:me )?(?:the )?menu|menu please|menu pls"
    r"|help|start|get started|options|show options)",
)

_THANKS = re.compile(
    r"(?:(?:ok|okay|oh|cool|great|perfect|awesome|amazing|nice|sweet|got it|alright|ah)\s+)*"
    r"(?:thanks+|thank (?:you+|u+|ya)|thx|thnx|thanx|ty+|tysm|tyvm|many thanks|cheers"
    r"|appreciate (?:it|that|you)|much appreciated)"
    r"(?:\s+(?:so much|very much|a lot|a bunch|a ton|again|loads|sm|x+))?",
)

# Follow-ups that only name the next thing ("and PT-0013?", "what about the jeans",
# "how about in M") continue the previous question.
_FOLLOW_UP_CUE = re.compile(
    r"(?:and|&|n|also|plus|ok(?:ay)?\s+and|what about|how about|and what about"
    r"|and how about|what abt|how abt|same (?:for|with|question for)|same q for)\b\s*(.*)",
)
# fmt: off
_FOLLOW_UP_FILLER = frozenset((
    "the", "this", "that", "these", "those", "one", "ones", "a", "an", "in", "size", "item",
    "items", "pls", "please", "then", "too", "also", "for", "with", "on", "other", "another",
    "same", "question", "q", "it", "them", "my", "your", "ur", "of",
))
_FOLLOW_UP_MAX_CONTENT_WORDS = 3
# A follow-up that asks something of its own ("and how much is it?") is routed afresh.
_FOLLOW_UP_OWN_QUESTION = frozenset((
    "how", "what", "whats", "when", "where", "why", "who", "which", "is", "are", "was", "were",
    "do", "does", "did", "can", "could", "would", "will", "should", "much", "many", "i", "im",
    "you", "u", "me", "we", "price", "cost", "hold", "buy", "ship", "fit", "available", "sold",
))
# fmt: on
_BARE_TOKEN = re.compile(r"(?:pt|ph)?\d+|pt|ph|[smlx]+|\d?xl|medium|small|large")

INHERITABLE: frozenset[Intent] = frozenset(
    {
        Intent.ORDER_STATUS,
        Intent.NEW_DROPS,
        Intent.AVAILABILITY,
        Intent.SIZING,
        Intent.HOLD,
        Intent.PRICE,
        Intent.POLICY,
    }
)


def simplify(text: str) -> str:
    """Lowercase words only: emoji, punctuation and stretched letters ("hiii") removed."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = re.sub(r"[^\w\s']|_", " ", text)
    text = re.sub(r"(\w)\1{2,}", r"\1", text)
    return " ".join(text.replace("'", "").split())


def match_pattern(text: str, context: RouterContext | None = None) -> RouteResult | None:
    """The answer of the exact layer, or None to hand the message to the semantic router."""
    digit = _MENU_DIGIT.fullmatch(text.strip())
    if digit is not None:
        return RouteResult(intent=MENU_DIGITS[digit.group(1)], source="menu", confidence=1.0)
    simple = simplify(text)
    if not simple:
        return None
    if _GREETING.fullmatch(simple):
        return RouteResult(intent=Intent.MENU, source="pattern", confidence=1.0)
    if _THANKS.fullmatch(simple):
        return RouteResult(intent=Intent.THANKS, source="pattern", confidence=1.0)
    return _bare_reference(text, simple, context)


def _bare_reference(text: str, simple: str, context: RouterContext | None) -> RouteResult | None:
    """A message that is only an identifier / size, or a follow-up naming the next thing."""
    entities = extract_entities(text)
    follow = _FOLLOW_UP_CUE.fullmatch(simple)
    rest = follow.group(1) if follow else simple
    if not _is_bare(rest, entities):
        return None
    last = context.last_intent if context is not None else None
    if last in INHERITABLE and (follow is not None or not entities.is_empty()):
        return RouteResult(intent=last, entities=entities, source="pattern", confidence=None)
    # Without a conversation to continue, a bare order number asks where the order is,
    # and a bare piece asks whether it is still there (the first thing customers ask).
    if entities.order_number is not None and entities.sku is None:
        return RouteResult(intent=Intent.ORDER_STATUS, entities=entities, source="pattern")
    if entities.sku is not None and entities.order_number is None:
        return RouteResult(intent=Intent.AVAILABILITY, entities=entities, source="pattern")
    return None


def _is_bare(rest: str, entities: Entities) -> bool:
    words = [w for w in rest.split() if w not in _FOLLOW_UP_FILLER]
    if any(w in _FOLLOW_UP_OWN_QUESTION for w in words):
        return False
    content = [w for w in words if not _BARE_TOKEN.fullmatch(w)]
    if entities.is_empty() and not content:
        return False
    return len(content) <= (0 if not entities.is_empty() else _FOLLOW_UP_MAX_CONTENT_WORDS)
