"""One callback URL, many accounts (../shared/spec/tiktok-api.md): only the configured
app's and business account's events are the shop's; the rest are logged, counted and
left alone. Other event names are accepted and ignored, none of them a dead letter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import redis_keys
from app.db.models import Conversation, Customer, Message
from app.services.messaging.inbound import Outcome, other_account_seen
from app.services.tiktok.account import ConfiguredAccount
from app.services.tiktok.webhook import EventType, InvalidEnvelope
from tests.conftest import LoggedEvents
from tests.factories import (
    CLIENT_KEY,
    OTHER_CLIENT_KEY,
    OTHER_SHOP_ID,
    SHOP_ID,
    echo,
    envelope,
    event_of,
    for_account,
    reaction_message,
    text_message,
)
from tests.services.pipeline.conftest import Harness

MakeHarness = Callable[..., Harness]


async def rows_of(engine: AsyncEngine, model: type[Any]) -> int:
    async with AsyncSession(engine) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def nothing_recorded(engine: AsyncEngine) -> bool:
    return [await rows_of(engine, model) for model in (Message, Conversation, Customer)] == [0] * 3


async def other_account_count(redis: aioredis.Redis, field: str) -> int:
    return int(await redis.hget(redis_keys.METRICS_OTHER_ACCOUNT_EVENTS, field) or 0)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda: text_message("hi"), id="customer-message"),
        pytest.param(lambda: echo("hey it's Mia!", source="APP"), id="staff-echo"),
        pytest.param(lambda: reaction_message(), id="reaction"),
    ],
)
async def test_an_event_of_another_business_account_is_ignored(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    logged_events: LoggedEvents,
    body: Callable[[], dict[str, Any]],
) -> None:
    harness = make_harness()
    logged_events()
    assert await harness.receive(for_account(body())) is Outcome.OTHER_ACCOUNT
    assert harness.queued == [] and harness.handoffs == []
    assert await nothing_recorded(committed_db)
    (event,) = [e for e in logged_events() if e["event"] == "event_for_other_account"]
    assert (event["user_openid"], event["expected_user_openid"]) == (OTHER_SHOP_ID, SHOP_ID)
    assert (event["client_key"], event["expected_client_key"]) == (CLIENT_KEY, CLIENT_KEY)
    assert await other_account_count(redis_client, "user_openid") == 1


@pytest.mark.parametrize("openid", [OTHER_SHOP_ID, SHOP_ID], ids=["other-account", "the-shops"])
async def test_content_that_is_no_message_is_an_error_only_in_the_shops_events(
    make_harness: MakeHarness, committed_db: AsyncEngine, openid: str
) -> None:
    # Whose event it is comes first: another account's malformed message is its business.
    harness = make_harness()
    body = envelope({"conversation_id": "conv-1", "type": "text"}, user_openid=openid)
    if openid == SHOP_ID:
        with pytest.raises(InvalidEnvelope, match="not a message"):
            await harness.receive(body)
    else:
        assert await harness.receive(body) is Outcome.OTHER_ACCOUNT
    assert await nothing_recorded(committed_db)


async def test_the_account_is_read_from_the_database_when_redis_has_no_copy(
    make_harness: MakeHarness, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    once = text_message("hi", message_id="read-once")
    assert await harness.receive(once) is Outcome.HANDLED
    await redis_client.delete(redis_keys.TIKTOK_BUSINESS_ID)
    # No account connected: the configured one, and the copy is put back for next time.
    assert await harness.receive(once) is Outcome.DUPLICATE
    assert await redis_client.get(redis_keys.TIKTOK_BUSINESS_ID) == b""
    assert await harness.receive(for_account(text_message("hi"))) is Outcome.OTHER_ACCOUNT


async def test_an_event_of_another_app_is_ignored(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    logged_events: LoggedEvents,
) -> None:
    harness = make_harness()
    logged_events()
    body = for_account(text_message("hi"), client_key=OTHER_CLIENT_KEY, user_openid=SHOP_ID)
    assert await harness.receive(body) is Outcome.OTHER_ACCOUNT
    assert harness.queued == []
    assert await nothing_recorded(committed_db)
    (event,) = [e for e in logged_events() if e["event"] == "event_for_other_account"]
    assert (event["client_key"], event["expected_client_key"]) == (OTHER_CLIENT_KEY, CLIENT_KEY)
    assert await other_account_count(redis_client, "client_key") == 1
    # the account was the configured one: nothing to report about the business id
    assert await other_account_seen(redis_client, ConfiguredAccount(harness.settings)) is None


async def test_the_configured_account_is_taken_from_the_settings(
    make_harness: MakeHarness, committed_db: AsyncEngine
) -> None:
    harness = make_harness(tiktok_client_key="live-app", tiktok_business_id="live-shop")
    ours = for_account(text_message("hi"), client_key="live-app", user_openid="live-shop")
    assert await harness.receive(ours) is Outcome.HANDLED
    assert await harness.receive(text_message("hi")) is Outcome.OTHER_ACCOUNT
    assert await rows_of(committed_db, Message) == 2  # the first message and its reply
    assert len(harness.queued) == 1


async def test_an_event_without_user_openid_is_taken_as_the_configured_accounts(
    make_harness: MakeHarness,
) -> None:
    harness = make_harness()
    assert await harness.receive(for_account(text_message("hi"), user_openid=None)) is (
        Outcome.HANDLED
    )
    assert len(harness.queued) == 1


async def test_the_last_other_account_is_remembered_for_a_readiness_check(
    make_harness: MakeHarness, redis_client: aioredis.Redis
) -> None:
    harness = make_harness()
    assert await other_account_seen(redis_client, ConfiguredAccount(harness.settings)) is None
    await harness.receive(for_account(text_message("hi"), user_openid="test-account"))
    await harness.receive(for_account(text_message("hi"), user_openid=OTHER_SHOP_ID))
    assert (
        await other_account_seen(redis_client, ConfiguredAccount(harness.settings)) == OTHER_SHOP_ID
    )
    ttl = await redis_client.ttl(redis_keys.TIKTOK_OTHER_ACCOUNT)
    assert 0 < ttl <= 7 * 24 * 3600
    # once TIKTOK_BUSINESS_ID names that account, it is no longer "another" one
    fixed = harness.settings.model_copy(update={"tiktok_business_id": OTHER_SHOP_ID})
    assert await other_account_seen(redis_client, ConfiguredAccount(fixed)) is None


@pytest.mark.parametrize(
    ("event", "content"),
    [
        (EventType.PING, {"reason": "testing Webhook"}),
        (EventType.RECEIVE_EU, {"to": "shop", "to_user": {"id": SHOP_ID}, "timestamp": 1}),
        (EventType.AUTO_MESSAGE_CONFIG_UPDATE, {"auto_message_type": "WELCOME_MESSAGE"}),
        (EventType.AUTO_MESSAGE_AUDIT_UPDATE, {"audit_status": "APPROVED"}),
        (EventType.HIGH_INTENT_COMMENT, {"comment_id": "c-1", "text": "price?"}),
        (EventType.MARK_READ, {"conversation_id": "conv-1"}),
        ("im_something_new", {}),
    ],
)
async def test_other_events_are_ignored_without_a_dead_letter(
    make_harness: MakeHarness,
    committed_db: AsyncEngine,
    logged_events: LoggedEvents,
    event: str,
    content: dict[str, Any],
) -> None:
    harness = make_harness()
    logged_events()
    assert await harness.receive(event_of(event, content)) is Outcome.IGNORED
    assert harness.queued == []
    assert await nothing_recorded(committed_db)
    (ignored,) = [e for e in logged_events() if e["event"] == "event_ignored"]
    assert ignored["tiktok_event"] == event
    assert ignored["known"] is (event != "im_something_new")


async def test_a_removed_authorisation_is_logged_for_staff(
    make_harness: MakeHarness, committed_db: AsyncEngine, logged_events: LoggedEvents
) -> None:
    harness = make_harness()
    logged_events()
    body = event_of(EventType.AUTHORIZATION_REMOVED, {})
    assert await harness.receive(body) is Outcome.IGNORED
    assert await nothing_recorded(committed_db)
    (removed,) = [e for e in logged_events() if e["event"] == "tiktok_authorization_removed"]
    assert (removed["level"], removed["user_openid"]) == ("error", SHOP_ID)


async def test_a_removed_authorisation_of_another_account_is_only_another_accounts_event(
    make_harness: MakeHarness, logged_events: LoggedEvents
) -> None:
    harness = make_harness()
    logged_events()
    body = for_account(event_of(EventType.AUTHORIZATION_REMOVED, {}))
    assert await harness.receive(body) is Outcome.OTHER_ACCOUNT
    assert "tiktok_authorization_removed" not in [e["event"] for e in logged_events()]
