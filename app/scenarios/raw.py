"""What the runner needs to know about a webhook body it posts: which conversation it
concerns, and the event id the worker files it under (to see when it has finished with it).

Read loosely: a raw turn may post anything, malformed bodies included, and what cannot be
read is simply unknown."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.services.tiktok.webhook import (
    InvalidEnvelope,
    MessageContent,
    event_id_for,
    parse_content,
    parse_envelope,
)


@dataclass(frozen=True)
class WebhookFacts:
    event_id: str  # as the worker derives it: content.message_id, else a SHA-256 of the body
    event: str | None = None
    conversation_id: str | None = None  # content.conversation_id: the turn's conversation
    sender: str | None = None  # content.from_user.id
    message_type: str | None = None  # content.type
    json_object: bool = False  # the body is a JSON object at all

    def describe(self) -> str:
        if not self.json_object:
            return "posts a raw webhook that is not a JSON object"
        if self.event is None:
            return "posts a raw webhook without an event"
        kind = f" ({self.message_type})" if self.message_type else ""
        return f"posts a raw {self.event} webhook{kind}"


def _loads(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _string(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) else None


def read_webhook(body: bytes) -> WebhookFacts:
    envelope = _loads(body)
    if not isinstance(envelope, dict):
        return WebhookFacts(event_id=event_id_for(body, None))
    content: Any = envelope.get("content")
    if isinstance(content, str):
        content = _loads(content)
    if not isinstance(content, dict):
        content = {}
    sender = content.get("from_user")
    return WebhookFacts(
        event_id=_event_id(body),
        event=_string(envelope, "event"),
        conversation_id=_string(content, "conversation_id"),
        sender=_string(sender, "id") if isinstance(sender, dict) else None,
        message_type=_string(content, "type"),
        json_object=True,
    )


def _event_id(body: bytes) -> str:
    # The worker's own parse, so the id stays the one it uses when its rules change.
    content: MessageContent | None
    try:
        content = parse_content(parse_envelope(body))
    except InvalidEnvelope:
        content = None
    return event_id_for(body, content)
