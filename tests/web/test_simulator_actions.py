"""The simulator's extra actions (a sticker, a tapped suggested question, a reaction to the
shop's last message) played through a real TikTok sandbox, whose webhooks land in a
receiver standing in for the bot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from app.sandbox.server import BackgroundServer
from app.sandbox.tiktok import SandboxConfig, create_sandbox_app
from app.web.simulator import REACTIONS, SUGGESTED_QUESTIONS
from tests.web.conftest import running, web_settings

if TYPE_CHECKING:
    from tests.conftest import TestServices


def _receiver(bodies: list[bytes]) -> FastAPI:
    app = FastAPI()

    @app.post("/webhook/tiktok")
    async def webhook(request: Request) -> Response:
        bodies.append(await request.body())
        return Response(status_code=200)

    return app


@pytest.fixture(scope="module")
def received() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    with BackgroundServer(_receiver(bodies)) as server:
        yield server.url + "/webhook/tiktok", bodies


@pytest.fixture
def sandbox_url(
    services: TestServices, received: tuple[str, list[bytes]]
) -> Iterator[tuple[str, list[bytes]]]:
    webhook_url, bodies = received
    bodies.clear()
    config = SandboxConfig.from_settings(web_settings(services), webhook_url=webhook_url)
    with BackgroundServer(create_sandbox_app(config)) as server:
        yield server.url, bodies


def _content(body: bytes) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(json.loads(body)["content"])
    return content


async def test_page_offers_the_suggested_questions_and_reactions(
    services: TestServices,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    sandbox_url: tuple[str, list[bytes]],
) -> None:
    async with running(web_settings(services, sandbox_url=sandbox_url[0])) as client:
        page = (await client.get("/simulator")).text
    assert 'id="send-sticker"' in page
    for question in SUGGESTED_QUESTIONS:
        assert f'data-question="{question}"'.replace("'", "&#39;") in page
    for emoji in REACTIONS:
        assert f'data-emoji="{emoji}"' in page


async def test_sticker_question_and_reaction_reach_the_bot_in_tiktoks_shapes(
    services: TestServices,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    sandbox_url: tuple[str, list[bytes]],
) -> None:
    url, bodies = sandbox_url
    settings = web_settings(services, sandbox_url=url)
    async with running(settings) as client:
        first = await client.post(
            "/simulator/api/send", json={"user_id": "sim-1", "kind": "text", "text": "hi"}
        )
        assert first.status_code == 200
        # The shop answers through the API, as the bot would.
        async with httpx.AsyncClient(base_url=url) as api:
            sent = await api.post(
                "/open_api/v1.3/business/message/send/",
                headers={"Access-Token": settings.tiktok_access_token.get_secret_value()},
                json={
                    "business_id": settings.tiktok_business_id,
                    "recipient_type": "CONVERSATION",
                    "recipient": first.json()["conversation_id"],
                    "message_type": "TEXT",
                    "text": {"body": "Hey! 👋"},
                },
            )
            shop_message_id = sent.json()["data"]["message"]["message_id"]
        for action in (
            {"kind": "sticker"},
            {"kind": "question", "text": "Show me the menu"},
            {"kind": "reaction", "emoji": "❤️"},
        ):
            answer = await client.post("/simulator/api/send", json={"user_id": "sim-1", **action})
            assert answer.status_code == 200, answer.text
            assert answer.json()["bot_status"] == 200

    sticker, question, reaction = (_content(body) for body in bodies[1:])
    assert sticker["type"] == "sticker" and sticker["sticker"]["url"].startswith(url)
    assert question["type"] == "template"
    [element] = question["template"]["elements"]
    assert element["buttons"][0]["text"] == "Show me the menu"
    assert reaction["type"] == "reaction"
    assert reaction["reaction"][0]["emoji"] == "❤️"
    assert reaction["reaction"][0]["original_msg_id"] == shop_message_id


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "a", "kind": "question"},
        {"user_id": "a", "kind": "question", "text": "  "},
        {"user_id": "a", "kind": "reaction"},
        {"user_id": "a", "kind": "wave"},
    ],
)
async def test_extra_actions_need_what_they_need(
    services: TestServices,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    body: dict[str, str],
) -> None:
    async with running(web_settings(services, sandbox_url="http://127.0.0.1:9")) as client:
        assert (await client.post("/simulator/api/send", json=body)).status_code == 422
