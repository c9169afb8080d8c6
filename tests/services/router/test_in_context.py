"""Messages that only make sense in a conversation, routed without one (the local model).

The labels (see tools/router_data/in_context.py): a bare piece asks whether it is
there; a waitlist request or letting a hold go is `hold`; how long holds last is `policy`;
"hold up" is `other`; a piece's condition is asked like its availability.
"""

from __future__ import annotations

import pytest

from app.services.router.models import Intent
from app.services.router.router import HybridRouter


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        # the misroutes these lines were written for
        ("the jacket", Intent.AVAILABILITY),
        ("the second one", Intent.AVAILABILITY),
        ("the jacket please", Intent.AVAILABILITY),
        ("the jeans", Intent.AVAILABILITY),
        ("the pink hoodie", Intent.AVAILABILITY),
        ("WAITLIST", Intent.HOLD),
        ("waitlist please", Intent.HOLD),
        ("add me to the waitlist", Intent.HOLD),
        ("put me on the waitlist for PT-0005", Intent.HOLD),
        ("hold up", Intent.OTHER),
        ("how long will you hold it", Intent.POLICY),
        ("cancel my hold", Intent.HOLD),
        ("no thanks", Intent.THANKS),
        ("is it vintage?", Intent.AVAILABILITY),
        ("whats the condition", Intent.AVAILABILITY),
        ("any stains?", Intent.AVAILABILITY),
        ("anything in medium?", Intent.NEW_DROPS),
        # paraphrases that are not in the training data
        ("the black jacket", Intent.AVAILABILITY),
        ("i'd like to join the waitlist for PT-0006", Intent.HOLD),
        ("pls cancel my hold on PT-0001", Intent.HOLD),
        ("how long do you hold stuff for", Intent.POLICY),
        ("hold up a sec", Intent.OTHER),
        ("any holes?", Intent.AVAILABILITY),
        ("what shape is it in", Intent.AVAILABILITY),
        ("how does the waitlist work?", Intent.POLICY),
    ],
)
def test_context_fragments_without_context(
    offline_router: HybridRouter, text: str, intent: Intent
) -> None:
    assert offline_router.route_offline(text).intent is intent
