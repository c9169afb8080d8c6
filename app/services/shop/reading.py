"""What a customer turn asks the shop to do: the router's intent, re-read in the light of
the conversation.

The router reads one message on its own. A person reading the conversation labels some
messages differently: "yes" to "want me to hold it?" or to "want to join the waitlist?"
is a hold; "cancel my hold" is a hold; "the second one" after a list continues that
list's question; "how long do you hold pieces?" is policy; "hold up" is other. Reading
changes nothing; the answers act on what it returns.

The hold verbs come from the router's hold gate (app/services/router/hold_gate.py), the
one list of words that ask for a piece.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from app.services.router import Intent, RouteResult
from app.services.router.hold_gate import HOLD_VERBS
from app.services.shop.context import Offer, ShopContext
from app.services.shop.finding import PieceFinder
from app.services.shop.words import (
    about_stock,
    asks_waitlist,
    content_words,
    has_action_word,
    is_no,
    is_yes,
    ordinal_choice,
    releases_hold,
    says_stop,
    simplify,
    stated_own_size,
    wants_alerts,
    wants_photo,
)

# Intents whose answer is about one piece.
ITEM_INTENTS = frozenset({Intent.AVAILABILITY, Intent.SIZING, Intent.HOLD, Intent.PRICE})
# A "yes" never overrides these: the router recognised something else entirely.
_FIRM_INTENTS = frozenset({Intent.HUMAN, Intent.ORDER_STATUS, Intent.NEW_DROPS})

# "how does the waitlist work?" is a question about the waitlist, not a request to join.
_QUESTION_START = re.compile(r"(?:how|what|whats|why|is there|do you have|does)\b")
_HOLD_IDIOM = re.compile(r"hold (?:on|up|that thought)\b")
_HOLD_QUESTION = re.compile(r"(?:how long|how many|how does|how do (?:holds|you hold)|what is)\b")
# "how long can you hold it for me" asks for the hold itself.
_FIRST_PERSON = re.compile(r"\b(?:i|me|my)\b")
# A message that asks something itself, not a bare "the pink hoodie" continuing a question.
_OWN_QUESTION = re.compile(
    r"(?:is|are|was|does|do|did|has|have|how|what|whats|which|can|could|would|will|any)\b"
)
# The router leaves "get" out of its hold cues ("can I get a pic" is no hold), but in a
# follow-up to a hold, "and get the jeans" asks for them.
_FOLLOW_UP_HOLD_VERBS = HOLD_VERBS | {"get"}


class Ask(StrEnum):
    ACCEPT_OFFER = "accept_offer"  # a bare "yes" to the question the last answer asked
    DECLINE_OFFER = "decline_offer"  # a bare "no" to it
    RELEASE_HOLD = "release_hold"  # the customer lets one of their holds go
    JOIN_WAITLIST = "join_waitlist"
    ALERTS_ON = "alerts_on"  # "let me know when you get jackets in M"
    ALERTS_OFF = "alerts_off"  # "STOP"
    SEE_PHOTO = "see_photo"
    ANSWER_INTENT = "answer_intent"  # everything else: the answer to `Reading.intent`


@dataclass(frozen=True)
class Reading:
    ask: Ask
    # The intent recorded for the turn: the one the shop acts on, as a person reading the
    # conversation would label it (the turn keeps the router's `source` next to it).
    intent: Intent
    offer: Offer | None = None  # for ACCEPT_OFFER: the question "yes" answers
    own_size: str | None = None  # the size the customer says they wear, if they do


# An upset customer: strong words, angry emoji, shouting or a pile of ! and ?.
_UPSET_WORDS = re.compile(
    r"\b(?:ridiculous|unacceptable|outrageous|angry|furious|annoyed|frustrated|fed up|pissed"
    r"|wtf|wth|scam|scammed|disappointed|disappointing|terrible|horrible|awful|worst"
    r"|joke|useless|still nothing|still not|still no|what the (?:hell|heck|fuck)"
    r"|where the (?:hell|heck|fuck)|come on|seriously)\b",
    re.IGNORECASE,
)
_UPSET_EMOJI = re.compile("[\U0001f620\U0001f621\U0001f624\U0001f92c\U0001f62b\U0001f629]")
_SHOUTED = re.compile(r"\b[A-Z]{3,}\b")
# Capitals that are names, not shouting: carriers, sizes, places.
_NOT_SHOUTING = frozenset(
    ("UPS", "DHL", "USPS", "FEDEX", "DPD", "GLS", "TNT", "EMS", "XXL", "USA", "NYC", "OMG")
)
_PUNCTUATION_PILE = re.compile(r"[!?]{3,}")


def sounds_upset(text: str) -> bool:
    """Whether the customer sounds angry or fed up: an order question asked this way is
    answered, and a person is offered beside the answer."""
    if _UPSET_WORDS.search(text) or _UPSET_EMOJI.search(text):
        return True
    shouted = [word for word in _SHOUTED.findall(text) if word not in _NOT_SHOUTING]
    return len(shouted) >= 2 or _PUNCTUATION_PILE.search(text) is not None


def last_intent(context: ShopContext) -> Intent | None:
    """The intent the last turn acted on, which a bare follow-up continues."""
    try:
        return Intent(context.last_intent) if context.last_intent else None
    except ValueError:
        return None


async def read_text(
    text: str,
    route: RouteResult,
    offer: Offer | None,
    context: ShopContext,
    finder: PieceFinder,
) -> Reading:
    """What the customer's text asks, given the router's reading and the question the
    previous answer asked (`offer`)."""
    ask, intent = await _ask_and_intent(text, route, offer, context, finder)
    return Reading(
        ask,
        intent,
        offer=offer if ask is Ask.ACCEPT_OFFER else None,
        own_size=stated_own_size(text),
    )


async def _ask_and_intent(
    text: str,
    route: RouteResult,
    offer: Offer | None,
    context: ShopContext,
    finder: PieceFinder,
) -> tuple[Ask, Intent]:
    routed = route.intent
    if says_stop(text):
        # Before anything else: a STOP is obeyed whatever the conversation was about.
        return Ask.ALERTS_OFF, Intent.OTHER
    if offer is not None and offer.action != "choose" and routed not in _FIRM_INTENTS:
        if is_yes(text):
            return Ask.ACCEPT_OFFER, Intent.HOLD if offer.sku is not None else routed
        if is_no(text) and routed in (Intent.OTHER, Intent.THANKS, Intent.MENU):
            return Ask.DECLINE_OFFER, routed
    if _wants_release(text, routed):
        return Ask.RELEASE_HOLD, Intent.HOLD
    if _wants_waitlist(text, routed):
        # Joining the waitlist is labelled `hold`: the customer asks to reserve the piece
        # the moment it frees up (the router is trained the same way).
        return Ask.JOIN_WAITLIST, Intent.HOLD
    if _wants_alerts(text, route):
        return Ask.ALERTS_ON, Intent.NEW_DROPS
    if wants_photo(text) and routed in (Intent.OTHER, Intent.AVAILABILITY, Intent.SIZING):
        return Ask.SEE_PHOTO, routed
    continued = await _continued_intent(text, route, offer, context, finder)
    return Ask.ANSWER_INTENT, _reread_hold(text, route, continued)


def _reread_hold(text: str, route: RouteResult, intent: Intent) -> Intent:
    """A hold changes the shop, so it is only placed on a request for one: "hold up" is
    not one, "how long do you hold pieces?" asks the policy, and a bare "and PT-0013?"
    after a hold (inherited by the router) asks about the piece."""
    if intent is not Intent.HOLD:
        return intent
    plain = simplify(text)
    if _HOLD_IDIOM.match(plain):
        return Intent.OTHER
    if _HOLD_QUESTION.match(plain) and not _FIRST_PERSON.search(plain):
        return Intent.POLICY
    if route.source == "pattern" and _FOLLOW_UP_HOLD_VERBS.isdisjoint(plain.split()):
        return Intent.AVAILABILITY
    return intent


def _wants_release(text: str, intent: Intent) -> bool:
    if not releases_hold(text):
        return False
    # "cancel my order" stays with a person; "cancel my hold" is the customer's own.
    names_hold = "hold" in simplify(text).split()
    return intent in (Intent.OTHER, Intent.HOLD) or (intent is Intent.HUMAN and names_hold)


def _wants_alerts(text: str, route: RouteResult) -> bool:
    if not wants_alerts(text) or route.intent is Intent.HUMAN:
        return False
    # The router reads "let me know when you get…" as a delivery question now and then:
    # the words about stock, and no order named, say otherwise.
    if route.intent is Intent.ORDER_STATUS:
        return route.entities.order_number is None and about_stock(text)
    return True


def _wants_waitlist(text: str, intent: Intent) -> bool:
    if intent not in (Intent.POLICY, Intent.OTHER, Intent.HOLD, Intent.AVAILABILITY):
        return False
    return asks_waitlist(text) and _QUESTION_START.match(simplify(text)) is None


async def _continued_intent(
    text: str,
    route: RouteResult,
    offer: Offer | None,
    context: ShopContext,
    finder: PieceFinder,
) -> Intent:
    """A bare answer naming a piece ("the jacket", "the second one") continues the
    question it answers; a message with its own ask ("hold the jacket") keeps the
    router's intent. The router sees such fragments without the list they answer."""
    choosing = offer is not None and offer.action == "choose" and offer.intent is not None
    previous = offer.intent if choosing and offer is not None else context.last_intent
    if previous is None or route.source == "menu" or has_action_word(text):
        return route.intent
    try:
        continued = Intent(previous)
    except ValueError:
        return route.intent
    if continued not in ITEM_INTENTS:
        return route.intent
    if choosing and ordinal_choice(text) is not None and route.intent is not Intent.HUMAN:
        return continued
    words = content_words(text)
    if route.entities.sku is not None or not words or len(words) > 3:
        return route.intent
    if await finder.unmatched_words(text):
        return route.intent
    # Only pieces named: continue, even over a `human` guess ("the jacket please"),
    # `other` or another piece question ("the pink hoodie" after a sizing answer is
    # still about sizing), since nothing in the message asks for anything else. Orders
    # and drops are their own questions ("any new jackets?").
    if choosing or route.intent in (Intent.OTHER, Intent.HUMAN, Intent.THANKS):
        return continued
    if route.intent in (Intent.ORDER_STATUS, Intent.NEW_DROPS):
        return route.intent
    # A question of its own ("is it vintage?") keeps the router's reading.
    return route.intent if _OWN_QUESTION.match(simplify(text)) else continued
