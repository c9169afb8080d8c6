"""Hand-written DMs for turns that only make sense in a conversation: a bare piece named
after a list, waitlist requests, letting a hold go, questions about a piece's state, and
"hold" used as an idiom. The labels are the ones a person reading the conversation writes.

Kept apart from `handwritten.py` and generated with their own random stream (see
`build_train.slot_filled_examples`), so adding lines here leaves every other generated
line of `train.jsonl` exactly as it was.
"""

from __future__ import annotations

# A bare piece with no ask of its own ("the jacket", "the second one"): without a
# conversation it asks whether the piece is there, the first thing customers ask. With a
# conversation, the shop brain continues that conversation's question instead.
AVAILABILITY: tuple[str, ...] = (
    "{item}",
    "{item}?",
    "the jacket",
    "the jeans",
    "the pink hoodie",
    "the second one",
    "the first one",
    "the last one",
    "the third one pls",
    "that one",
    "this one",
    "the blue one",
    "the levis",
    "the carhartt",
    "the nike one",
    "the dunks",
    "the tee",
    "the sweater",
    "the 2nd one",
    "the other one",
    # The piece's state (condition, flaws, authenticity) asked before buying: like
    # availability, a question about the piece as it is now. The brain adds the
    # condition grade and the seller's note to the answer. A flaw found after delivery
    # is `human` (see handwritten.HUMAN).
    "any stains?",
    "any stains on {item}",
    "any flaws?",
    "any flaws on it",
    "any holes or rips",
    "any damage?",
    "is there any damage on {item}",
    "whats the condition",
    "what condition is it in",
    "what condition is {item} in",
    "how is the condition",
    "condition?",
    "is it in good condition",
    "is {item} in good shape",
    "how worn is it",
    "is it vintage?",
    "is {item} true vintage",
    "is it authentic",
    "any fading?",
    "does it have any pilling",
    "any marks or defects",
)

# Waitlist requests are `hold`: the customer asks to reserve the piece the moment it frees
# up (a question about how the waitlist works stays `policy`). Letting one's own hold go
# is about the hold too.
HOLD: tuple[str, ...] = (
    "waitlist",
    "waitlist please",
    "waitlist pls",
    "add me to the waitlist",
    "add me to the waitlist for {sku}",
    "put me on the waitlist",
    "put me on the waitlist for {sku}",
    "can i join the waitlist",
    "join waitlist",
    "sign me up for the waitlist",
    "i want to be on the waitlist",
    "waitlist me for {sku}",
    "cancel my hold",
    "cancel my hold on {sku}",
    "cancel the hold",
    "release my hold",
    "release the hold on {item}",
    "remove my hold",
    "i dont want it anymore, you can release it",
    "drop my hold on {sku}",
    "take {sku} off hold",
    "unhold it",
)

# How long holds last is the shop's policy; asking for a hold is `hold`.
POLICY: tuple[str, ...] = (
    "how long can you hold it",
    "how long will you hold it",
    "how long do holds last",
    "how long do you hold items",
    "how long does a hold last",
    "how long is a hold",
    "how many items can i hold",
)

# "hold" as an idiom, not a request for a hold.
OTHER: tuple[str, ...] = (
    "hold up",
    "hold on",
    "hold on a sec",
    "wait hold up",
    "hold that thought",
    "hold up what",
    "hold on lemme check",
    # Everyday questions shaped like the piece questions above ("any stains?", "how long
    # will you hold it"), so that the shape alone does not mean the shop.
    "are the banks open today",
    "are there any good movies out",
    "are there any concerts this weekend",
    "are the stores open on sunday",
    "is the pool still open",
    "is the old mall still there",
    "any news today",
    "any traffic on the highway",
    "any good restaurants near me",
    "how long will my phone battery last",
    "how long will the rain last",
    "how long will it take to cook pasta",
    "how long will milk keep in the fridge",
    "look up the best selling books this year",
    "find the most popular songs right now",
    "do people still use fax machines",
)

# Lines of `handwritten.py` these replace: the hold-policy questions were `hold` there.
RELABELLED: frozenset[str] = frozenset(POLICY)
