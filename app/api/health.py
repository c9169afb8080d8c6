from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import EngineDep, RedisDep

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive; says nothing about its dependencies."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
async def readyz(engine: EngineDep, redis: RedisDep) -> JSONResponse:
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
    return JSONResponse({"status": "ready", "failing": []})
