"""The embedded path: a machine with no DATABASE_URL/REDIS_URL gets real servers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.embedded import EmbeddedServices
from app.db.migrate import upgrade_to_head


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return set(result.scalars())
    finally:
        await engine.dispose()


def test_embedded_postgres_and_redis_are_real_servers(tmp_path: Path) -> None:
    services = EmbeddedServices(tmp_path)
    services.start(need_postgres=True, need_redis=True)
    try:
        env: dict[str, str] = {}
        services.export_environment(env)
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["REDIS_URL"].startswith("redis://127.0.0.1:")
        upgrade_to_head(env["DATABASE_URL"])
        assert {"items", "holds", "outbox", "messages"} <= asyncio.run(_tables(env["DATABASE_URL"]))
        client = redis.Redis.from_url(env["REDIS_URL"])
        assert client.ping()
        assert client.info("server")["redis_version"].startswith(("6.", "7."))
        client.close()
    finally:
        services.stop()
    # data survives a restart in the same folder
    again = EmbeddedServices(tmp_path)
    again.start(need_postgres=True, need_redis=False)
    try:
        assert again.postgres is not None
        assert "items" in asyncio.run(_tables(again.postgres.url))
    finally:
        again.stop()


def test_only_missing_services_are_started(tmp_path: Path) -> None:
    services = EmbeddedServices(tmp_path)
    services.start(need_postgres=False, need_redis=True)
    try:
        env = {"DATABASE_URL": "postgresql://elsewhere/db"}
        services.export_environment(env)
        assert env["DATABASE_URL"] == "postgresql://elsewhere/db"
        assert services.postgres is None and services.redis is not None
    finally:
        services.stop()


def test_embedded_services_restart_with_their_data(tmp_path: Path) -> None:
    """The chaos suite restarts both: the queue (Redis, append-only) and the database must
    come back with what they held, at the same address."""
    services = EmbeddedServices(tmp_path)
    services.start(need_postgres=True, need_redis=True)
    try:
        assert services.redis is not None and services.postgres is not None
        redis_url, database_url = services.redis.url, services.postgres.url
        client = redis.Redis.from_url(redis_url)
        client.rpush("queued", "event-1", "event-2")
        services.redis.restart(downtime_seconds=0.2)
        assert services.redis.url == redis_url
        assert redis.Redis.from_url(redis_url).lrange("queued", 0, -1) == [b"event-1", b"event-2"]

        upgrade_to_head(database_url)
        services.postgres.restart(downtime_seconds=0.2)
        assert services.postgres.url == database_url
        assert "outbox" in asyncio.run(_tables(database_url))
    finally:
        services.stop()
    # Stopping also stops the postmaster that restart() started, not only pgserver's own.
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()
