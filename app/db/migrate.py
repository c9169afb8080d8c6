"""Programmatic Alembic: the prestart step, the test fixtures and the CLI share it."""

from __future__ import annotations

import asyncio
import time
import uuid

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.config import PROJECT_ROOT


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade_to_head(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


async def wait_for_database(database_url: str, timeout_seconds: float = 60.0) -> None:
    """Block until PostgreSQL answers: containers start the app and the database together."""
    deadline = time.monotonic() + timeout_seconds
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return
        except Exception as error:  # any connection failure means "not yet"
            last_error = error
            await asyncio.sleep(0.5)
        finally:
            await engine.dispose()
    raise TimeoutError(f"database not reachable after {timeout_seconds:.0f} s: {last_error}")


async def _admin(database_url: str, statement: str) -> None:
    engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def create_scratch_database(server_url: str, prefix: str) -> str:
    """A new, empty database on the server of `server_url`; returns its URL.

    Tests and benchmarks get a database of their own, so parallel runs and the shop's own
    data never meet."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    await _admin(
        url.set(database="postgres").render_as_string(hide_password=False),
        f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)',
    )


async def truncate_all_tables(engine: AsyncEngine) -> None:
    """Empty every table but Alembic's (a fresh shop for the scenario runner)."""
    async with engine.begin() as connection:
        # A lock still held by a stuck worker must fail the run, not hang it.
        await connection.execute(text("SET LOCAL lock_timeout = '10s'"))
        tables = (
            await connection.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "AND tablename <> 'alembic_version'"
                )
            )
        ).scalars()
        quote = connection.dialect.identifier_preparer.quote
        names = ", ".join(quote(name) for name in tables)
        if names:
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
