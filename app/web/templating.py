"""Jinja2 for the staff pages, with the few formatting helpers they share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from starlette.templating import Jinja2Templates

from app.db.models import Message

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"


def countdown(seconds: int) -> str:
    """The window left, as a person reads it at a glance: "31 h 12 min", "7 min"."""
    if seconds <= 0:
        return "closed"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{max(1, minutes)} min"


def describe(message: Message) -> str:
    """A message as one line of text, for the list and for non-text messages."""
    if message.text:
        return message.text
    payload = message.payload or {}
    if message.message_type == "image":
        return "[photo]"
    if message.message_type == "share_post":
        video = (payload.get("share_post") or {}).get("video_id")
        return f"[shared video {video}]" if video else "[shared video]"
    if message.message_type == "sticker":
        return "[sticker]"
    if message.message_type == "reaction":
        reactions = payload.get("reaction")
        first = reactions[0] if isinstance(reactions, list) and reactions else {}
        emoji = first.get("emoji") if isinstance(first, dict) else None
        removed = isinstance(first, dict) and first.get("operation") == "REMOVE"
        return f"[{'took back ' if removed else ''}reaction {emoji or ''}]".replace(" ]", "]")
    return f"[{message.message_type}]"


def clock(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%d %b %H:%M UTC")


def author(message: Message) -> str:
    if message.direction == "inbound":
        return "customer"
    if message.sent_by == "staff":
        return str((message.payload or {}).get("staff_name") or "staff")
    if message.sent_by == "staff_app":
        return "staff (TikTok app)"
    return message.sent_by or "bot"


templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.filters["countdown"] = countdown
templates.env.filters["describe"] = describe
templates.env.filters["clock"] = clock
templates.env.filters["author"] = author
