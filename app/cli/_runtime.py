"""What every CLI command needs: settings, logging, and one database transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
from app.db.session import create_engine, create_session_factory, transaction

T = TypeVar("T")


def settings_for_cli() -> Settings:
    settings = get_settings()
    configure_logging(settings)
    if settings.database_url is None:
        typer.echo("DATABASE_URL is not set (make run starts an embedded database)", err=True)
        raise typer.Exit(2)
    return settings


def run_in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    settings = settings_for_cli()

    async def _main() -> T:
        engine = create_engine(settings)
        try:
            async with transaction(create_session_factory(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(_main())


def run_with_shop(
    work: Callable[[AsyncSession, Settings, aioredis.Redis], Awaitable[T]],
) -> T:
    """As `run_in_transaction`, for work that also reads the reply windows in Redis."""
    settings = settings_for_cli()
    if settings.redis_url is None:
        typer.echo("REDIS_URL is not set (make run starts an embedded Redis)", err=True)
        raise typer.Exit(2)
    redis_url = settings.redis_url

    async def _main() -> T:
        engine = create_engine(settings)
        redis = aioredis.Redis.from_url(redis_url)
        try:
            async with transaction(create_session_factory(engine)) as session:
                return await work(session, settings, redis)
        finally:
            await redis.aclose()
            await engine.dispose()

    return asyncio.run(_main())
