"""Answers the sandbox never gives but a real TikTok (or a proxy in front of it) can:
TikTok's side is replaced by a local HTTP server that returns them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from app.core.config import Settings
from app.sandbox.server import free_port
from app.services.tiktok.errors import (
    TikTokError,
    TikTokPermanentError,
    TikTokTransientError,
    TransientKind,
)
from tests.services.tiktok.conftest import ClientFactory


@asynccontextmanager
async def answering(
    status: int, body: bytes, content_type: str = "application/json"
) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A TikTok that answers every request so; its base URL, and the headers it was sent."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(status=status, body=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("status", "body", "expected", "kind"),
    [
        (429, b"", TikTokTransientError, TransientKind.RATE_LIMITED),
        (
            429,
            b'{"code": 40100, "message": "slow"}',
            TikTokTransientError,
            TransientKind.RATE_LIMITED,
        ),
        (200, b"<html>gateway</html>", TikTokTransientError, TransientKind.INVALID_RESPONSE),
        (502, b'{"code": 0}', TikTokTransientError, TransientKind.SERVER_ERROR),
        (200, b'{"code": 40002, "message": "bad", "data": []}', TikTokPermanentError, None),
        (200, b'{"code": 0, "message": "OK", "data": {}}', TikTokPermanentError, None),
        (403, b"forbidden", TikTokPermanentError, None),
        (400, b'{"code": 0, "message": "OK"}', TikTokPermanentError, None),
    ],
    ids=[
        "429-bare",
        "429-envelope",
        "200-html",
        "502",
        "error-with-list-data",
        "ok-without-message-id",
        "403-bare",
        "400-code-0",
    ],
)
async def test_unusual_answers_are_classified(
    make_client: ClientFactory,
    tiktok_settings: Settings,
    status: int,
    body: bytes,
    expected: type[TikTokError],
    kind: TransientKind | None,
) -> None:
    async with answering(status, body) as (url, seen):
        client = make_client(tiktok_settings.model_copy(update={"tiktok_api_base": url}))
        with pytest.raises(expected) as caught:
            await client.send_text("conv", "hello")

    (headers,) = seen
    assert headers["Access-Token"]  # never Bearer
    assert "Authorization" not in headers

    if kind is not None:
        assert isinstance(caught.value, TikTokTransientError)
        assert caught.value.kind is kind
    else:
        assert not isinstance(caught.value, TikTokTransientError)
