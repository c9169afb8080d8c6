"""The TikTok sandbox over real HTTP, and a tiny bot stand-in that checks the signatures of
the webhooks the sandbox plays."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from app.sandbox.control import SandboxControl
from app.sandbox.server import BackgroundServer
from app.sandbox.tiktok import SandboxConfig, create_sandbox_app
from app.services.tiktok.signature import InvalidSignature, verify_signature

CLIENT_KEY = "sandbox-test-client"
CLIENT_SECRET = "sandbox-test-secret"
BUSINESS_ID = "sandbox-test-business"
ACCESS_TOKEN = "act.initial"
REFRESH_TOKEN = "rft.initial"


@dataclass
class Receiver:
    """What the bot's webhook saw; `status` is what it answers."""

    bodies: list[bytes] = field(default_factory=list)
    signature_headers: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    status: int = 200

    def clear(self) -> None:
        self.bodies.clear()
        self.signature_headers.clear()
        self.rejected.clear()
        self.status = 200


def _receiver_app(receiver: Receiver) -> FastAPI:
    app = FastAPI()

    @app.post("/webhook/tiktok")
    async def webhook(request: Request) -> Response:
        body = await request.body()
        header = request.headers.get("TikTok-Signature")
        try:
            verify_signature(CLIENT_SECRET, header, body, tolerance_seconds=60)
        except InvalidSignature as error:
            receiver.rejected.append(error.problem.value)
            return Response(status_code=401)
        receiver.bodies.append(body)
        receiver.signature_headers.append(header or "")
        return Response(status_code=receiver.status)

    return app


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[tuple[BackgroundServer, Receiver]]:
    receiver = Receiver()
    with BackgroundServer(_receiver_app(receiver)) as server:
        yield server, receiver


@pytest.fixture
def receiver(receiver_server: tuple[BackgroundServer, Receiver]) -> Receiver:
    receiver_server[1].clear()
    return receiver_server[1]


@pytest.fixture(scope="session")
def sandbox_server(
    receiver_server: tuple[BackgroundServer, Receiver],
) -> Iterator[BackgroundServer]:
    config = SandboxConfig(
        client_key=CLIENT_KEY,
        client_secret=CLIENT_SECRET,
        business_id=BUSINESS_ID,
        access_token=ACCESS_TOKEN,
        refresh_token=REFRESH_TOKEN,
        webhook_url=receiver_server[0].url + "/webhook/tiktok",
    )
    with BackgroundServer(create_sandbox_app(config)) as server:
        yield server


@pytest.fixture
async def control(sandbox_server: BackgroundServer) -> AsyncIterator[SandboxControl]:
    async with SandboxControl(sandbox_server.url) as control:
        await control.reset()
        yield control


@pytest.fixture
async def api(sandbox_server: BackgroundServer) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP to the TikTok side, independent of the bot's client."""
    async with httpx.AsyncClient(
        base_url=sandbox_server.url + "/open_api/v1.3", timeout=10.0
    ) as client:
        yield client
