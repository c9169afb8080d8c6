"""How a message without words reads in the inbox."""

from __future__ import annotations

import pytest

from app.db.models import Message
from app.web.templating import describe


@pytest.mark.parametrize(
    ("message_type", "payload", "expected"),
    [
        ("reaction", {"reaction": [{"operation": "ADD", "emoji": "👍"}]}, "[reaction 👍]"),
        (
            "reaction",
            {"reaction": [{"operation": "REMOVE", "emoji": "👍"}]},
            "[took back reaction 👍]",
        ),
        ("reaction", {"reaction": "not a list"}, "[reaction]"),
        ("reaction", {}, "[reaction]"),
        ("image", {}, "[photo]"),
        ("share_post", {"share_post": {"video_id": "7301"}}, "[shared video 7301]"),
        ("hologram", {}, "[hologram]"),
    ],
)
def test_messages_without_words(
    message_type: str, payload: dict[str, object], expected: str
) -> None:
    message = Message(message_type=message_type, text=None, payload=payload)
    assert describe(message) == expected
