"""The app-level calls of connecting a shop's account (tiktok-api.md, "Connecting an
account"): the authorisation link, the exchange of its code for tokens, and the
direct-message webhook TikTok has on file for the app.

These authenticate with the app's client key and secret, not an access token, and run once
at set-up: they take no slot of the send rate and are not retried (a person is watching).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import aiohttp

from app.core.clock import utc_now
from app.core.config import Settings
from app.core.logging import get_logger
from app.services.tiktok.api import (
    WEBHOOK_EVENT_DIRECT_MESSAGE,
    AuthorizationCodeRequest,
    AuthorizedTokenData,
    Envelope,
    WebhookConfigData,
    WebhookUpdateRequest,
)
from app.services.tiktok.tokens import TokenPair
from app.services.tiktok.transport import Answer, TikTokTransport, data_as

log = get_logger(__name__)

TOKEN_PATH = "/tt_user/oauth2/token/"
WEBHOOK_UPDATE_PATH = "/business/webhook/update/"
WEBHOOK_LIST_PATH = "/business/webhook/list/"

# What the shop owner is asked to grant: reading and sending messages, and who they are.
REQUESTED_SCOPES = (
    "user.info.basic",
    "message.list.read",
    "message.list.send",
    "message.list.manage",
)
# Without these the bot can neither read nor answer: a grant lacking one is refused.
REQUIRED_SCOPES = frozenset({"message.list.read", "message.list.send", "message.list.manage"})


@dataclass(frozen=True)
class AuthorizedAccount:
    tokens: TokenPair
    open_id: str
    scopes: frozenset[str] | None  # None: TikTok did not say


class TikTokAppApi:
    def __init__(self, settings: Settings, http: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._transport = TikTokTransport(settings, http)

    def authorize_link(self, *, state: str, redirect_uri: str) -> str:
        """The page where the shop owner grants the app its scopes; TikTok sends them back
        to `redirect_uri` with `auth_code` (or `code`) and the same `state`."""
        query = urlencode(
            {
                "app_id": self._settings.tiktok_client_key,
                "redirect_uri": redirect_uri,
                "state": state,
                "scope": ",".join(REQUESTED_SCOPES),
            }
        )
        return f"{self._settings.tiktok_authorize_url}?{query}"

    async def exchange_code(self, auth_code: str, *, redirect_uri: str) -> AuthorizedAccount:
        body = AuthorizationCodeRequest(
            client_id=self._settings.tiktok_client_key,
            client_secret=self._settings.tiktok_client_secret.get_secret_value(),
            auth_code=auth_code,
            redirect_uri=redirect_uri,
        )
        answer = await self._transport.exchange(
            "POST", TOKEN_PATH, token=None, json=body.model_dump(mode="json")
        )
        data = data_as(AuthorizedTokenData, _succeeded(answer, TOKEN_PATH))
        now = utc_now()
        return AuthorizedAccount(
            tokens=TokenPair(
                access_token=data.access_token,
                access_expires_at=now + timedelta(seconds=data.expires_in),
                refresh_token=data.refresh_token,
                refresh_expires_at=now + timedelta(seconds=data.refresh_token_expires_in),
            ),
            open_id=data.open_id,
            scopes=data.scopes,
        )

    async def register_webhook(self, callback_url: str) -> WebhookConfigData:
        """Point the app's direct-message events at `callback_url` (replaces any other)."""
        body = WebhookUpdateRequest(
            app_id=self._settings.tiktok_client_key,
            secret=self._settings.tiktok_client_secret.get_secret_value(),
            callback_url=callback_url,
        )
        answer = await self._transport.exchange(
            "POST", WEBHOOK_UPDATE_PATH, token=None, json=body.model_dump(mode="json")
        )
        return data_as(WebhookConfigData, _succeeded(answer, WEBHOOK_UPDATE_PATH))

    async def webhook_on_file(self) -> WebhookConfigData:
        answer = await self._transport.exchange(
            "GET",
            WEBHOOK_LIST_PATH,
            token=None,
            params={
                "app_id": self._settings.tiktok_client_key,
                "secret": self._settings.tiktok_client_secret.get_secret_value(),
                "event_type": WEBHOOK_EVENT_DIRECT_MESSAGE,
            },
        )
        return data_as(WebhookConfigData, _succeeded(answer, WEBHOOK_LIST_PATH))


def _succeeded(answer: Answer, path: str) -> Envelope:
    envelope = answer.envelope
    error = answer.refusal()
    if error is not None:
        log.warning(
            "tiktok_app_call_refused",
            path=path,
            code=envelope.code,
            tiktok_message=envelope.message,
            request_id=envelope.request_id,
        )
        raise error
    return envelope
