"""A local stand-in for the TikTok Business Messaging API (tiktok-api.md).

It answers the bot's egress calls with TikTok's shapes, auth header and error behaviour,
records what it accepted and every call it saw, and plays customers by posting signed
webhooks to the bot. The request models here are written from the spec on purpose rather
than imported from the client: if both sides shared one model, a wrong field name would
pass every test.

State lives in memory, as it would on TikTok's side: one process, one sandbox. The control
API under `/_sandbox` lets tests, the scenario runner and benchmarks steer it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Annotated, Any, Literal

import httpx
import orjson
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    model_validator,
)

from app.core.config import Settings
from app.core.logging import get_logger
from app.core.security import signature_header
from app.sandbox.media import placeholder_png

log = get_logger(__name__)

Endpoint = Literal["send", "media_upload", "capabilities", "refresh_token"]
FailureKind = Annotated[str, Field(pattern=r"^(http_[45]\d\d|code_\d{5}|delay)$")]

CODE_OK = 0
CODE_PERMISSION = 40001
CODE_BAD_PARAMETERS = 40002
CODE_NOT_FOUND = 40007
CODE_TOO_FAST = 40064
CODE_RATE_LIMITED = 40100
CODE_INVALID_TOKEN = 40105
CODE_UNSUPPORTED_FILE = 40908

_MESSAGES = {
    CODE_OK: "OK",
    CODE_PERMISSION: "No permission to operate this business account",
    CODE_BAD_PARAMETERS: "Invalid parameters",
    CODE_NOT_FOUND: "Object not found",
    CODE_TOO_FAST: "You are sending messages too fast. Please try again later.",
    CODE_RATE_LIMITED: "Request too frequent; rate limit exceeded",
    CODE_INVALID_TOKEN: "Access token is missing, invalid or expired",
    CODE_UNSUPPORTED_FILE: "Unsupported file format",
}

MAX_TEXT_CHARS = 6000
MAX_IMAGE_BYTES = 3 * 1024 * 1024
WINDOW_SECONDS = 48 * 3600
_IMAGE_SIGNATURES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


def _tiktok_id(seed: bytes | None = None) -> str:
    # 19 bytes give 28 base64 characters ending in "==", with "+" and "/" now and then,
    # like TikTok's ids: the bot must keep them byte-exact.
    raw = hashlib.sha256(seed).digest()[:19] if seed is not None else os.urandom(19)
    return base64.b64encode(raw).decode("ascii")


def conversation_id_for(user_id: str, business_id: str) -> str:
    """The conversation id the sandbox gives a customer: stable, so a customer who writes
    again lands in the same conversation."""
    return _tiktok_id(f"conversation|{business_id}|{user_id}".encode())


def _request_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(8).upper()


# -- configuration and control-API models ---------------------------------------------------


class SandboxConfig(BaseModel):
    client_key: str
    client_secret: str = Field(repr=False)
    business_id: str
    access_token: str = Field(repr=False)
    refresh_token: str = Field(repr=False)
    webhook_url: str | None = None
    shop_username: str = "philiathrifts"
    access_token_ttl_seconds: int = 24 * 3600
    refresh_token_ttl_seconds: int = 365 * 24 * 3600
    # Post an `im_send_msg` echo for every message sent through the API, as TikTok does.
    echo_sends: bool = False
    # Answer 40100 beyond this many API calls in any one second; None: no limit.
    rate_limit_per_second: int | None = None
    webhook_timeout_seconds: float = 10.0
    # TikTok delivers a webhook again when the bot does not answer 2xx (for up to 72 h);
    # the sandbox keeps trying for this long. 0: one attempt only.
    webhook_redelivery_seconds: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SandboxConfig:
        """The sandbox a bot with these settings can talk to out of the box."""
        values: dict[str, Any] = {
            "client_key": settings.tiktok_client_key,
            "client_secret": settings.tiktok_client_secret.get_secret_value(),
            "business_id": settings.tiktok_business_id,
            "access_token": settings.tiktok_access_token.get_secret_value(),
            "refresh_token": settings.tiktok_refresh_token.get_secret_value(),
            "webhook_url": settings.public_base_url.rstrip("/") + "/webhook/tiktok",
        }
        values.update(overrides)
        return cls.model_validate(values)


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


class FailureRule(BaseModel):
    kind: FailureKind
    remaining: int = Field(ge=1)
    seconds: float | None = Field(default=None, ge=0, le=120)
    endpoints: list[Endpoint] | None = None  # None: any API call

    @model_validator(mode="after")
    def _delay_has_seconds(self) -> FailureRule:
        if self.kind == "delay" and self.seconds is None:
            raise ValueError("kind 'delay' needs seconds")
        return self


class FailureRequest(BaseModel):
    count: int = Field(default=1, ge=1, le=10_000)
    kind: FailureKind
    seconds: float | None = Field(default=None, ge=0, le=120)
    endpoints: list[Endpoint] | None = None


class FailuresView(BaseModel):
    pending: list[FailureRule]


class RandomFaults(BaseModel):
    """Faults drawn at random for every API call (of `endpoints`, default any), on top of
    the counted rules of `/failures`: TikTok on a bad day, for the chaos tests."""

    http_5xx_rate: float = Field(default=0.0, ge=0, le=1)
    # A burst of 40064 starts with this chance per call and refuses the next calls too.
    too_fast_burst_rate: float = Field(default=0.0, ge=0, le=1)
    too_fast_burst_length: int = Field(default=5, ge=1, le=1000)
    latency_seconds: float = Field(default=0.0, ge=0, le=30)
    endpoints: list[Endpoint] | None = None
    seed: int | None = None


class RandomFaultsView(BaseModel):
    faults: RandomFaults | None
    injected: dict[str, int]  # kind -> how many calls it hit so far


class WebhookDeliveryRecord(BaseModel):
    """One webhook event as TikTok saw it: every attempt until the bot answered 2xx."""

    event: str
    message_id: str | None
    statuses: list[int | None]
    acknowledged: bool


class WebhookDeliveriesView(BaseModel):
    deliveries: list[WebhookDeliveryRecord]


class CapabilityUpdate(BaseModel):
    image_send: bool
    conversation_id: str | None = None  # None: the default for every conversation


class CapabilitiesView(BaseModel):
    image_send: bool
    overrides: dict[str, bool]


class TokensView(BaseModel):
    access_token: str
    access_expires_at: float
    refresh_token: str
    refresh_expires_at: float
    refresh_count: int


class ConfigUpdate(BaseModel):
    webhook_url: str | None = None
    echo_sends: bool | None = None
    rate_limit_per_second: int | None = Field(default=None, ge=1)
    webhook_redelivery_seconds: float | None = Field(default=None, ge=0, le=3600)


class ConfigView(BaseModel):
    webhook_url: str | None
    echo_sends: bool
    rate_limit_per_second: int | None
    webhook_redelivery_seconds: float = 0.0


class CustomerMessage(BaseModel):
    """Play a customer writing a DM: exactly one of `text`, `share_post_video_id`, `image`."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1)
    conversation_id: str | None = None  # None: derived stably from user_id
    username: str | None = None
    text: str | None = None
    share_post_video_id: str | None = None
    image: bool = False
    image_media_id: str | None = None
    message_id: str | None = None  # give one to simulate a redelivery of the same message
    timestamp_ms: int | None = None  # when the customer wrote; default now
    referenced_message_id: str | None = None
    copies: int = Field(default=1, ge=1, le=100)  # concurrent identical deliveries

    @model_validator(mode="after")
    def _one_kind(self) -> CustomerMessage:
        kinds = [self.text is not None, self.share_post_video_id is not None, self.image]
        if sum(kinds) != 1:
            raise ValueError("give exactly one of text, share_post_video_id, image")
        return self


class StaffMessage(BaseModel):
    """Play a staff member typing in the TikTok app: TikTok echoes it as `im_send_msg`."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str
    user_id: str | None = None
    text: str = Field(min_length=1)


class Delivery(BaseModel):
    status: int | None
    error: str | None = None
    elapsed_ms: float


class WebhookResult(BaseModel):
    event: str
    message_id: str
    conversation_id: str
    user_id: str
    timestamp_ms: int
    body: str  # the exact bytes posted, for tests that check the shape
    deliveries: list[Delivery]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bot_status(self) -> int | None:
        return self.deliveries[0].status if self.deliveries else None


class MessagesView(BaseModel):
    messages: list[RecordedMessage]


class CallsView(BaseModel):
    calls: list[RecordedCall]


# -- TikTok request shapes, from the spec -------------------------------------------------


class _TextBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str


class _ImageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    media_id: str


class _SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    business_id: str
    recipient_type: Literal["CONVERSATION"]
    recipient: str = Field(min_length=1)
    message_type: Literal["TEXT", "IMAGE"]
    text: _TextBody | None = None
    image: _ImageBody | None = None


class _RefreshBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str
    client_secret: str
    grant_type: str
    refresh_token: str


@dataclass
class _Media:
    media_id: str
    filename: str
    content_type: str
    size: int
    uploaded_at: float
    # Kept so the customer simulator can show the photo the bot sent (GET /_sandbox/uploads).
    content: bytes = field(default=b"", repr=False)


@dataclass
class _Outcome:
    code: int
    data: dict[str, Any] | None = None
    message: str | None = None


@dataclass
class _Conversation:
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
    calls: list[RecordedCall] = field(default_factory=list)
    media: dict[str, _Media] = field(default_factory=dict)
    failures: list[FailureRule] = field(default_factory=list)
    image_send: bool = True
    image_send_overrides: dict[str, bool] = field(default_factory=dict)
    conversations: dict[str, _Conversation] = field(default_factory=dict)
    random_faults: RandomFaults | None = None
    random_injected: dict[str, int] = field(default_factory=dict)
    too_fast_burst_left: int = 0
    rng: random.Random = field(default_factory=random.Random)
    webhook_log: list[WebhookDeliveryRecord] = field(default_factory=list)
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
        self.calls.clear()
        self.media.clear()
        self.failures.clear()
        self.image_send = True
        self.image_send_overrides.clear()
        self.conversations.clear()
        self.random_faults = None
        self.random_injected.clear()
        self.too_fast_burst_left = 0
        self.webhook_log.clear()
        self.settings = ConfigView(
            webhook_url=self.config.webhook_url,
            echo_sends=self.config.echo_sends,
            rate_limit_per_second=self.config.rate_limit_per_second,
            webhook_redelivery_seconds=self.config.webhook_redelivery_seconds,
        )

    # calls and failures

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

    def take_failure(self, endpoint: Endpoint) -> FailureRule | None:
        for index, rule in enumerate(self.failures):
            if rule.endpoints is None or endpoint in rule.endpoints:
                rule.remaining -= 1
                if rule.remaining == 0:
                    del self.failures[index]
                return rule
        return None

    def draw_random_fault(self, endpoint: Endpoint) -> tuple[str | None, float]:
        """The injected failure kind (or None) and the latency for one call."""
        faults = self.random_faults
        if faults is None or (faults.endpoints is not None and endpoint not in faults.endpoints):
            return None, 0.0
        kind: str | None = None
        if self.too_fast_burst_left > 0:
            self.too_fast_burst_left -= 1
            kind = f"code_{CODE_TOO_FAST}"
        elif self.rng.random() < faults.too_fast_burst_rate:
            self.too_fast_burst_left = faults.too_fast_burst_length - 1
            kind = f"code_{CODE_TOO_FAST}"
        elif self.rng.random() < faults.http_5xx_rate:
            kind = self.rng.choice(("http_500", "http_502", "http_503", "http_504"))
        if kind is not None:
            self.random_injected[kind] = self.random_injected.get(kind, 0) + 1
        return kind, faults.latency_seconds

    def over_rate_limit(self, call: RecordedCall) -> bool:
        limit = self.settings.rate_limit_per_second
        if limit is None:
            return False
        recent = 0
        for other in reversed(self.calls):  # newest first: stop at the first older than 1 s
            if call.received_at - other.received_at >= 1.0:
                break
            recent += other.endpoint != "refresh_token"
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

    def tokens_view(self) -> TokensView:
        return TokensView(
            access_token=self.access_token,
            access_expires_at=self.access_expires_at,
            refresh_token=self.refresh_token,
            refresh_expires_at=self.refresh_expires_at,
            refresh_count=self.refresh_count,
        )

    # conversations and messages

    def conversation(self, conversation_id: str) -> _Conversation | None:
        return self.conversations.get(conversation_id)

    def note_customer_message(
        self, conversation_id: str, message_id: str, user_id: str, username: str, at: float
    ) -> None:
        conversation = self.conversations.setdefault(
            conversation_id, _Conversation(user_id=user_id, username=username)
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
            reply_number = 1 + sum(1 for m in self.messages if m.conversation_id == conversation_id)
        message = RecordedMessage(
            seq=len(self.messages) + 1,
            message_id=_tiktok_id(),
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
        return message

    def image_send_for(self, conversation_id: str) -> bool:
        return self.image_send_overrides.get(conversation_id, self.image_send)


# -- helpers ------------------------------------------------------------------------------


def _ok(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def _envelope(code: int, message: str | None = None, data: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps(
        {
            "code": code,
            "message": message or _MESSAGES.get(code, "Error"),
            "request_id": _request_id(),
            "data": data if data is not None else {},
        }
    )


def _respond(call: RecordedCall, status: int, body: bytes, code: int | None) -> Response:
    call.http_status = status
    call.code = code
    return Response(content=body, status_code=status, media_type="application/json")


@dataclass
class _Part:
    headers: Message
    content: bytes

    @property
    def name(self) -> str | None:
        value = self.headers.get_param("name", header="content-disposition")
        return value if isinstance(value, str) else None

    @property
    def filename(self) -> str | None:
        return self.headers.get_filename()


def _parse_multipart(body: bytes, content_type: str) -> dict[str, _Part] | None:
    """A minimal multipart/form-data reader (RFC 7578): enough to check TikTok's upload
    shape without another dependency."""
    header = Message()
    header["content-type"] = content_type
    if header.get_content_type() != "multipart/form-data":
        return None
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return None
    # Every delimiter, the first included, is CRLF "--" boundary: the CRLF belongs to it.
    sections = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    parts: dict[str, _Part] = {}
    for section in sections[1:]:
        if section.startswith(b"--"):
            return parts
        head, separator, content = section.partition(b"\r\n\r\n")
        if not separator:
            return None
        headers = Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip()] = value.strip()
        part = _Part(headers, content)
        if part.name is None:
            return None
        parts[part.name] = part
    return None  # no closing delimiter: truncated body


def _validation_message(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"Invalid parameters: {location}: {first['msg']}"


# -- the application ----------------------------------------------------------------------


def create_sandbox_app(config: SandboxConfig) -> FastAPI:
    state = SandboxState(config=config)
    background: set[asyncio.Task[None]] = set()
    http_holder: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        http_holder["client"] = httpx.AsyncClient(timeout=config.webhook_timeout_seconds)
        try:
            yield
        finally:
            for task in list(background):
                task.cancel()
            await http_holder["client"].aclose()

    app = FastAPI(title="TikTok Business API sandbox", lifespan=lifespan, docs_url="/_sandbox/docs")
    app.state.sandbox = state

    async def api_call(
        request: Request,
        endpoint: Endpoint,
        action: Callable[[], Awaitable[_Outcome]],
        *,
        needs_token: bool = True,
    ) -> Response:
        call = state.record_call(request, endpoint)
        # Read the whole request first (Starlette keeps it): a delayed answer must still act
        # on a request whose client has given up waiting, as TikTok would.
        await request.body()
        rule = state.take_failure(endpoint)
        kind: str | None = None
        if rule is not None:
            kind = rule.kind
            if rule.kind == "delay":
                await asyncio.sleep(rule.seconds or 0.0)
        else:
            kind, latency = state.draw_random_fault(endpoint)
            if latency:
                await asyncio.sleep(latency)
        if kind is not None:
            call.injected = kind
            if kind.startswith("http_"):
                # A gateway error page, not TikTok's envelope: what a proxy in front answers.
                status = int(kind.removeprefix("http_"))
                call.http_status = status
                return PlainTextResponse(f"{status} injected error", status_code=status)
            if kind.startswith("code_"):
                code = int(kind.removeprefix("code_"))
                return _respond(call, 200, _envelope(code), code)
        if state.over_rate_limit(call):
            return _respond(call, 200, _envelope(CODE_RATE_LIMITED), CODE_RATE_LIMITED)
        if needs_token:
            problem = state.token_problem(
                request.headers.get("Access-Token"), request.headers.get("Authorization")
            )
            if problem is not None:
                return _respond(
                    call, 200, _envelope(CODE_INVALID_TOKEN, problem), CODE_INVALID_TOKEN
                )
        outcome = await action()
        return _respond(
            call, 200, _envelope(outcome.code, outcome.message, outcome.data), outcome.code
        )

    async def post_webhook(
        body: bytes, copies: int, *, event: str = "", message_id: str | None = None
    ) -> list[Delivery]:
        url = state.settings.webhook_url
        if url is None:
            raise HTTPException(status_code=409, detail="no webhook_url configured")

        async def deliver() -> Delivery:
            # Signed at each attempt, as TikTok does: a redelivery carries a fresh timestamp.
            headers = {
                "Content-Type": "application/json",
                "TikTok-Signature": signature_header(config.client_secret, body),
            }
            started = time.perf_counter()
            try:
                response = await http_holder["client"].post(url, content=body, headers=headers)
            except httpx.HTTPError as error:
                elapsed = (time.perf_counter() - started) * 1000
                return Delivery(status=None, error=repr(error), elapsed_ms=elapsed)
            elapsed = (time.perf_counter() - started) * 1000
            return Delivery(status=response.status_code, elapsed_ms=elapsed)

        first = list(await asyncio.gather(*(deliver() for _ in range(copies))))
        record = WebhookDeliveryRecord(
            event=event,
            message_id=message_id,
            statuses=[d.status for d in first],
            acknowledged=any(_ok(d.status) for d in first),
        )
        state.webhook_log.append(record)
        redelivery = state.settings.webhook_redelivery_seconds
        if not record.acknowledged and redelivery > 0:
            spawn(redeliver(record, deliver, time.monotonic() + redelivery))
        return first

    async def redeliver(
        record: WebhookDeliveryRecord,
        deliver: Callable[[], Awaitable[Delivery]],
        give_up_at: float,
    ) -> None:
        pause = 0.25
        while time.monotonic() < give_up_at:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 4.0)
            delivery = await deliver()
            record.statuses.append(delivery.status)
            if _ok(delivery.status):
                record.acknowledged = True
                return
        log.warning(
            "sandbox_webhook_abandoned", webhook_event=record.event, message_id=record.message_id
        )

    def spawn(coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        background.add(task)
        task.add_done_callback(background.discard)

    def webhook_envelope(event: str, content: dict[str, Any], create_time: int) -> bytes:
        return orjson.dumps(
            {
                "client_key": config.client_key,
                "event": event,
                "create_time": create_time,
                "user_openid": config.business_id,
                # TikTok nests the message as a JSON document inside a string.
                "content": orjson.dumps(content).decode("utf-8"),
            }
        )

    async def echo_send(message: RecordedMessage) -> None:
        conversation = state.conversation(message.conversation_id)
        content = _business_content(
            config,
            message,
            user_id=conversation.user_id if conversation else "unknown",
            username=conversation.username if conversation else "unknown",
        )
        body = webhook_envelope("im_send_msg", content, int(message.received_at))
        try:
            await post_webhook(body, 1, event="im_send_msg", message_id=message.message_id)
        except HTTPException:
            log.info("sandbox_echo_skipped_no_webhook")

    # -- TikTok endpoints ---------------------------------------------------------------

    @app.post("/open_api/{version}/business/message/send/")
    async def send_message(version: str, request: Request) -> Response:
        async def action() -> _Outcome:
            try:
                payload = _SendBody.model_validate_json(await request.body())
            except ValidationError as error:
                return _Outcome(CODE_BAD_PARAMETERS, message=_validation_message(error))
            if payload.business_id != config.business_id:
                return _Outcome(CODE_PERMISSION)
            if payload.message_type == "TEXT":
                if payload.text is None or payload.image is not None:
                    return _Outcome(CODE_BAD_PARAMETERS, message="TEXT needs text and no image")
                if not payload.text.body.strip() or len(payload.text.body) > MAX_TEXT_CHARS:
                    return _Outcome(CODE_BAD_PARAMETERS, message="text.body must be 1-6000 chars")
                message = state.record_message(payload.recipient, "TEXT", text=payload.text.body)
            else:
                if payload.image is None or payload.text is not None:
                    return _Outcome(CODE_BAD_PARAMETERS, message="IMAGE needs image and no text")
                if payload.image.media_id not in state.media:
                    return _Outcome(CODE_NOT_FOUND, message="media_id not found")
                message = state.record_message(
                    payload.recipient, "IMAGE", media_id=payload.image.media_id
                )
            if state.settings.echo_sends:
                spawn(echo_send(message))
            return _Outcome(CODE_OK, data={"message": {"message_id": message.message_id}})

        return await api_call(request, "send", action)

    @app.post("/open_api/{version}/business/message/media/upload/")
    async def upload_media(version: str, request: Request) -> Response:
        async def action() -> _Outcome:
            parts = _parse_multipart(await request.body(), request.headers.get("content-type", ""))
            if parts is None:
                return _Outcome(CODE_BAD_PARAMETERS, message="expected multipart/form-data")
            business = parts.get("business_id")
            media_type = parts.get("media_type")
            upload = parts.get("file")
            if business is None or media_type is None or upload is None:
                return _Outcome(
                    CODE_BAD_PARAMETERS, message="business_id, media_type and file are required"
                )
            if upload.filename is None:
                return _Outcome(CODE_BAD_PARAMETERS, message="file must be a file part")
            if business.content.decode("utf-8", "replace") != config.business_id:
                return _Outcome(CODE_PERMISSION)
            if media_type.content != b"IMAGE":
                return _Outcome(CODE_BAD_PARAMETERS, message="media_type must be IMAGE")
            detected = next(
                (
                    kind
                    for magic, kind in _IMAGE_SIGNATURES.items()
                    if upload.content.startswith(magic)
                ),
                None,
            )
            if detected is None:
                return _Outcome(CODE_UNSUPPORTED_FILE, message="only JPG and PNG are supported")
            if len(upload.content) > MAX_IMAGE_BYTES:
                return _Outcome(CODE_BAD_PARAMETERS, message="file larger than 3 MB")
            media = _Media(
                media_id="v10033g5" + secrets.token_hex(12),
                filename=upload.filename,
                content_type=detected,
                size=len(upload.content),
                uploaded_at=time.time(),
                content=upload.content,
            )
            state.media[media.media_id] = media
            return _Outcome(CODE_OK, data={"media_id": media.media_id})

        return await api_call(request, "media_upload", action)

    @app.get("/open_api/{version}/business/message/capabilities/get/")
    async def get_capabilities(version: str, request: Request) -> Response:
        async def action() -> _Outcome:
            query = request.query_params
            if query.get("business_id") != config.business_id:
                return _Outcome(CODE_PERMISSION)
            conversation_id = query.get("conversation_id")
            if not conversation_id:
                return _Outcome(CODE_BAD_PARAMETERS, message="conversation_id is required")
            try:
                requested = orjson.loads(query.get("capability_types", ""))
            except orjson.JSONDecodeError:
                requested = None
            if not (
                isinstance(requested, list)
                and requested
                and all(isinstance(item, str) for item in requested)
            ):
                return _Outcome(
                    CODE_BAD_PARAMETERS, message="capability_types must be a JSON list of strings"
                )
            infos = [
                {
                    "capability_type": kind,
                    "capability_result": kind == "IMAGE_SEND"
                    and state.image_send_for(conversation_id),
                }
                for kind in requested
            ]
            return _Outcome(CODE_OK, data={"capability_infos": infos})

        return await api_call(request, "capabilities", action)

    @app.post("/open_api/{version}/tt_user/oauth2/refresh_token/")
    async def refresh_token(version: str, request: Request) -> Response:
        async def action() -> _Outcome:
            try:
                payload = _RefreshBody.model_validate_json(await request.body())
            except ValidationError as error:
                return _Outcome(CODE_BAD_PARAMETERS, message=_validation_message(error))
            if payload.client_id != config.client_key or not secrets.compare_digest(
                payload.client_secret, config.client_secret
            ):
                return _Outcome(CODE_PERMISSION, message="client_id or client_secret is wrong")
            if payload.grant_type != "refresh_token":
                return _Outcome(CODE_BAD_PARAMETERS, message="grant_type must be refresh_token")
            if (
                not secrets.compare_digest(payload.refresh_token, state.refresh_token)
                or time.time() >= state.refresh_expires_at
            ):
                return _Outcome(CODE_BAD_PARAMETERS, message="refresh_token is invalid or expired")
            state.rotate_tokens()
            return _Outcome(
                CODE_OK,
                data={
                    "access_token": state.access_token,
                    "expires_in": config.access_token_ttl_seconds,
                    "refresh_token": state.refresh_token,
                    "refresh_token_expires_in": config.refresh_token_ttl_seconds,
                    "open_id": config.business_id,
                    "scope": "message.list.send,message.list.read",
                    "token_type": "Bearer",
                },
            )

        return await api_call(request, "refresh_token", action, needs_token=False)

    # -- control API --------------------------------------------------------------------

    @app.get("/_sandbox/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/_sandbox/media/{path:path}")
    async def media(path: str) -> Response:
        """The shop's CDN, as a mirror the worker may fetch through (MEDIA_MIRROR_URL)."""
        return Response(placeholder_png(path), media_type="image/png")

    @app.get("/_sandbox/uploads/{media_id}")
    async def uploaded(media_id: str) -> Response:
        """The bytes of an image uploaded through the media API, as TikTok would show it."""
        stored = state.media.get(media_id)
        if stored is None:
            raise HTTPException(status_code=404, detail="no upload with this media_id")
        return Response(stored.content, media_type=stored.content_type)

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, bool]:
        state.reset()
        return {"ok": True}

    @app.get("/_sandbox/messages")
    async def list_messages(
        conversation_id: str | None = None, since: float | None = None
    ) -> MessagesView:
        return MessagesView(
            messages=[
                message
                for message in state.messages
                if (conversation_id is None or message.conversation_id == conversation_id)
                and (since is None or message.received_at >= since)
            ]
        )

    @app.get("/_sandbox/calls")
    async def list_calls(
        endpoint: Annotated[list[Endpoint] | None, Query()] = None, since: float | None = None
    ) -> CallsView:
        return CallsView(
            calls=[
                call
                for call in state.calls
                if (endpoint is None or call.endpoint in endpoint)
                and (since is None or call.received_at >= since)
            ]
        )

    @app.get("/_sandbox/failures")
    async def list_failures() -> FailuresView:
        return FailuresView(pending=list(state.failures))

    @app.post("/_sandbox/failures")
    async def add_failures(body: FailureRequest) -> FailuresView:
        try:
            rule = FailureRule(
                kind=body.kind, remaining=body.count, seconds=body.seconds, endpoints=body.endpoints
            )
        except ValidationError as error:
            raise HTTPException(status_code=422, detail=_validation_message(error)) from None
        state.failures.append(rule)
        return FailuresView(pending=list(state.failures))

    @app.delete("/_sandbox/failures")
    async def clear_failures() -> FailuresView:
        state.failures.clear()
        return FailuresView(pending=[])

    @app.get("/_sandbox/faults/random")
    async def random_faults_view() -> RandomFaultsView:
        return RandomFaultsView(faults=state.random_faults, injected=dict(state.random_injected))

    @app.put("/_sandbox/faults/random")
    async def set_random_faults(body: RandomFaults) -> RandomFaultsView:
        state.random_faults = body
        state.random_injected.clear()
        state.too_fast_burst_left = 0
        state.rng = random.Random(body.seed)
        return await random_faults_view()

    @app.delete("/_sandbox/faults/random")
    async def clear_random_faults() -> RandomFaultsView:
        state.random_faults = None
        state.too_fast_burst_left = 0
        return await random_faults_view()

    @app.get("/_sandbox/webhooks")
    async def webhook_deliveries(event: str | None = None) -> WebhookDeliveriesView:
        return WebhookDeliveriesView(
            deliveries=[
                record for record in state.webhook_log if event is None or record.event == event
            ]
        )

    @app.get("/_sandbox/capabilities")
    async def capabilities_view() -> CapabilitiesView:
        return CapabilitiesView(
            image_send=state.image_send, overrides=dict(state.image_send_overrides)
        )

    @app.post("/_sandbox/capabilities")
    async def set_capabilities(body: CapabilityUpdate) -> CapabilitiesView:
        if body.conversation_id is None:
            state.image_send = body.image_send
        else:
            state.image_send_overrides[body.conversation_id] = body.image_send
        return await capabilities_view()

    @app.get("/_sandbox/tokens")
    async def tokens() -> TokensView:
        return state.tokens_view()

    @app.post("/_sandbox/tokens/expire")
    async def expire_access_token() -> TokensView:
        state.access_expires_at = time.time() - 1
        return state.tokens_view()

    @app.get("/_sandbox/config")
    async def config_view() -> ConfigView:
        return state.settings

    @app.patch("/_sandbox/config")
    async def update_config(body: ConfigUpdate) -> ConfigView:
        # Only the fields sent change; an explicit null clears webhook_url or the rate limit.
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        for name in ("echo_sends", "webhook_redelivery_seconds"):
            if name in changes and changes[name] is None:
                del changes[name]
        state.settings = state.settings.model_copy(update=changes)
        return state.settings

    @app.post("/_sandbox/customer/messages")
    async def play_customer(body: CustomerMessage) -> WebhookResult:
        conversation_id = body.conversation_id or conversation_id_for(
            body.user_id, config.business_id
        )
        username = body.username or f"customer_{body.user_id[:12]}"
        message_id = body.message_id or _tiktok_id()
        timestamp_ms = (
            body.timestamp_ms if body.timestamp_ms is not None else int(time.time() * 1000)
        )
        content: dict[str, Any] = {
            "timestamp": timestamp_ms,
            "unique_identifier": str(uuid.uuid4()),
            "conversation_id": conversation_id,
            "message_id": message_id,
            "from": username,
            "to": config.shop_username,
            "from_user": {"id": body.user_id, "role": "personal_account"},
            "to_user": {"id": config.business_id, "role": "business_account"},
        }
        if body.text is not None:
            content["type"] = "text"
            content["text"] = {"body": body.text}
        elif body.share_post_video_id is not None:
            content["type"] = "share_post"
            content["share_post"] = {
                "video_id": body.share_post_video_id,
                "embed_url": f"https://www.tiktok.com/embed/v2/{body.share_post_video_id}",
            }
        else:
            content["type"] = "image"
            content["image"] = {
                "media_id": body.image_media_id or "v0f044g" + secrets.token_hex(12)
            }
        if body.referenced_message_id is not None:
            content["referenced_message_info"] = {
                "referenced_message_id": body.referenced_message_id
            }
        state.note_customer_message(
            conversation_id, message_id, body.user_id, username, timestamp_ms / 1000
        )
        raw = webhook_envelope("im_receive_msg", content, timestamp_ms // 1000)
        deliveries = await post_webhook(
            raw, body.copies, event="im_receive_msg", message_id=message_id
        )
        return WebhookResult(
            event="im_receive_msg",
            message_id=message_id,
            conversation_id=conversation_id,
            user_id=body.user_id,
            timestamp_ms=timestamp_ms,
            body=raw.decode("utf-8"),
            deliveries=deliveries,
        )

    @app.post("/_sandbox/staff/messages")
    async def play_staff(body: StaffMessage) -> WebhookResult:
        conversation = state.conversation(body.conversation_id)
        user_id = body.user_id or (conversation.user_id if conversation else "unknown")
        message = state.record_message(body.conversation_id, "TEXT", text=body.text, source="app")
        content = _business_content(
            config,
            message,
            user_id=user_id,
            username=conversation.username if conversation else "unknown",
        )
        raw = webhook_envelope("im_send_msg", content, int(message.received_at))
        deliveries = await post_webhook(raw, 1, event="im_send_msg", message_id=message.message_id)
        return WebhookResult(
            event="im_send_msg",
            message_id=message.message_id,
            conversation_id=body.conversation_id,
            user_id=user_id,
            timestamp_ms=int(message.received_at * 1000),
            body=raw.decode("utf-8"),
            deliveries=deliveries,
        )

    return app


def _business_content(
    config: SandboxConfig, message: RecordedMessage, *, user_id: str, username: str
) -> dict[str, Any]:
    """`content` of an `im_send_msg` echo: the customer message shape, sender and recipient
    swapped."""
    content: dict[str, Any] = {
        "timestamp": int(message.received_at * 1000),
        "unique_identifier": str(uuid.uuid4()),
        "conversation_id": message.conversation_id,
        "message_id": message.message_id,
        "from": config.shop_username,
        "to": username,
        "from_user": {"id": config.business_id, "role": "business_account"},
        "to_user": {"id": user_id, "role": "personal_account"},
    }
    if message.message_type == "TEXT":
        content["type"] = "text"
        content["text"] = {"body": message.text or ""}
    else:
        content["type"] = "image"
        content["image"] = {"media_id": message.media_id}
    return content
