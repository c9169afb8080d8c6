"""Connecting the shop's TikTok account, once, from the staff page or the command line.

1. `start`: an authorisation link with a fresh `state`, remembered in Redis with who asked
   for it (a member of staff, or the command line) for `STATE_TTL`.
2. The owner grants the app its scopes at TikTok, which sends them back to the callback
   with `auth_code` (or `code`) and the same `state`.
3. `finish`: the state is used up (once, by whoever asked for it), the code exchanged for
   tokens, the grant checked for the scopes the bot needs; the tokens are stored encrypted
   with the account's open_id, which becomes the business id; a disconnection flag is
   cleared; and the app's webhook is pointed at this bot.

A refused or failed connection leaves the previous one as it was.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import LockError

from app.core import redis_keys
from app.core.config import Environment, Settings
from app.core.errors import PhiliaError
from app.core.logging import get_logger
from app.db.repositories.tiktok_credentials import TikTokCredentialRepository
from app.db.session import SessionFactory, transaction
from app.services.tiktok.account import BusinessAccount
from app.services.tiktok.api import WebhookConfigData
from app.services.tiktok.app_api import REQUIRED_SCOPES, TikTokAppApi
from app.services.tiktok.connection import disconnected_since, mark_connected
from app.services.tiktok.errors import TikTokError
from app.services.tiktok.tokens import AccessTokenCache, DbTokenStore, refresh_lock

log = get_logger(__name__)

CALLBACK_PATH = "/connect/tiktok/callback"
WEBHOOK_PATH = "/webhook/tiktok"
STATE_TTL = timedelta(minutes=30)
COMMAND_LINE = "cli"


def staff_holder(staff_id: int) -> str:
    return f"staff:{staff_id}"


class ConnectRefused(PhiliaError):
    """The connection cannot be made as asked; the detail says why and what to do."""

    status_code = 400
    code = "tiktok_connect_refused"


@dataclass(frozen=True)
class Connected:
    open_id: str
    scopes: frozenset[str] | None
    access_expires_at: datetime | None
    webhook: WebhookConfigData | None
    webhook_error: str | None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ConnectionStatus:
    business_id: str | None
    # "connected": through OAuth; "configured": TIKTOK_BUSINESS_ID and hand-put tokens.
    source: str | None
    open_id: str | None
    scope: str | None
    connected_at: datetime | None
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None
    disconnected_since: datetime | None
    callback_url: str
    redirect_uri: str


@dataclass
class TikTokConnector:
    settings: Settings
    redis: aioredis.Redis
    session_factory: SessionFactory
    http: aiohttp.ClientSession

    def __post_init__(self) -> None:
        self.api = TikTokAppApi(self.settings, self.http)
        self.account = BusinessAccount(self.settings, self.redis, self.session_factory)

    @property
    def redirect_uri(self) -> str:
        return self.settings.public_base_url.rstrip("/") + CALLBACK_PATH

    @property
    def callback_url(self) -> str:
        return self.settings.public_base_url.rstrip("/") + WEBHOOK_PATH

    def _check_public_url(self) -> None:
        # TikTok must reach the redirect and the webhook: a loopback address would have the
        # owner authorise into nowhere and register a webhook nothing can call.
        if self.settings.environment is Environment.PRODUCTION and not (
            self.settings.public_base_url.startswith("https://")
        ):
            raise ConnectRefused(
                "PUBLIC_BASE_URL must be this bot's public https:// address before "
                f"connecting TikTok (it is {self.settings.public_base_url})"
            )

    async def start(self, holder: str) -> str:
        """A fresh authorisation link for `holder` (a member of staff, or the CLI)."""
        self._check_public_url()
        state = secrets.token_urlsafe(32)
        await self.redis.set(
            redis_keys.tiktok_oauth_state(state),
            json.dumps({"holder": holder, "redirect_uri": self.redirect_uri}),
            ex=int(STATE_TTL.total_seconds()),
        )
        log.info("tiktok_connect_started", holder=holder)
        return self.api.authorize_link(state=state, redirect_uri=self.redirect_uri)

    async def holder_of(self, state: str) -> str | None:
        """Who asked for the link with this state; None when there is no such link."""
        raw = await self.redis.get(redis_keys.tiktok_oauth_state(state))
        return None if raw is None else str(json.loads(raw)["holder"])

    async def finish(
        self,
        *,
        state: str | None,
        auth_code: str | None,
        holder: str | None,
        error: str | None = None,
    ) -> Connected:
        """Complete a connection from what TikTok put on the callback URL."""
        if not state:
            raise ConnectRefused("the link TikTok sent back has no state: start again")
        key = redis_keys.tiktok_oauth_state(state)
        raw = await self.redis.get(key)
        if raw is None:
            log.warning("tiktok_connect_state_unknown")
            raise ConnectRefused(
                "this authorisation link is unknown, was already used or has expired: "
                "start again from Connect TikTok"
            )
        asked = json.loads(raw)
        if asked["holder"] != COMMAND_LINE and asked["holder"] != holder:
            # Left in place: someone else opening the link must not use it up for the
            # person who asked for it.
            log.warning("tiktok_connect_state_of_someone_else", holder=holder)
            raise ConnectRefused(
                "this authorisation was started by someone else: start again yourself"
            )
        if not await self.redis.delete(key):
            raise ConnectRefused("this authorisation link was already used: start again")
        if error:
            raise ConnectRefused(f"TikTok did not authorise the app: {error}")
        if not auth_code:
            raise ConnectRefused("the link TikTok sent back has no auth_code: start again")
        try:
            granted = await self.api.exchange_code(auth_code, redirect_uri=asked["redirect_uri"])
        except TikTokError as failure:
            log.warning("tiktok_connect_exchange_failed", error=str(failure))
            raise ConnectRefused(
                f"TikTok could not complete the authorisation ({failure}): start again"
            ) from None
        missing = REQUIRED_SCOPES - (granted.scopes or frozenset())
        if granted.scopes is not None and missing:
            raise ConnectRefused(
                "TikTok granted the app too little: "
                f"{', '.join(sorted(missing))} missing; connect again and allow them all"
            )
        lock = refresh_lock(self.redis, self.settings)
        if not await lock.acquire():
            raise ConnectRefused("a token refresh is running right now: start again in a minute")
        try:
            # Under the refresh lock: a refresh of the old pair cannot land after this, and
            # a pair whose saving failed earlier is the old account's, never to be restored.
            await DbTokenStore.from_settings(self.session_factory, self.settings).connect(
                granted.tokens,
                open_id=granted.open_id,
                scope=None if granted.scopes is None else ",".join(sorted(granted.scopes)),
            )
            await self.redis.delete(redis_keys.TIKTOK_UNSAVED_TOKENS)
            # Every process reads the new pair and account from here on.
            await AccessTokenCache(self.redis).clear()
            await self.account.remember(granted.open_id)
        finally:
            try:
                await lock.release()
            except LockError:
                log.warning("tiktok_connect_lock_expired_while_held")
        was_disconnected = await mark_connected(self.redis)
        notes: list[str] = []
        configured = self.settings.tiktok_configured_business_id
        if configured and configured != granted.open_id:
            notes.append(
                f"TIKTOK_BUSINESS_ID is {configured} but the connected account is "
                f"{granted.open_id}: the connected account is used; remove the setting"
            )
        log.info(
            "tiktok_connected",
            open_id=granted.open_id,
            scopes=sorted(granted.scopes or ()),
            was_disconnected=was_disconnected,
        )
        webhook: WebhookConfigData | None = None
        webhook_error: str | None = None
        try:
            webhook = await self.register_webhook()
        except (TikTokError, ConnectRefused) as failure:
            # The account is connected all the same; registering again is one click away.
            webhook_error = str(failure)
            log.warning("tiktok_webhook_registration_failed", error=webhook_error)
        return Connected(
            open_id=granted.open_id,
            scopes=granted.scopes,
            access_expires_at=granted.tokens.access_expires_at,
            webhook=webhook,
            webhook_error=webhook_error,
            notes=notes,
        )

    async def register_webhook(self) -> WebhookConfigData:
        self._check_public_url()
        registered = await self.api.register_webhook(self.callback_url)
        log.info("tiktok_webhook_registered", callback_url=registered.callback_url)
        return registered

    async def webhook_on_file(self) -> WebhookConfigData:
        return await self.api.webhook_on_file()

    async def status(self) -> ConnectionStatus:
        async with transaction(self.session_factory) as session:
            row = await TikTokCredentialRepository(session).get()
        business_id = await self.account.business_id()
        open_id = row.open_id if row is not None else None
        source = "connected" if open_id else ("configured" if business_id else None)
        return ConnectionStatus(
            business_id=business_id,
            source=source,
            open_id=open_id,
            scope=row.scope if row is not None else None,
            connected_at=row.connected_at if row is not None else None,
            access_expires_at=row.access_expires_at if row is not None else None,
            refresh_expires_at=row.refresh_expires_at if row is not None else None,
            disconnected_since=await disconnected_since(self.redis),
            callback_url=self.callback_url,
            redirect_uri=self.redirect_uri,
        )
