"""U+0000 from outside: PostgreSQL refuses it in text and jsonb, so wherever one can reach
a query it must be dropped or refused first, never turned into a database error (a 500
for staff, a DM retried until it is dead-lettered and never answered for a customer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import Customer, Message
from app.services.messaging.inbound import Outcome
from app.services.staff.auth import InvalidStaffInput, validate_email
from tests.factories import text_message
from tests.services.pipeline.conftest import (
    Harness,
    make_harness,  # noqa: F401  (a fixture, used by name)
)
from tests.web.conftest import (
    EMAIL,
    add_conversation,
    add_staff,
    login,
    page_csrf,
    running,
    web_settings,
)

if TYPE_CHECKING:
    from tests.conftest import TestServices


async def test_a_dm_with_nul_characters_is_recorded_and_answered(
    make_harness: Callable[..., Harness],  # noqa: F811
    committed_db: AsyncEngine,
) -> None:
    harness = make_harness()
    body = text_message(
        "hi\x00 is PT-0001\x00 still available?",
        message_id="nul\x00-1",
        user_id="cust\x00-9",
        conversation_id="conv\x00-9",
    )
    assert await harness.receive(body) is Outcome.HANDLED
    await harness.deliver_queued()
    assert len(harness.sender.sent) == 1
    async with AsyncSession(committed_db) as session:
        [message] = (
            await session.scalars(select(Message).where(Message.direction == "inbound"))
        ).all()
        [customer] = (await session.scalars(select(Customer))).all()
    assert message.text == "hi is PT-0001 still available?"
    assert message.event_id == "nul-1"
    assert "\x00" not in str(message.payload)
    assert customer.tiktok_user_id == "cust-9"
    # TikTok delivering it again is recognised as the same event.
    assert await harness.receive(body) is Outcome.DUPLICATE


@pytest.fixture
async def client(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    await add_staff(committed_db)
    async with running(web_settings(services)) as web:
        yield web


async def test_a_login_email_with_a_nul_is_just_a_wrong_login(client: httpx.AsyncClient) -> None:
    response = await login(client, email=EMAIL + "\x00")
    assert response.status_code == 401
    assert "Wrong email or password." in response.text
    assert (await login(client)).status_code == 303


async def test_a_staff_reply_with_a_nul_is_refused_with_the_reason(
    client: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    thread = await add_conversation(committed_db, redis_client, "nul")
    assert (await login(client)).status_code == 303
    csrf = await page_csrf(client)
    path = f"/inbox/{thread.conversation_id}/reply"

    page = await client.post(path, data={"csrf_token": csrf, "text": "on its way\x00"})
    assert page.status_code == 400
    assert "NUL character" in page.text

    script = await client.post(
        path, data={"text": "on\x00 its way"}, headers={"X-CSRF-Token": csrf, "HX-Request": "1"}
    )
    assert script.status_code == 400
    assert script.json()["error"] == "invalid"
    # Nothing was queued: the conversation still has only the customer's message.
    async with AsyncSession(committed_db) as session:
        texts = (await session.scalars(select(Message.text))).all()
    assert texts == ["hello, is PT-0001 still available?"]


def test_a_new_account_email_with_a_nul_is_refused() -> None:
    with pytest.raises(InvalidStaffInput):
        validate_email("ana\x00@philia.test")
