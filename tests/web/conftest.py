"""The staff web in-process (httpx over ASGI, the real lifespan), on the test PostgreSQL
and Redis. Rows are committed (the app opens its own connections) and truncated after."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pytest
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.core.config import Settings, get_settings
from app.db.models import Customer, Direction, Item, Message, MessageStatus, StaffUser
from app.main import create_app
from app.services.shop import place_hold
from app.services.staff.auth import Passwords, create_account
from tests.factories import add_conversation_for, add_customer

if TYPE_CHECKING:
    from tests.conftest import TestServices

# The same argon2id, with parameters low enough for dozens of logins per test run
# (the library default takes over half a second per verification on CI machines).
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
EMAIL = "ana@philia.test"
PASSWORD = "correct horse battery"
BASE_URL = "http://philia.test"
# Settings of a production deployment (strong enough for the production checks).
PRODUCTION: dict[str, object] = {
    "environment": "production",
    "tiktok_client_key": "real-client-key",
    "tiktok_client_secret": "Zq8vL2mN4pR7sT1wX5yB",
    "tiktok_business_id": "real-business",
    "tiktok_access_token": "act.9fK2mQ7xL4vN8pR3sT6wY1zB",
    "tiktok_refresh_token": "rft.3hJ8kM2nP5qR9tV4wX7yZ1aC",
    "secret_key": "k3Jd9QmZ2vLx8PnR4tWy7BcF1gHs6NaE0uYo",
}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def web_settings(services: TestServices, **overrides: object) -> Settings:
    base = get_settings().model_dump()
    base.update(database_url=services.database_url, redis_url=services.redis_url)
    base.update(overrides)
    return Settings(**base)


@asynccontextmanager
async def running(
    settings: Settings,
    hasher: PasswordHasher = CHEAP_HASHER,
    client_address: str = "127.0.0.1",
) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)
    app.state.staff_passwords = Passwords(hasher)
    async with app.router.lifespan_context(app):
        # The address every request comes from, as the server's socket would see it.
        transport = httpx.ASGITransport(app=app, client=(client_address, 50123))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client


@pytest.fixture
async def web(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(web_settings(services)) as client:
        yield client


async def add_staff(
    engine: AsyncEngine,
    email: str = EMAIL,
    password: str = PASSWORD,
    name: str = "Ana",
    hasher: PasswordHasher = CHEAP_HASHER,
) -> StaffUser:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        return await create_account(session, Passwords(hasher), email, name, password)


@pytest.fixture
async def staff(committed_db: AsyncEngine) -> StaffUser:
    return await add_staff(committed_db)


def csrf_in(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


async def login(
    client: httpx.AsyncClient, email: str = EMAIL, password: str = PASSWORD
) -> httpx.Response:
    page = await client.get("/login")
    assert page.status_code == 200
    return await client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": csrf_in(page.text),
            "next": "/inbox",
        },
    )


@pytest.fixture
async def signed_in(web: httpx.AsyncClient, staff: StaffUser) -> httpx.AsyncClient:
    response = await login(web)
    assert response.status_code == 303, response.text
    return web


async def page_csrf(client: httpx.AsyncClient, path: str = "/inbox") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return csrf_in(response.text)


@dataclass(frozen=True)
class Thread:
    conversation_id: int
    user_id: str
    message_ids: list[int]


async def add_conversation(
    engine: AsyncEngine,
    redis: aioredis.Redis,
    name: str,
    *,
    mode: str = "human",
    window_left: timedelta | None = timedelta(hours=40),
    replies_used: int = 0,
    messages: Sequence[tuple[str, str]] = (("inbound", "hello, is PT-0001 still available?"),),
) -> Thread:
    """A customer, their conversation and messages; an open window is set in Redis the
    way WindowService keeps it (and mirrored on the row), a closed one is absent."""
    now = datetime.now(UTC)
    ends = now + window_left if window_left is not None else now - timedelta(hours=2)
    user_id = f"user-{name}"
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        customer = await add_customer(session, user_id, username=name)
        conversation = await add_conversation_for(
            session,
            customer,
            conversation_id=f"conv-{name}",
            mode=mode,
            human_since=now - timedelta(minutes=30) if mode == "human" else None,
            last_customer_message_at=ends - timedelta(hours=48),
            window_expires_at=ends,
            replies_in_window=replies_used,
        )
        rows = [
            Message(
                conversation_id=conversation.id,
                direction=direction,
                message_type="text",
                text=text,
                payload={},
                entities={},
                status=(
                    MessageStatus.PROCESSED
                    if direction == Direction.INBOUND
                    else MessageStatus.SENT
                ),
                sent_by=None if direction == Direction.INBOUND else "bot",
            )
            for direction, text in messages
        ]
        session.add_all(rows)
        await session.flush()
        thread = Thread(conversation.id, user_id, [row.id for row in rows])
    if window_left is not None:
        end_ms = int(ends.timestamp() * 1000)
        await redis.set(redis_keys.window(user_id), end_ms, pxat=end_ms)
        await redis.set(redis_keys.quota(user_id), replies_used, pxat=end_ms)
    return thread


async def place_hold_for(engine: AsyncEngine, user_id: str, sku: str) -> int:
    """A hold of the customer on the piece, placed as the bot places one; its id."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        item = await session.scalar(select(Item).where(Item.sku == sku))
        customer = await session.scalar(select(Customer).where(Customer.tiktok_user_id == user_id))
        assert item is not None and customer is not None
        placed = await place_hold(session, get_settings(), item, customer)
        assert placed.hold is not None
        return placed.hold.id
