"""TikTok Business Messaging API shapes (tiktok-api.md), requests and responses.

Responses keep unknown fields (`extra="allow"`): TikTok adds fields without notice and the
bot must not break on them. Requests are built from models and dumped without `None`s so
that an image message never carries an empty `text` and vice versa.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

IMAGE_SEND = "IMAGE_SEND"
CONVERSATION_TYPE_SINGLE = "SINGLE"


class _Response(BaseModel):
    # Only keys are cached when parsing JSON: the values (message and request ids) are new
    # in every answer, and pydantic-core's cache (fixed in size) kept them, about 80 bytes a
    # send, in every worker process until it was full.
    model_config = ConfigDict(extra="allow", cache_strings="keys")


class Envelope(_Response):
    """Every response: `{code, message, request_id, data}`; `code` 0 is the only success,
    whatever the HTTP status says."""

    code: int
    message: str = ""
    request_id: str | None = None
    # Error answers sometimes carry `[]` or nothing here; only a success's data is read.
    data: dict[str, Any] | list[Any] | None = None


class SentMessage(_Response):
    message_id: str | None = None


class SendData(_Response):
    """A send's answer carries the new message's id as `message.message_id` (the docs) or
    as a top-level `message_id` (one production source): either will do, the docs first."""

    message: SentMessage | None = None
    message_id: str | None = None

    @model_validator(mode="after")
    def _has_message_id(self) -> SendData:
        if not self.sent_message_id:
            raise ValueError("no message id in message.message_id or message_id")
        return self

    @property
    def sent_message_id(self) -> str:
        nested = self.message.message_id if self.message is not None else None
        return nested or self.message_id or ""


class MediaUploadData(_Response):
    media_id: str = Field(min_length=1)


class CapabilityInfo(_Response):
    capability_type: str
    capability_result: bool = False


class CapabilitiesData(_Response):
    """Chosen shape (TikTok's reference is not public): one entry per requested type.
    A type missing from the answer counts as not available."""

    capability_infos: list[CapabilityInfo] = Field(default_factory=list)

    def allows(self, capability_type: str) -> bool:
        return any(
            info.capability_type == capability_type and info.capability_result
            for info in self.capability_infos
        )


class TokenData(_Response):
    access_token: str = Field(min_length=1, repr=False)
    expires_in: int = Field(gt=0)
    refresh_token: str = Field(min_length=1, repr=False)
    refresh_token_expires_in: int = Field(gt=0)


class MessageType(StrEnum):
    TEXT = "TEXT"
    IMAGE = "IMAGE"


class TextPayload(BaseModel):
    body: str


class ImagePayload(BaseModel):
    media_id: str


class SendMessageRequest(BaseModel):
    business_id: str
    recipient_type: Literal["CONVERSATION"] = "CONVERSATION"
    recipient: str
    message_type: MessageType
    text: TextPayload | None = None
    image: ImagePayload | None = None


class RefreshTokenRequest(BaseModel):
    client_id: str
    client_secret: str = Field(repr=False)
    grant_type: Literal["refresh_token"] = "refresh_token"
    refresh_token: str = Field(repr=False)


# -- connecting an account (tiktok-api.md, "Connecting an account") ----------------------


class AuthorizationCodeRequest(BaseModel):
    client_id: str
    client_secret: str = Field(repr=False)
    grant_type: Literal["authorization_code"] = "authorization_code"
    auth_code: str = Field(repr=False)
    redirect_uri: str


class AuthorizedTokenData(TokenData):
    """The token exchange's answer: a refresh's fields, the account (`open_id`) and the
    scopes the owner granted, which may be fewer than asked for."""

    open_id: str = Field(min_length=1)
    scope: str | list[str] | None = None

    @property
    def scopes(self) -> frozenset[str] | None:
        """The granted scopes; None when TikTok did not say (not an empty grant)."""
        if self.scope is None:
            return None
        parts = self.scope if isinstance(self.scope, list) else self.scope.replace(" ", ",")
        if isinstance(parts, str):
            parts = parts.split(",")
        return frozenset(part.strip() for part in parts if part.strip())


WEBHOOK_EVENT_DIRECT_MESSAGE = "DIRECT_MESSAGE"


class WebhookUpdateRequest(BaseModel):
    app_id: str
    secret: str = Field(repr=False)
    event_type: Literal["DIRECT_MESSAGE"] = "DIRECT_MESSAGE"
    callback_url: str


class WebhookConfigData(_Response):
    """What TikTok has on file for the app's direct-message webhook (update and list answer
    alike); no `callback_url`: none registered."""

    app_id: str | None = None
    event_type: str | None = None
    callback_url: str | None = None
