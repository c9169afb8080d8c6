"""The ASGI application: `uvicorn app.main:app`."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

from app.api import bench, health, metrics, webhook
from app.api.error_handlers import install_error_handlers
from app.core.config import Environment, Settings, get_settings
from app.core.http_headers import SecurityHeaders
from app.core.logging import configure_logging, get_logger
from app.core.redis_client import redis_from_url
from app.db.session import SessionFactory, create_engine, create_session_factory
from app.services.messaging.alerts import tiktok_alerts
from app.web import install_staff_web
from app.worker.producer import AsyncTaskProducer

log = get_logger(__name__)


async def _report_tiktok_trouble(
    settings: Settings, redis: aioredis.Redis, session_factory: SessionFactory
) -> None:
    """What /readyz would warn about, in the log at start-up too: a deployment that never
    connected its account, or whose TIKTOK_BUSINESS_ID is not the account events come for,
    says so before the first customer waits for an answer."""
    try:
        alerts = await asyncio.wait_for(tiktok_alerts(redis, settings, session_factory), 3.0)
    except Exception as error:
        # Start-up must not wait on this: /readyz asks again whenever it is called.
        log.info("tiktok_alerts_unreadable_at_start", error=repr(error))
        return
    for alert in alerts:
        log.warning("tiktok_alert", **alert.as_json())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.session_factory = create_session_factory(engine)
        app.state.redis = redis_from_url(
            settings.redis_url or "", socket_timeout=2.0, socket_connect_timeout=1.0
        )
        # Celery's broker is this Redis: tasks are published on the same pool.
        app.state.producer = AsyncTaskProducer(app.state.redis)
        # Everything loaded so far lives as long as the process: keep it out of the
        # garbage collector's full passes, which otherwise walk every imported module's
        # objects and stall requests for a tenth of a second at a time under load.
        gc.freeze()
        log.info("api_started", environment=settings.environment.value)
        await _report_tiktok_trouble(settings, app.state.redis, app.state.session_factory)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await engine.dispose()

    production = settings.environment is Environment.PRODUCTION
    app = FastAPI(
        title="Philia",
        summary="The TikTok DM bot of Philia Thrifts",
        version="0.1.0",
        lifespan=lifespan,
        # The schema maps every route for an attacker; the shop has no use for it live.
        docs_url=None if production else "/docs",
        redoc_url=None if production else "/redoc",
        openapi_url=None if production else "/openapi.json",
    )
    app.state.settings = settings
    app.add_middleware(SecurityHeaders, hsts=production)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(webhook.router)
    app.include_router(metrics.router)
    if settings.bench_endpoints:
        app.include_router(bench.router)
    install_staff_web(app)
    return app


app = create_app()
