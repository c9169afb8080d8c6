"""Messages the shop sent without the bot spend the window's quota, counted in Redis the
way the bot's own replies are: with the window's expiry, never as a key that outlives it,
and once even when Redis lost the window and it is restored from PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.db.models import Conversation
from app.services.messaging.inbound import Outcome
from tests.factories import CUSTOMER_ID, echo, text_message
from tests.services.pipeline.conftest import Harness

MakeHarness = Callable[..., Harness]
QUOTA = redis_keys.quota(CUSTOMER_ID)
WINDOW = redis_keys.window(CUSTOMER_ID)


async def replies_in_window(engine: AsyncEngine) -> int:
    async with AsyncSession(engine) as session:
        conversation = await session.scalar(select(Conversation))
        assert conversation is not None
        return conversation.replies_in_window


async def test_a_welcome_message_before_any_customer_message_leaves_no_key(
    make_harness: MakeHarness, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    welcome = echo("Welcome to Philia Thrifts!", auto_message_type="WELCOME_MESSAGE")
    assert await harness.receive(welcome) is Outcome.ECHO
    assert await redis_client.exists(QUOTA) == 0


async def test_an_echo_in_an_open_window_is_counted_until_the_window_ends(
    make_harness: MakeHarness, redis_client: aioredis.Redis, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi"))
    await harness.deliver_queued()  # the menu: one reply
    await harness.receive(echo("Thanks for stopping by!", auto_message_type="AUTO_REPLY"))
    assert int(await redis_client.get(QUOTA) or 0) == 2
    assert await replies_in_window(committed_db) == 2
    window_ttl = await redis_client.pttl(WINDOW)
    quota_ttl = await redis_client.pttl(QUOTA)
    assert 0 < quota_ttl <= window_ttl


async def test_an_echo_after_redis_lost_the_window_is_counted_once(
    make_harness: MakeHarness, redis_client: aioredis.Redis, committed_db: AsyncEngine
) -> None:
    harness = make_harness()
    await harness.receive(text_message("hi"))
    await harness.deliver_queued()
    await redis_client.delete(WINDOW, QUOTA)  # Redis restarted without its data

    await harness.receive(echo("a person typed this", source="APP"))

    assert await replies_in_window(committed_db) == 2
    assert int(await redis_client.get(QUOTA) or 0) == 2
    assert await redis_client.pttl(QUOTA) > 0
