from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import EngineDep, RedisDep, SessionFactoryDep, SettingsDep
from app.core.logging import get_logger
from app.services.messaging.alerts import tiktok_alerts

log = get_logger(__name__)

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive; says nothing about its dependencies."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
async def readyz(
    engine: EngineDep, redis: RedisDep, settings: SettingsDep, sessions: SessionFactoryDep
) -> JSONResponse:
    """503 when PostgreSQL or Redis is unreachable. What is wrong with TikTok (disconnected,
    events for another account) is a warning in a 200: the API must stay in the load
    balancer, since webhooks must still be accepted and replies wait in the outbox."""

    async def postgres_ok() -> bool:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True

    async def redis_ok() -> bool:
        return bool(await redis.ping())

    checks = {"postgres": postgres_ok, "redis": redis_ok}
    results = await asyncio.gather(
        *(asyncio.wait_for(check(), _CHECK_TIMEOUT_SECONDS) for check in checks.values()),
        return_exceptions=True,
    )
    failing = [name for name, result in zip(checks, results, strict=True) if result is not True]
    if failing:
        return JSONResponse({"status": "unavailable", "failing": failing}, status_code=503)
    try:
        alerts = await asyncio.wait_for(
            tiktok_alerts(redis, settings, sessions), _CHECK_TIMEOUT_SECONDS
        )
    except Exception as error:
        # Redis answered the ping a moment ago; a warning that cannot be read is no outage.
        log.warning("readiness_warnings_unreadable", error=repr(error))
        alerts = []
    return JSONResponse(
        {"status": "ready", "failing": [], "warnings": [alert.as_json() for alert in alerts]}
    )
