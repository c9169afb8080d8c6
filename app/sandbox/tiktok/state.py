"""What TikTok's side remembers, in memory as TikTok would keep it: one process, one
sandbox. The records of what it accepted and saw (messages sent, API calls, uploads,
webhook deliveries), the tokens it honours, the conversations customers opened (for the
48 h window and the reply count), capabilities, the faults in force and the settings the
control API may change. `reset()` brings it all back to how the SandboxConfig set it up.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from fastapi import Request
from pydantic import BaseModel

from app.sandbox.tiktok.config import ConfigView, SandboxConfig
from app.sandbox.tiktok.faults import FaultInjector
from app.sandbox.tiktok.protocol import APP_LEVEL_ENDPOINTS, Endpoint, tiktok_id

# TikTok lets a business answer for 48 h after the customer's last message.
WINDOW_SECONDS = 48 * 3600


class RecordedMessage(BaseModel):
    seq: int
    message_id: str
    conversation_id: str
    message_type: Literal["TEXT", "IMAGE"]
    text: str | None = None
    media_id: str | None = None
    received_at: float  # unix seconds
    source: Literal["api", "app"] = "api"  # "app": staff typing in the TikTok app
    # Whether the 48 h window was open, counted from the customer's last message as the
    # sandbox played it; None when the sandbox never saw that customer write.
    within_window: bool | None = None
    # This business message's number since the customer's last message (quota is 10).
    reply_number: int


class RecordedCall(BaseModel):
    seq: int
    received_at: float  # unix seconds, taken when the handler starts
    method: str
    path: str
    endpoint: Endpoint
    http_status: int = 200
    code: int | None = None
    injected: str | None = None


class WebhookDeliveryRecord(BaseModel):
    """One webhook event as TikTok saw it: every attempt until the bot answered 2xx."""

    event: str
    message_id: str | None
    statuses: list[int | None]
    acknowledged: bool


class TokensView(BaseModel):
    access_token: str
    access_expires_at: float
    refresh_token: str
    refresh_expires_at: float
    refresh_count: int


@dataclass
class Upload:
    media_id: str
    filename: str
    content_type: str
    size: int
    uploaded_at: float
    # Kept so the customer simulator can show the photo the bot sent (GET /_sandbox/uploads).
    content: bytes = field(default=b"", repr=False)


@dataclass
class AuthCode:
    """An authorisation the shop owner granted on the portal page, not yet exchanged."""

    redirect_uri: str
    scopes: tuple[str, ...]
    issued_at: float


# TikTok's authorisation codes are short-lived and single-use.
AUTH_CODE_TTL_SECONDS = 600


@dataclass
class Conversation:
    user_id: str
    username: str
    last_customer_at: float | None = None
    replies: int = 0
    seen_message_ids: set[str] = field(default_factory=set)


@dataclass
class SandboxState:
    config: SandboxConfig
    access_token: str = ""
    access_expires_at: float = 0.0
    refresh_token: str = ""
    refresh_expires_at: float = 0.0
    refresh_count: int = 0
    retired_access_tokens: set[str] = field(default_factory=set)
    messages: list[RecordedMessage] = field(default_factory=list)
    # Messages sent per conversation: the tally and a reply's number without a scan of
    # every message recorded (a benchmark records thousands).
    sent_per_conversation: Counter[str] = field(default_factory=Counter)
    # Pollers of the tally waiting for a number of conversations (`until_conversations`).
    _tally_waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)
    media: dict[str, Upload] = field(default_factory=dict)
    faults: FaultInjector = field(default_factory=FaultInjector)
    image_send: bool = True
    image_send_overrides: dict[str, bool] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    webhook_log: list[WebhookDeliveryRecord] = field(default_factory=list)
    auth_codes: dict[str, AuthCode] = field(default_factory=dict)
    settings: ConfigView = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        now = time.time()
        self.access_token = self.config.access_token
        self.access_expires_at = now + self.config.access_token_ttl_seconds
        self.refresh_token = self.config.refresh_token
        self.refresh_expires_at = now + self.config.refresh_token_ttl_seconds
        self.refresh_count = 0
        self.retired_access_tokens.clear()
        self.messages.clear()
        self.sent_per_conversation.clear()
        self.calls.clear()
        self.media.clear()
        self.faults.reset()
        self.image_send = True
        self.image_send_overrides.clear()
        self.conversations.clear()
        self.webhook_log.clear()
        self.auth_codes.clear()
        self.settings = ConfigView(
            webhook_url=self.config.webhook_url,
            echo_sends=self.config.echo_sends,
            rate_limit_per_second=self.config.rate_limit_per_second,
            webhook_redelivery_seconds=self.config.webhook_redelivery_seconds,
            welcome_message=self.config.welcome_message,
        )

    # calls

    def record_call(self, request: Request, endpoint: Endpoint) -> RecordedCall:
        call = RecordedCall(
            seq=len(self.calls) + 1,
            received_at=time.time(),
            method=request.method,
            path=request.url.path,
            endpoint=endpoint,
        )
        self.calls.append(call)
        return call

    def over_rate_limit(self, call: RecordedCall) -> bool:
        limit = self.settings.rate_limit_per_second
        if limit is None:
            return False
        recent = 0
        for other in reversed(self.calls):  # newest first: stop at the first older than 1 s
            if call.received_at - other.received_at >= 1.0:
                break
            recent += other.endpoint not in APP_LEVEL_ENDPOINTS
        return recent > limit

    # tokens

    def token_problem(self, token: str | None, authorization: str | None) -> str | None:
        if not token:
            if authorization:
                return "Access token missing: send it in the Access-Token header, not Authorization"
            return "Access token missing"
        if not secrets.compare_digest(token, self.access_token):
            if token in self.retired_access_tokens:
                return "Access token has been refreshed and is no longer valid"
            return "Access token is invalid"
        if time.time() >= self.access_expires_at:
            return "Access token has expired"
        return None

    def rotate_tokens(self) -> None:
        now = time.time()
        self.retired_access_tokens.add(self.access_token)
        self.access_token = "act." + secrets.token_urlsafe(24)
        self.access_expires_at = now + self.config.access_token_ttl_seconds
        self.refresh_token = "rft." + secrets.token_urlsafe(24)
        self.refresh_expires_at = now + self.config.refresh_token_ttl_seconds
        self.refresh_count += 1

    def grant(self, redirect_uri: str, scopes: tuple[str, ...]) -> str:
        code = "ac." + secrets.token_urlsafe(24)
        self.auth_codes[code] = AuthCode(redirect_uri, scopes, time.time())
        return code

    def redeem(self, code: str, redirect_uri: str) -> AuthCode | None:
        """The grant behind a code, used up; None for an unknown, used or expired code, or
        one issued for another redirect URI (which OAuth must refuse)."""
        granted = self.auth_codes.pop(code, None)
        if granted is None or time.time() - granted.issued_at > AUTH_CODE_TTL_SECONDS:
            return None
        if granted.redirect_uri != redirect_uri:
            return None
        return granted

    def tokens_view(self) -> TokensView:
        return TokensView(
            access_token=self.access_token,
            access_expires_at=self.access_expires_at,
            refresh_token=self.refresh_token,
            refresh_expires_at=self.refresh_expires_at,
            refresh_count=self.refresh_count,
        )

    # conversations and messages

    def conversation(self, conversation_id: str) -> Conversation | None:
        return self.conversations.get(conversation_id)

    def note_customer_message(
        self, conversation_id: str, message_id: str, user_id: str, username: str, at: float
    ) -> None:
        conversation = self.conversations.setdefault(
            conversation_id, Conversation(user_id=user_id, username=username)
        )
        conversation.user_id, conversation.username = user_id, username
        # Only a new message opens the window and resets the quota: a redelivery of one
        # already seen, or a late one older than the latest, changes nothing.
        if message_id in conversation.seen_message_ids:
            return
        conversation.seen_message_ids.add(message_id)
        if conversation.last_customer_at is None or at >= conversation.last_customer_at:
            conversation.last_customer_at = at
            conversation.replies = 0

    def record_message(
        self,
        conversation_id: str,
        message_type: Literal["TEXT", "IMAGE"],
        *,
        text: str | None = None,
        media_id: str | None = None,
        source: Literal["api", "app"] = "api",
    ) -> RecordedMessage:
        now = time.time()
        conversation = self.conversations.get(conversation_id)
        within: bool | None = None
        reply_number = 1
        if conversation is not None:
            conversation.replies += 1
            reply_number = conversation.replies
            if conversation.last_customer_at is not None:
                within = now - conversation.last_customer_at <= WINDOW_SECONDS
        else:
            reply_number = 1 + self.sent_per_conversation[conversation_id]
        message = RecordedMessage(
            seq=len(self.messages) + 1,
            message_id=tiktok_id(),
            conversation_id=conversation_id,
            message_type=message_type,
            text=text,
            media_id=media_id,
            received_at=now,
            source=source,
            within_window=within,
            reply_number=reply_number,
        )
        self.messages.append(message)
        self.sent_per_conversation[conversation_id] += 1
        self._wake_tally_waiters()
        return message

    async def until_conversations(self, count: int) -> None:
        """Returns once messages were sent to `count` conversations (the caller bounds the
        wait): a benchmark waits for its replies with one request instead of polling,
        whose own cost would be measured with the bot's."""
        if len(self.sent_per_conversation) >= count:
            return
        reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (count, reached)
        self._tally_waiters.append(waiter)
        try:
            await reached
        finally:
            self._tally_waiters.remove(waiter)

    def _wake_tally_waiters(self) -> None:
        if not self._tally_waiters:
            return
        conversations = len(self.sent_per_conversation)
        for count, reached in self._tally_waiters:
            if conversations >= count and not reached.done():
                reached.set_result(None)

    # capabilities

    def image_send_for(self, conversation_id: str) -> bool:
        return self.image_send_overrides.get(conversation_id, self.image_send)
