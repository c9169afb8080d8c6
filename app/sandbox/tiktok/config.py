"""How a sandbox is set up. SandboxConfig is fixed when the app is built: the app's keys,
the business account, its tokens and how TikTok behaves. ConfigView is the part the
control API may change while it runs (`PATCH /_sandbox/config`); a reset restores it
from the SandboxConfig."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.core.config import Settings


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
    # Answer a send with the message id at `data.message_id` instead of the documented
    # `data.message.message_id`, as one production source saw TikTok do.
    flat_send_answer: bool = False
    # Answer 40100 beyond this many API calls in any one second; None: no limit.
    rate_limit_per_second: int | None = None
    webhook_timeout_seconds: float = 10.0
    # TikTok delivers a webhook again when the bot does not answer 2xx (for up to 72 h);
    # the sandbox keeps trying for this long. 0: one attempt only.
    webhook_redelivery_seconds: float = 0.0
    # A shop with TikTok's welcome message switched on: every new chat starts with its
    # WELCOME_MESSAGE automation echo, which must not read as a person taking over.
    welcome_message: str | None = None

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


class ConfigUpdate(BaseModel):
    webhook_url: str | None = None
    echo_sends: bool | None = None
    rate_limit_per_second: int | None = Field(default=None, ge=1)
    webhook_redelivery_seconds: float | None = Field(default=None, ge=0, le=3600)
    welcome_message: str | None = Field(default=None, min_length=1, max_length=6000)


class ConfigView(BaseModel):
    webhook_url: str | None
    echo_sends: bool
    rate_limit_per_second: int | None
    webhook_redelivery_seconds: float = 0.0
    welcome_message: str | None = None
