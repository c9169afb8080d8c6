"""`python -m app.cli tiktok ...`: the shop's TikTok connection."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
import typer

from app.core.config import get_settings
from app.core.logging import configure_logging, get_logger
from app.services.tiktok.connection import mark_connected

app = typer.Typer(no_args_is_help=True, help="The shop's TikTok connection.")
log = get_logger(__name__)


@app.command("reconnected")
def reconnected() -> None:
    """Say the shop authorised the app again (new tokens are in the environment): replies
    waiting in the outbox go out on the next sweep."""
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
