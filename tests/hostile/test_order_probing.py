"""A customer trying 100 order numbers learns nothing and is throttled.

The reference shop (../shared/data/orders.csv): PH-10235 is bob's; PH-10234 and PH-10236
are alice's, PH-10237 carol's, PH-10238 dan's. Bob probes the others' numbers, in the
forms customers write them, mixed with numbers nobody has.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import selectinload

from app.core import redis_keys
from app.core.config import Settings, get_settings
from app.db.models import Conversation, Customer, Order, OrderItem
from app.services import replies
from app.services.router import HybridRouter
from app.services.shop import ShopBrain
from app.services.shop.describe import day
from app.services.shop.order_lookups import (
    HANDOFF_REASON,
    OrderLookupThrottle,
)
from tests.factories import text_message
from tests.services.pipeline.conftest import (
    Harness,
    make_harness,  # noqa: F401  (a fixture, used by name)
)
from tests.services.shop.conftest import MakeChat, load_reference_shop, reply_text
from tests.statements import statements_sent

BOB, ALICE, CAROL = "cust-bob-002", "cust-alice-001", "cust-carol-003"
BOBS_ORDER = "PH-10235"
OTHERS_ORDERS = ("PH-10234", "PH-10236", "PH-10237", "PH-10238")
FORMS = (
    "{n}",
    "{lower}",
    "#{digits}",
    "order {digits}",
    "where is my order {n}?",
    "tracking for {n} please",
    "status of ph {digits}",
    "what's the status of order #{digits}",
    "has {n} shipped yet?",
    "any update on {lower}",
)
# Neighbours of the real numbers, then the kind of numbers a guesser types.
_NEIGHBOURS = (*range(10200, 10234), *range(10239, 10271))
_GUESSES = (1, 99999, 54321, 20000, 50000, 10000, 11111, 22222, 33333, 44444, 55555, 66666)
NOBODYS_ORDERS = tuple(f"PH-{number:05d}" for number in (*_NEIGHBOURS, *_GUESSES, 77777, 88888))
STATUS_WORDS = ("paid", "processing", "shipped", "delivered", "cancelled")


def dm(number: str, form: str) -> str:
    return form.format(n=number, lower=number.lower(), digits=number.removeprefix("PH-"))


def probes() -> list[tuple[str, str, bool]]:
    """100 DMs as (number, form, someone else's real order): every fifth is a real order
    of another customer (each of the four in five forms), the rest numbers nobody has."""
    out: list[tuple[str, str, bool]] = []
    fakes = iter(enumerate(NOBODYS_ORDERS))
    for index in range(100):
        if index % 5 == 1:
            k = index // 5
            out.append((OTHERS_ORDERS[k % 4], FORMS[k % len(FORMS)], True))
        else:
            j, number = next(fakes)
            out.append((number, FORMS[j % len(FORMS)], False))
    return out


def test_the_probe_set_is_what_it_claims() -> None:
    sent = probes()
    assert len(sent) == 100
    assert len({dm(number, form) for number, form, _ in sent}) == 100
    real = [(number, form) for number, form, is_real in sent if is_real]
    assert len(real) == 20 and {number for number, _ in real} == set(OTHERS_ORDERS)
    assert {form for _, form in real} == set(FORMS)
    assert {form for _, form, is_real in sent if not is_real} == set(FORMS)
    assert not set(NOBODYS_ORDERS) & {*OTHERS_ORDERS, BOBS_ORDER}


async def others_secrets(session: AsyncSession, customer_id: str) -> list[str]:
    """Everything about other customers' orders that must never reach this customer."""
    orders = await session.scalars(
        select(Order)
        .join(Customer, Order.customer_id == Customer.id)
        .where(Customer.tiktok_user_id != customer_id)
        .options(
            selectinload(Order.customer), selectinload(Order.lines).selectinload(OrderItem.item)
        )
    )
    secrets: list[str] = []
    for order in orders:
        secrets += [order.customer.tiktok_user_id, order.customer.username or ""]
        secrets += [order.tracking_number or "", str(order.total)]
        secrets += [day(moment) for moment in (order.placed_at, order.shipped_at) if moment]
        secrets += [day(order.delivered_at)] if order.delivered_at else []
        for line in order.lines:
            secrets += [line.item.sku, line.item.title]
    assert len(secrets) > 20  # the reference shop is loaded
    return [secret for secret in secrets if secret]


def assert_nothing_leaks(reply: str, secrets: list[str]) -> None:
    lowered = reply.lower()
    for secret in secrets:
        assert secret.lower() not in lowered, (secret, reply)
    for word in (*STATUS_WORDS, "usps", "ups", "fedex", "dhl", "tracking number"):
        assert re.search(rf"\b{word}\b", lowered) is None, (word, reply)


def reads_orders(sql: list[str]) -> bool:
    return any(re.search(r"\b(?:orders|order_items)\b", statement) for statement in sql)


async def test_others_orders_read_exactly_like_orders_that_do_not_exist(
    make_chat: MakeChat,
) -> None:
    # A limit out of reach: all 100 numbers are really looked up.
    chat = await make_chat(BOB, order_lookup_max_misses=1000)
    secrets = await others_secrets(chat.session, BOB)
    seen: dict[bool, dict[str, set[str]]] = {True: defaultdict(set), False: defaultdict(set)}
    for number, form, is_real in probes():
        result = await chat.say(dm(number, form))
        text = reply_text(result)
        assert result.intent == "order_status", (form, result.intent)
        assert result.entities.get("order_number") == number  # it was looked up
        assert not result.handoff
        assert_nothing_leaks(text, secrets)
        # What bob could compare, with the number he asked about taken out: the reply,
        # what the turn did, and what the conversation remembers.
        signature = json.dumps(
            [text.replace(number, "<asked>"), result.intent, result.handoff, chat.context],
            sort_keys=True,
            ensure_ascii=False,
        )
        seen[is_real][form].add(signature)
    for form in FORMS:
        assert seen[True][form] == seen[False][form], form
    everything = set().union(*seen[True].values(), *seen[False].values())
    assert len(everything) == 1
    assert replies.ORDER_NOT_FOUND.format(number="<asked>") in next(iter(everything))


async def test_probing_is_throttled_and_handed_to_a_person(
    make_chat: MakeChat, shop_settings: Settings, engine: AsyncEngine
) -> None:
    limit = shop_settings.order_lookup_max_misses
    chat = await make_chat(BOB)
    secrets = await others_secrets(chat.session, BOB)
    # His own order, before any probing: answered in full.
    own = reply_text(await chat.say(f"where is my order {BOBS_ORDER}?"))
    assert BOBS_ORDER in own and "processing" in own

    answered: list[str] = []
    paused = 0
    for index, (number, form, _) in enumerate(probes()):
        with statements_sent(engine) as sql:
            result = await chat.say(dm(number, form))
        text = reply_text(result)
        assert_nothing_leaks(text, secrets)
        if index < limit:
            assert text == replies.ORDER_NOT_FOUND.format(number=number)
            assert not result.handoff
            assert reads_orders(sql)  # the listener sees lookups when they happen
            answered.append(number)
        else:
            assert text == replies.ORDER_LOOKUP_PAUSED, (index, text)
            assert result.handoff and result.handoff_reason == HANDOFF_REASON
            assert not reads_orders(sql), sql
            paused += 1
    assert len(answered) == limit and paused == 100 - limit
    # Real numbers of others were among those tried both before and after the limit.
    assert OTHERS_ORDERS[0] in answered

    # Past the limit even his own number is not looked up: a prober must not learn which
    # of the numbers is real by how the answer changes.
    with statements_sent(engine) as sql:
        result = await chat.say(BOBS_ORDER)
    assert reply_text(result) == replies.ORDER_LOOKUP_PAUSED and not reads_orders(sql)
    # Without a number only his own orders can come back, so that still works.
    assert BOBS_ORDER in reply_text(await chat.say("where's my order?"))


async def test_another_customer_is_not_throttled(
    make_chat: MakeChat, shop_settings: Settings
) -> None:
    bob = await make_chat(BOB)
    for number in NOBODYS_ORDERS[: shop_settings.order_lookup_max_misses + 1]:
        await bob.say(number)
    assert reply_text(await bob.say("PH-10234")) == replies.ORDER_LOOKUP_PAUSED

    alice = await make_chat(ALICE)
    mine = reply_text(await alice.say("tracking for PH-10234 please"))
    assert "shipped" in mine and "9400111899223344556677" in mine
    carol = await make_chat(CAROL)
    missing = reply_text(await carol.say("PH-99999"))
    assert missing == replies.ORDER_NOT_FOUND.format(number="PH-99999")


async def test_own_orders_do_not_count(make_chat: MakeChat, shop_settings: Settings) -> None:
    limit = shop_settings.order_lookup_max_misses
    alice = await make_chat(ALICE)
    for index in range(3 * limit):
        number = ("PH-10234", "PH-10236")[index % 2]
        text = reply_text(await alice.say(number))
        assert text.startswith(f"Order {number}:"), text
    for number in NOBODYS_ORDERS[:limit]:
        assert reply_text(await alice.say(number)) == replies.ORDER_NOT_FOUND.format(number=number)
    assert reply_text(await alice.say("PH-10236")) == replies.ORDER_LOOKUP_PAUSED


async def test_the_window_expires(redis_client: aioredis.Redis) -> None:
    settings = Settings(order_lookup_max_misses=3, order_lookup_window_minutes=60)
    throttle = OrderLookupThrottle(redis_client, settings)
    customer = Customer(tiktok_user_id="cust-window")
    key = redis_keys.order_lookup_misses(customer.tiktok_user_id)

    # The window runs from the first miss: later misses do not push it back.
    assert await throttle.begin(customer)
    await redis_client.expire(key, 100)
    assert await throttle.begin(customer)
    assert 0 < await redis_client.ttl(key) <= 100
    # A lookup that found the customer's own order is given back.
    assert await throttle.begin(customer)
    await throttle.was_own(customer)
    assert int(await redis_client.get(key) or 0) == 2

    # Reaching the limit restarts the clock: the pause lasts a whole window.
    assert await throttle.begin(customer)
    assert 3590 < await redis_client.ttl(key) <= 3600
    assert not await throttle.begin(customer)
    assert not await throttle.begin(customer)
    assert int(await redis_client.get(key) or 0) == 3  # refused lookups are not counted

    # The window ends (made to end now rather than in an hour): lookups are back.
    await redis_client.pexpire(key, 20)
    await asyncio.sleep(0.05)
    assert await throttle.begin(customer)
    assert int(await redis_client.get(key) or 0) == 1
    assert 3590 < await redis_client.ttl(key) <= 3600

    # Per customer: someone else starts from nothing.
    assert await throttle.begin(Customer(tiktok_user_id="cust-other"))


def test_default_limits() -> None:
    fields = Settings.model_fields
    assert fields["order_lookup_max_misses"].default == 5
    assert fields["order_lookup_window_minutes"].default == 60


async def test_through_the_pipeline_staff_take_over_and_the_bot_goes_quiet(
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    shared_dir: Path,
    offline_router: HybridRouter,
    make_harness: Callable[..., Harness],  # noqa: F811
) -> None:
    async with AsyncSession(committed_db) as session, session.begin():
        await load_reference_shop(session, shared_dir)
    settings = get_settings()
    limit = settings.order_lookup_max_misses
    harness = make_harness(ShopBrain(settings, offline_router, redis=redis_client))

    async def send(user_id: str, text: str, message_id: str) -> list[str]:
        seen = len(harness.sender.sent)
        await harness.receive(
            text_message(
                text, message_id=message_id, user_id=user_id, conversation_id=f"conv-{user_id}"
            )
        )
        await harness.deliver_queued()
        return [sent.text or "" for sent in harness.sender.sent[seen:]]

    said: list[str] = []
    for index, (number, form, _) in enumerate(probes()):
        said += await send(BOB, dm(number, form), f"probe-{index}")
    numbers = [number for number, _, _ in probes()[:limit]]
    assert said == [
        *(replies.ORDER_NOT_FOUND.format(number=number) for number in numbers),
        replies.ORDER_LOOKUP_PAUSED,
    ]
    assert harness.handoffs == [HANDOFF_REASON]
    async with AsyncSession(committed_db) as session:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.tiktok_conversation_id == f"conv-{BOB}")
        )
        assert conversation is not None and conversation.mode == "human"

    alice = await send(ALICE, "where is PH-10234?", "alice-1")
    assert len(alice) == 1 and "9400111899223344556677" in alice[0]
