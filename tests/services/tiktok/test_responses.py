"""Answers the sandbox never gives but a real TikTok (or a proxy in front of it) can:
TikTok's side is replaced by an httpx transport that returns them."""

from __future__ import annotations

import httpx
import pytest

from app.services.tiktok.errors import (
    TikTokError,
    TikTokPermanentError,
    TikTokTransientError,
    TransientKind,
)
from tests.services.tiktok.conftest import ClientFactory


def _answering(
    status: int, body: bytes, content_type: str = "application/json"
) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Access-Token"]  # never Bearer
        assert "Authorization" not in request.headers
        return httpx.Response(status, content=body, headers={"Content-Type": content_type})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


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
    status: int,
    body: bytes,
    expected: type[TikTokError],
    kind: TransientKind | None,
) -> None:
    client = make_client(http=_answering(status, body))

    with pytest.raises(expected) as caught:
        await client.send_text("conv", "hello")

    if kind is not None:
        assert isinstance(caught.value, TikTokTransientError)
        assert caught.value.kind is kind
    else:
        assert not isinstance(caught.value, TikTokTransientError)
