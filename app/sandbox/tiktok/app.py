"""The sandbox application: one SandboxState, one WebhookSender, and the routes of
TikTok's Business API, of its authorisation page and of the `/_sandbox` control API
(players included)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.sandbox.tiktok.business_api import business_api_router
from app.sandbox.tiktok.config import SandboxConfig
from app.sandbox.tiktok.control_api import control_api_router
from app.sandbox.tiktok.players import players_router
from app.sandbox.tiktok.portal import portal_router
from app.sandbox.tiktok.state import SandboxState
from app.sandbox.tiktok.webhooks import WebhookSender


def create_sandbox_app(config: SandboxConfig) -> FastAPI:
    state = SandboxState(config=config)
    webhooks = WebhookSender(state)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with webhooks.running():
            yield

    app = FastAPI(title="TikTok Business API sandbox", lifespan=lifespan, docs_url="/_sandbox/docs")
    app.state.sandbox = state
    app.include_router(business_api_router(state, webhooks))
    app.include_router(control_api_router(state))
    app.include_router(players_router(state, webhooks))
    app.include_router(portal_router(state))
    return app
