"""Comparing what the bot did in one turn with what the scenario expects."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

from app.scenarios.model import Expect

QUOTE_CHARS = 200


@dataclass(frozen=True)
class SentMessage:
    message_type: Literal["TEXT", "IMAGE"]
    text: str | None = None


@dataclass(frozen=True)
class Observation:
    intent: str | None
    replies: list[SentMessage] = field(default_factory=list)
    # The webhook's status for each copy posted; None for a copy that got no answer.
    statuses: list[int | None] = field(default_factory=list)
    # The conversation's mode after the turn; None when the turn names no conversation.
    mode: Literal["bot", "human"] | None = None
    # The dead letters the turn created, each as "kind: error".
    dead_letters: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text of every message sent for the turn, joined, as the checks read it."""
        return "\n".join(m.text for m in self.replies if m.text is not None)

    @property
    def images(self) -> int:
        return sum(1 for m in self.replies if m.message_type == "IMAGE")


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """One line, quoted with escapes, so a reply with newlines stays on the failure line."""
    if not text:
        return "(no text)"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one}" if count == 1 else f"{count} {many or one + 's'}"


def differences(expect: Expect, seen: Observation) -> list[str]:
    """What differs, one phrase each; empty when the turn passed."""
    found: list[str] = []
    if expect.intent is not None and seen.intent != expect.intent:
        found.append(f"expected intent {expect.intent}, got {seen.intent or 'none'}")
    count = len(seen.replies)
    if expect.no_reply is True and count:
        found.append(f"expected no reply, got {_plural(count, 'message')}: {quote(seen.text)}")
    if expect.no_reply is False and not count:
        found.append("expected a reply, got none")
    if expect.replies is not None and count != expect.replies:
        found.append(f"expected {_plural(expect.replies, 'reply', 'replies')}, got {count}")
    if expect.images is not None and seen.images != expect.images:
        found.append(f"expected {_plural(expect.images, 'image')}, got {seen.images}")
    text = seen.text
    folded = text.casefold()
    missing = [needle for needle in expect.reply_contains if needle.casefold() not in folded]
    if missing:
        found.append(f"missing {_listed(missing)} in: {quote(text)}")
    unwanted = [needle for needle in expect.reply_not_contains if needle.casefold() in folded]
    if unwanted:
        found.append(f"unexpected {_listed(unwanted)} in: {quote(text)}")
    unmatched = [pattern for pattern in expect.reply_matches if re.search(pattern, text) is None]
    if unmatched:
        patterns = ", ".join(f"/{pattern}/" for pattern in unmatched)
        found.append(f"no match for {patterns} in: {quote(text)}")
    if expect.status is not None and any(status != expect.status for status in seen.statuses):
        got = ", ".join("no answer" if status is None else str(status) for status in seen.statuses)
        found.append(f"expected status {expect.status}, got {got or 'nothing posted'}")
    if expect.mode is not None and seen.mode != expect.mode:
        got = seen.mode or "no conversation (the body names none)"
        found.append(f"expected mode {expect.mode}, got {got}")
    letters = len(seen.dead_letters)
    if expect.dead_letters is not None and letters != expect.dead_letters:
        first = f": {quote(seen.dead_letters[0])}" if seen.dead_letters else ""
        found.append(
            f"expected {_plural(expect.dead_letters, 'dead letter')}, got {letters}{first}"
        )
    return found


def _listed(needles: list[str]) -> str:
    return ", ".join(json.dumps(needle, ensure_ascii=False) for needle in needles)
