"""Drop alerts: a customer opts in ("let me know when you get jackets in M"), hears about
new pieces that fit the ask (at most three, with a photo, inside the window, at most once a
day, never in quiet hours) and STOP ends it at once."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from app.core.clock import utc_now
from app.db.models import AlertSubscription, Drop, Item, ItemStatus, Message, OutboxEntry
from app.db.repositories.items import DropRepository
from app.services.shop import policy_for
from app.services.shop.catalog_io import CATALOG_COLUMNS, import_catalog
from app.services.shop.followthrough import FollowThrough, send_drop_alerts
from app.services.shop.words import about_stock, says_stop, wants_alerts
from tests.conftest import Clock
from tests.services.shop.conftest import Chat, MakeChat, reply_text

ALWAYS = {"quiet_hours_start": 0, "quiet_hours_end": 0}


@pytest.mark.parametrize(
    "text",
    [
        "let me know when you get jackets in M",
        "can u dm me when new jeans drop in 32",
        "lmk if you get more nike stuff",
        "notify me about new drops",
        "ALERTS",
        "keep me posted when you restock dresses",
    ],
)
def test_asking_for_alerts(text: str) -> None:
    assert wants_alerts(text)
    assert about_stock(text) or text == "ALERTS"  # what overrides a misread order question


@pytest.mark.parametrize(
    "text",
    [
        "let me know when my order ships",
        "can you let me know the price",
        "let me know when it's back in stock",  # that piece: the waitlist
        "is the jacket still available?",
        "tell me about the carhartt",
    ],
)
def test_not_asking_for_alerts(text: str) -> None:
    assert not (wants_alerts(text) and about_stock(text))


@pytest.mark.parametrize(
    "text",
    ["STOP", "stop", "Stop please", "unsubscribe", "STOPALL", "stop messaging me",
     "no more alerts pls", "please stop sending me these", "turn off my alerts", "opt out"],
)  # fmt: skip
def test_the_usual_ways_of_saying_stop(text: str) -> None:
    assert says_stop(text)


@pytest.mark.parametrize(
    "text",
    ["can you stop holding it", "cancel", "cancel my hold", "dont stop", "where is my order"],
)
def test_not_a_stop(text: str) -> None:
    assert not says_stop(text)


# --- opting in and out -------------------------------------------------------------------


async def subscriptions(chat: Chat) -> list[AlertSubscription]:
    found = await chat.session.scalars(
        select(AlertSubscription)
        .where(AlertSubscription.customer_id == chat.customer.id)
        .order_by(AlertSubscription.id)
        .execution_options(populate_existing=True)
    )
    return list(found)


async def test_opting_in_with_a_category_and_a_size_and_stopping(make_chat: MakeChat) -> None:
    chat = await make_chat("cust-alerts-in")
    result = await chat.say("let me know when you get jackets in M")
    assert result.intent == "new_drops"
    text = reply_text(result)
    assert "jackets & coats that fit an M" in text and "STOP" in text
    (subscription,) = await subscriptions(chat)
    assert (subscription.category, subscription.size, subscription.stopped_at) == (
        "outerwear",
        "M",
        None,
    )
    assert "already" in reply_text(await chat.say("let me know when you get jackets in M"))
    assert len(await subscriptions(chat)) == 1

    stopped = await chat.say("STOP")
    assert "no more drop alerts" in reply_text(stopped)
    (subscription,) = await subscriptions(chat)
    assert subscription.stopped_at is not None
    assert "not getting any alerts" in reply_text(await chat.say("stop"))


async def test_opting_in_without_a_size_uses_the_customers_own(make_chat: MakeChat) -> None:
    chat = await make_chat("cust-alerts-own-size")
    await chat.say("I'm usually a large")
    await chat.say("notify me about new drops")
    (subscription,) = await subscriptions(chat)
    assert (subscription.category, subscription.size) == (None, "L")


async def test_the_new_drops_list_offers_alerts_until_the_customer_has_them(
    make_chat: MakeChat,
) -> None:
    chat = await make_chat("cust-alerts-offer")
    assert "Reply ALERTS" in reply_text(await chat.say("2"))
    assert "STOP" in reply_text(await chat.say("ALERTS"))
    assert "Reply ALERTS" not in reply_text(await chat.say("2"))


async def test_stop_is_obeyed_whatever_was_asked_before(make_chat: MakeChat) -> None:
    chat = await make_chat("cust-alerts-stop-offer")
    await chat.say("notify me about new drops")
    await chat.say("is PT-0006 available?")  # leaves "want me to hold it?" open
    assert "no more drop alerts" in reply_text(await chat.say("STOP"))
    assert (await subscriptions(chat))[0].stopped_at is not None
    assert (await chat.session.get_one(Item, (await piece(chat, "PT-0006")).id)).status == (
        ItemStatus.AVAILABLE
    )


# --- the alerts --------------------------------------------------------------------------


def _rows(*pieces: dict[str, str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CATALOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for values in pieces:
        row = {name: "" for name in CATALOG_COLUMNS}
        row.update(
            gender="unisex",
            condition="good",
            price="40.00",
            currency="USD",
            status="available",
            image_urls=f"https://cdn.philiathrifts.example/{values['sku']}/1.jpg",
        )
        row.update(values)
        writer.writerow(row)
    return buffer.getvalue()


def jacket(sku: str, pit_to_pit: str = "20", **more: str) -> dict[str, str]:
    return {"sku": sku, "title": f"Jacket {sku}", "category": "outerwear",
            "pit_to_pit_in": pit_to_pit, **more}  # fmt: skip


async def piece(chat: Chat, sku: str) -> Item:
    found = await chat.session.scalar(select(Item).where(Item.sku == sku))
    assert found is not None
    return found


async def subscriber(make_chat: MakeChat, user_id: str, ask: str, **settings: Any) -> Chat:
    """A customer in an open window who opted in."""
    chat = await make_chat(user_id, **{**ALWAYS, **settings})
    chat.conversation.window_expires_at = utc_now() + timedelta(hours=40)
    await chat.say(ask)
    await chat.session.flush()
    return chat


async def add_pieces(chat: Chat, *pieces: dict[str, str]) -> None:
    """Pieces added through the catalogue import, listed now. (PostgreSQL stamps rows with
    the transaction's start, and the whole test is one transaction: the reference shop and
    the opt-in came before in it.)"""
    await import_catalog(chat.session, _rows(*pieces))
    for values in pieces:
        (await piece(chat, values["sku"])).created_at = utc_now()
    await chat.session.flush()


async def alert(chat: Chat, redis: aioredis.Redis) -> FollowThrough:
    settings = chat.brain.settings
    return await send_drop_alerts(chat.session, settings, policy_for(settings, redis), utc_now())


async def said_unasked(chat: Chat) -> list[tuple[str, str | None, bool, str | None]]:
    rows = await chat.session.execute(
        select(Message, OutboxEntry.id)
        .outerjoin(OutboxEntry, OutboxEntry.message_id == Message.id)
        .where(
            Message.conversation_id == chat.conversation.id,
            Message.proactive_kind == "drop_alert",
        )
        .order_by(Message.id)
    )
    return [
        (message.message_type, message.text, outbox_id is not None, message.status_reason)
        for message, outbox_id in rows.all()
    ]


async def test_an_alert_lists_at_most_three_fitting_pieces_with_a_photo(
    make_chat: MakeChat, redis_client: aioredis.Redis, clock: Clock
) -> None:
    chat = await subscriber(make_chat, "cust-alert-fit", "let me know when you get jackets in M")
    others = await subscriber(make_chat, "cust-alert-shoes", "lmk when new shoes drop")
    await add_pieces(
        chat,
            jacket("PT-0801"), jacket("PT-0802"), jacket("PT-0803"), jacket("PT-0804"),
            jacket("PT-0805", pit_to_pit="23"),  # fits like an XL
            {"sku": "PT-0806", "title": "Tee", "category": "tops", "pit_to_pit_in": "20"},
            jacket("PT-0807", status="sold"),
    )  # fmt: skip
    report = await alert(chat, redis_client)
    assert report.alerted == 1  # the shoe customer: nothing new that fits
    (text, photo) = await said_unasked(chat)
    assert text[0] == "text" and text[2] and photo[0] == "image" and photo[2]
    listed = text[1] or ""
    assert sum(f"PT-080{n}" in listed for n in range(1, 5)) == 3
    assert "PT-0805" not in listed and "PT-0806" not in listed and "PT-0807" not in listed
    assert "STOP" in listed
    assert await said_unasked(others) == []
    # Once: the next run finds nothing new for anyone.
    assert (await alert(chat, redis_client)).alerted == 0
    assert len(await said_unasked(chat)) == 2
    # A bare SKU or "the first one" now answers the alert.
    assert "PT-080" in reply_text(await chat.say("the first one"))


async def test_a_closed_window_is_counted_and_not_alerted_again(
    make_chat: MakeChat, redis_client: aioredis.Redis, clock: Clock
) -> None:
    chat = await subscriber(make_chat, "cust-alert-closed", "notify me about new drops")
    chat.conversation.window_expires_at = utc_now() - timedelta(minutes=1)
    await chat.session.flush()
    await add_pieces(chat, jacket("PT-0811"))
    report = await alert(chat, redis_client)
    assert (report.alerted, report.counted, report.outbox_ids) == (0, 1, [])
    ((kind, _, queued, reason),) = await said_unasked(chat)
    assert kind == "text" and not queued and reason and "window" in reason
    await alert(chat, redis_client)
    assert len(await said_unasked(chat)) == 1


@pytest.mark.parametrize("why", ["quiet", "recent"])
async def test_quiet_hours_and_the_daily_limit_only_postpone(
    make_chat: MakeChat, redis_client: aioredis.Redis, clock: Clock, why: str
) -> None:
    settings: dict[str, Any] = {}
    if why == "quiet":
        settings = {"quiet_hours_start": 22, "quiet_hours_end": 8, "shop_timezone": "UTC"}
    chat = await subscriber(make_chat, f"cust-alert-{why}", "notify me about new drops", **settings)
    await add_pieces(chat, jacket("PT-0821"))
    now = utc_now()
    if why == "quiet":
        night = now.replace(hour=23, minute=0) + (
            timedelta(days=1) if now.hour >= 23 else timedelta(0)
        )
        clock.advance(night - now)
    else:
        chat.customer.last_proactive_at = now - timedelta(hours=2)
        await chat.session.flush()
    assert (await alert(chat, redis_client)).alerted == 0
    assert await said_unasked(chat) == []
    clock.advance(timedelta(hours=23) if why == "recent" else timedelta(hours=10))
    assert (await alert(chat, redis_client)).alerted == 1


async def test_a_drop_waits_for_its_release_and_publishing_announces_it(
    make_chat: MakeChat, redis_client: aioredis.Redis, clock: Clock
) -> None:
    chat = await subscriber(make_chat, "cust-alert-drop", "notify me about new drops")
    await add_pieces(chat, jacket("PT-0831", drop="Winter drop"))
    drop = await chat.session.scalar(select(Drop).where(Drop.name == "Winter drop"))
    assert drop is not None
    drop.released_at = utc_now() + timedelta(days=3)
    await chat.session.flush()
    assert (await alert(chat, redis_client)).alerted == 0
    clock.advance(timedelta(seconds=1))
    await DropRepository(chat.session).publish(drop.id, utc_now())
    assert (await alert(chat, redis_client)).alerted == 1
    (text, _) = await said_unasked(chat)
    assert "PT-0831" in (text[1] or "")


async def test_an_alert_with_a_photo_leaves_the_hand_off_slot(
    make_chat: MakeChat, redis_client: aioredis.Redis, clock: Clock
) -> None:
    chat = await subscriber(make_chat, "cust-alert-quota", "notify me about new drops")
    chat.conversation.replies_in_window = chat.brain.settings.reply_quota - 2
    await chat.session.flush()
    await add_pieces(chat, jacket("PT-0841"))
    report = await alert(chat, redis_client)
    assert (report.alerted, report.counted) == (0, 1)  # text + photo + hand-off: 3 slots
