"""TikTok's wire vocabulary, shared by every part of the sandbox: the API endpoints it
tells apart, its error codes and their messages, the shape of its ids, and the JSON
envelope every API answer comes in."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from typing import Any, Literal

import orjson
from pydantic import ValidationError

Endpoint = Literal[
    "send",
    "media_upload",
    "capabilities",
    "refresh_token",
    "oauth_token",
    "webhook_update",
    "webhook_list",
]
# Calls made with the app's secret rather than an access token: not under the send rate.
APP_LEVEL_ENDPOINTS: frozenset[str] = frozenset(
    {"refresh_token", "oauth_token", "webhook_update", "webhook_list"}
)
# The scopes a business messaging app asks for (tiktok-api.md, "Connecting an account").
MESSAGING_SCOPES = (
    "user.info.basic",
    "message.list.read",
    "message.list.send",
    "message.list.manage",
)

CODE_OK = 0
CODE_PERMISSION = 40001
CODE_BAD_PARAMETERS = 40002
CODE_NOT_FOUND = 40007
CODE_TOO_FAST = 40064
CODE_RATE_LIMITED = 40100
CODE_INVALID_TOKEN = 40105
CODE_UNSUPPORTED_FILE = 40908
CODE_SYSTEM_ERROR = 51065  # seen by production integrations: "retry later"

MESSAGES = {
    CODE_OK: "OK",
    CODE_PERMISSION: "No permission to operate this business account",
    CODE_BAD_PARAMETERS: "Invalid parameters",
    CODE_NOT_FOUND: "Object not found",
    CODE_TOO_FAST: "You are sending messages too fast. Please try again later.",
    CODE_RATE_LIMITED: "Request too frequent; rate limit exceeded",
    CODE_INVALID_TOKEN: "Access token is missing, invalid or expired",
    CODE_UNSUPPORTED_FILE: "Unsupported file format",
    CODE_SYSTEM_ERROR: "System error, please retry later",
}


def tiktok_id(seed: bytes | None = None) -> str:
    # 19 bytes give 28 base64 characters ending in "==", with "+" and "/" now and then,
    # like TikTok's ids: the bot must keep them byte-exact.
    raw = hashlib.sha256(seed).digest()[:19] if seed is not None else os.urandom(19)
    return base64.b64encode(raw).decode("ascii")


def conversation_id_for(user_id: str, business_id: str) -> str:
    """The conversation id the sandbox gives a customer: stable, so a customer who writes
    again lands in the same conversation."""
    return tiktok_id(f"conversation|{business_id}|{user_id}".encode())


def request_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(8).upper()


def envelope(code: int, message: str | None = None, data: dict[str, Any] | None = None) -> bytes:
    """The body of every API answer, success or error: TikTok answers errors with HTTP 200
    and a non-zero `code`."""
    return orjson.dumps(
        {
            "code": code,
            "message": message or MESSAGES.get(code, "Error"),
            "request_id": request_id(),
            "data": data if data is not None else {},
        }
    )


def validation_message(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"Invalid parameters: {location}: {first['msg']}"
