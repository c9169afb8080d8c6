"""`python -m app.cli tiktok ...`: the shop's TikTok connection, for a shop without a browser
on the server (the same as the Connect TikTok page).

    authorize-url        a link for the account owner to open (on any device)
    connect URL          finish with the address TikTok sent the owner back to
    webhook-register     point TikTok's direct-message webhook at PUBLIC_BASE_URL
    webhook-show         what TikTok has on file
    status               the account the bot speaks for, its tokens' lifetimes
    reconnected          tokens were replaced by hand: let waiting replies go out
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
import typer

from app.cli._runtime import settings_for_cli
from app.core.config import get_settings
from app.core.logging import configure_logging, get_logger
from app.db.session import create_engine, create_session_factory
from app.services.tiktok.connect import COMMAND_LINE, ConnectRefused, TikTokConnector
from app.services.tiktok.connection import mark_connected
from app.services.tiktok.errors import TikTokError
from app.services.tiktok.transport import build_http_client

app = typer.Typer(no_args_is_help=True, help="The shop's TikTok connection.")
log = get_logger(__name__)

T = TypeVar("T")


def _with_connector(work: Callable[[TikTokConnector], Awaitable[T]]) -> T:
    settings = settings_for_cli()
    if settings.redis_url is None:
        typer.echo("REDIS_URL is not set (make run starts an embedded Redis)", err=True)
        raise typer.Exit(2)

    async def _main() -> T:
        engine = create_engine(settings)
        redis = aioredis.Redis.from_url(settings.redis_url or "", socket_connect_timeout=2.0)
        try:
            async with build_http_client(settings) as http:
                connector = TikTokConnector(settings, redis, create_session_factory(engine), http)
                return await work(connector)
        finally:
            await redis.aclose()
            await engine.dispose()

    try:
        return asyncio.run(_main())
    except ConnectRefused as refused:
        typer.echo(f"tiktok: {refused.detail}", err=True)
        raise typer.Exit(1) from None
    except TikTokError as error:
        typer.echo(f"tiktok: TikTok answered: {error}", err=True)
        raise typer.Exit(1) from None
    except (aioredis.RedisError, OSError) as error:
        typer.echo(f"tiktok: a service is unreachable ({error})", err=True)
        raise typer.Exit(1) from None


@app.command("authorize-url")
def authorize_url() -> None:
    """Print a link for the account owner: it asks TikTok to let this bot read and send the
    shop's direct messages. After they allow it, TikTok opens this bot's callback, which
    completes the connection by itself (no login needed for a link made here); or pass the
    address TikTok opened to `connect`."""
    link = _with_connector(lambda connector: connector.start(COMMAND_LINE))
    typer.echo(link)


@app.command("connect")
def connect(
    redirected_to: Annotated[
        str,
        typer.Argument(help="the whole address TikTok sent the owner back to"),
    ],
) -> None:
    """Finish connecting with the address TikTok sent the owner back to (it carries
    `auth_code` and `state`)."""
    query = parse_qs(urlsplit(redirected_to).query)

    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    connected = _with_connector(
        lambda connector: connector.finish(
            state=first("state"),
            auth_code=first("auth_code") or first("code"),
            holder=COMMAND_LINE,
            error=first("error_description") or first("error"),
        )
    )
    typer.echo(f"connected TikTok account {connected.open_id}")
    granted = sorted(connected.scopes) if connected.scopes is not None else ["(not said)"]
    typer.echo(f"granted: {', '.join(granted)}")
    if connected.webhook is not None:
        typer.echo(f"webhook: {connected.webhook.callback_url}")
    if connected.webhook_error is not None:
        typer.echo(f"webhook not registered: {connected.webhook_error}", err=True)
    for note in connected.notes:
        typer.echo(f"note: {note}")


@app.command("webhook-register")
def webhook_register() -> None:
    """Point TikTok's direct-message webhook for this app at PUBLIC_BASE_URL/webhook/tiktok."""
    registered = _with_connector(lambda connector: connector.register_webhook())
    typer.echo(f"webhook: {registered.callback_url}")


@app.command("webhook-show")
def webhook_show() -> None:
    """What TikTok has on file for the app's direct-message webhook."""
    on_file = _with_connector(lambda connector: connector.webhook_on_file())
    typer.echo(f"webhook: {on_file.callback_url or '(none registered)'}")


@app.command("status")
def status() -> None:
    """The account the bot speaks for and how long its authorisation lasts."""
    current = _with_connector(lambda connector: connector.status())
    typer.echo(f"business id: {current.business_id or '(none: not connected)'}")
    typer.echo(f"from: {current.source or '-'}")
    if current.connected_at is not None:
        typer.echo(f"connected at: {current.connected_at:%Y-%m-%d %H:%M} UTC")
    if current.scope:
        typer.echo(f"granted: {current.scope}")
    if current.access_expires_at is not None:
        typer.echo(f"access token until: {current.access_expires_at:%Y-%m-%d %H:%M} UTC")
    if current.refresh_expires_at is not None:
        typer.echo(f"authorisation until: {current.refresh_expires_at:%Y-%m-%d} UTC")
    if current.disconnected_since is not None:
        typer.echo(f"DISCONNECTED since {current.disconnected_since:%Y-%m-%d %H:%M} UTC")
    typer.echo(f"redirect uri: {current.redirect_uri}")
    typer.echo(f"webhook url: {current.callback_url}")


@app.command("reconnected")
def reconnected() -> None:
    """Say the shop authorised the app again (new tokens are in the environment): replies
    waiting in the outbox go out on the next sweep. Connecting through the page or
    `connect` does this by itself."""
    settings = get_settings()
    configure_logging(settings)
    if settings.redis_url is None:
        typer.echo("REDIS_URL is not set", err=True)
        raise typer.Exit(2)

    async def _clear() -> bool:
        client = aioredis.Redis.from_url(settings.redis_url or "", socket_connect_timeout=2.0)
        try:
            return await mark_connected(client)
        finally:
            await client.aclose()

    try:
        was_disconnected = asyncio.run(_clear())
    except (aioredis.RedisError, OSError) as error:
        typer.echo(f"tiktok: Redis unreachable ({error})", err=True)
        raise typer.Exit(1) from None
    log.info("tiktok_marked_connected", was_disconnected=was_disconnected)
    if was_disconnected:
        typer.echo("TikTok marked connected: waiting replies go out on the next outbox sweep")
    else:
        typer.echo("TikTok was not marked disconnected: nothing to do")
