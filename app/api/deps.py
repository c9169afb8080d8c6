from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.db.session import SessionFactory

# These are `async def` although they only read app.state: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per request for nothing.


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _redis(request: Request) -> aioredis.Redis:
    client: aioredis.Redis = request.app.state.redis
    return client


async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _session_factory(request: Request) -> SessionFactory:
    factory: SessionFactory = request.app.state.session_factory
    return factory


SettingsDep = Annotated[Settings, Depends(_settings)]
RedisDep = Annotated[aioredis.Redis, Depends(_redis)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
SessionFactoryDep = Annotated[SessionFactory, Depends(_session_factory)]
