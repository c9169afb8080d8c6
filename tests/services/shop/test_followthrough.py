"""A hold's follow-through: a recorded order makes it a sale (buyer thanked, waitlist told
it is gone), one reminder before it lapses, all inside TikTok's window and quota and the
shop's quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from app.core.clock import utc_now
from app.core.config import Settings
from app.db.models import (
    ConversationMode,
    Hold,
    HoldStatus,
    Item,
    ItemStatus,
    Message,
    Order,
    OrderStatus,
    OutboxEntry,
    ProactiveKind,
    WaitlistEntry,
)
from app.db.repositories.orders import OrderRepository
from app.services import replies
from app.services.messaging.proactive import ProactivePolicy
from app.services.messaging.window import WindowService
from app.services.shop import policy_for, record_sales
from app.services.shop.followthrough import remind_lapsing_holds
from tests.conftest import Clock
from tests.services.shop.conftest import Chat, MakeChat

# No quiet hours unless a test sets them: the suite runs at any hour.
ALWAYS = {"quiet_hours_start": 0, "quiet_hours_end": 0}


async def piece(chat: Chat, sku: str) -> Item:
    found = await chat.session.scalar(
        select(Item).where(Item.sku == sku).execution_options(populate_existing=True)
    )
    assert found is not None
    return found


async def hold_of(chat: Chat, sku: str) -> Hold:
    found = await chat.session.scalar(
        select(Hold)
        .join(Item, Item.id == Hold.item_id)
        .where(Item.sku == sku, Hold.customer_id == chat.customer.id)
        .order_by(Hold.id.desc())
        .execution_options(populate_existing=True)
    )
    assert found is not None
    return found


async def unasked(chat: Chat) -> list[tuple[ProactiveKind | None, str, bool, str | None]]:
    """What the shop said unasked in this chat: kind, text, queued for sending, reason."""
    rows = await chat.session.execute(
        select(Message, OutboxEntry.id)
        .outerjoin(OutboxEntry, OutboxEntry.message_id == Message.id)
        .where(
            Message.conversation_id == chat.conversation.id,
            Message.proactive_kind.is_not(None),
        )
        .order_by(Message.id)
        .execution_options(populate_existing=True)
    )
    return [
        (message.proactive_kind, message.text or "", outbox_id is not None, message.status_reason)
        for message, outbox_id in rows.all()
    ]


async def chat_in_window(make_chat: MakeChat, user_id: str, **settings: Any) -> Chat:
    chat = await make_chat(user_id, **{**ALWAYS, **settings})
    chat.conversation.window_expires_at = utc_now() + timedelta(hours=40)
    await chat.session.flush()
    return chat


def policy(chat: Chat, redis: aioredis.Redis) -> ProactivePolicy:
    return policy_for(chat.brain.settings, redis)


# --- hold -> sale ------------------------------------------------------------------------


async def test_an_order_for_a_held_piece_makes_it_a_sale_and_tells_everyone(
    make_chat: MakeChat, redis_client: aioredis.Redis
) -> None:
    holder = await chat_in_window(make_chat, "cust-sale-holder")
    await holder.say("can you hold PT-0006 for me?")
    waiter = await chat_in_window(make_chat, "cust-sale-waiter")
    await waiter.say("waitlist PT-0006 please")
    closed = await make_chat("cust-sale-closed", **ALWAYS)
    await closed.say("waitlist PT-0006 please")
    closed.conversation.window_expires_at = utc_now() - timedelta(hours=1)
    await holder.session.flush()

    now = utc_now()
    order = await OrderRepository(holder.session).record_paid(
        holder.customer.id, await piece(holder, "PT-0006"), now
    )
    report = await record_sales(
        holder.session, holder.brain.settings, policy(holder, redis_client), now
    )

    assert (report.sold, report.converted, report.counted) == (1, 1, 1)
    assert (await piece(holder, "PT-0006")).status is ItemStatus.SOLD
    hold = await hold_of(holder, "PT-0006")
    assert (hold.status, hold.order_id, hold.ended_at) == (HoldStatus.CONVERTED, order.id, now)
    ((kind, text, queued, _),) = await unasked(holder)
    assert kind is ProactiveKind.SALE_CONFIRMATION and queued
    assert order.order_number in text and "yours" in text
    ((kind, text, queued, _),) = await unasked(waiter)
    assert kind is ProactiveKind.WAITLIST_SOLD and queued and "sold" in text
    # The closed window: not messaged, but counted, with the reason.
    ((kind, _, queued, reason),) = await unasked(closed)
    assert kind is ProactiveKind.WAITLIST_SOLD and not queued and reason and "window" in reason
    told = await holder.session.scalars(
        select(WaitlistEntry.notified_at).execution_options(populate_existing=True)
    )
    assert set(told) == {now}
    assert len(report.outbox_ids) == 2

    # Settled once: running it again finds nothing to do.
    again = await record_sales(
        holder.session, holder.brain.settings, policy(holder, redis_client), now
    )
    assert (again.sold, again.outbox_ids) == (0, [])


async def test_sold_to_someone_else_ends_the_hold_and_tells_its_customer(
    make_chat: MakeChat, redis_client: aioredis.Redis
) -> None:
    holder = await chat_in_window(make_chat, "cust-other-holder")
    await holder.say("hold PT-0013")
    buyer = await chat_in_window(make_chat, "cust-other-buyer")
    now = utc_now()
    await OrderRepository(buyer.session).record_paid(
        buyer.customer.id, await piece(buyer, "PT-0013"), now
    )
    report = await record_sales(
        buyer.session, buyer.brain.settings, policy(buyer, redis_client), now
    )
    assert (report.sold, report.converted) == (1, 0)
    assert (await hold_of(holder, "PT-0013")).status is HoldStatus.RELEASED
    ((kind, _, queued, _),) = await unasked(holder)
    assert kind is ProactiveKind.WAITLIST_SOLD and queued
    assert await unasked(buyer) == []  # no hold of theirs: nothing to confirm


async def test_a_cancelled_order_sells_nothing(
    make_chat: MakeChat, redis_client: aioredis.Redis
) -> None:
    holder = await chat_in_window(make_chat, "cust-cancelled")
    await holder.say("hold PT-0016")
    order = await OrderRepository(holder.session).record_paid(
        holder.customer.id, await piece(holder, "PT-0016"), utc_now()
    )
    order.status = OrderStatus.CANCELLED
    await holder.session.flush()
    report = await record_sales(
        holder.session, holder.brain.settings, policy(holder, redis_client), utc_now()
    )
    assert report.sold == 0
    assert (await hold_of(holder, "PT-0016")).status is HoldStatus.ACTIVE


async def test_confirmations_can_be_switched_off(
    make_chat: MakeChat, redis_client: aioredis.Redis
) -> None:
    holder = await chat_in_window(make_chat, "cust-quiet-shop", sale_confirmations=False)
    await holder.say("hold PT-0006")
    await OrderRepository(holder.session).record_paid(
        holder.customer.id, await piece(holder, "PT-0006"), utc_now()
    )
    report = await record_sales(
        holder.session, holder.brain.settings, policy(holder, redis_client), utc_now()
    )
    assert (report.converted, report.outbox_ids) == (1, [])


async def test_order_numbers_follow_the_highest(make_chat: MakeChat) -> None:
    chat = await make_chat("cust-numbers")
    orders = OrderRepository(chat.session)
    highest = await chat.session.scalar(select(func.max(Order.order_number)))
    assert highest is not None  # the reference shop's orders
    first = await orders.record_paid(chat.customer.id, await piece(chat, "PT-0006"), utc_now())
    assert first.order_number == f"PH-{int(highest[3:]) + 1:05d}"
    assert first.status is OrderStatus.PAID and first.total == (await piece(chat, "PT-0006")).price
    assert await orders.next_order_number() == f"PH-{int(highest[3:]) + 2:05d}"


# --- the reminder ------------------------------------------------------------------------


async def remind(chat: Chat, redis: aioredis.Redis) -> int:
    report = await remind_lapsing_holds(
        chat.session, chat.brain.settings, policy(chat, redis), utc_now()
    )
    return report.reminded


async def test_one_reminder_before_the_hold_lapses_with_how_to_pay(
    make_chat: MakeChat, redis_client: aioredis.Redis, clock: Clock
) -> None:
    chat = await chat_in_window(make_chat, "cust-remind", hold_reminder_lead_hours=3)
    await chat.say("hold PT-0006 please")
    assert await remind(chat, redis_client) == 0  # 24 h left: not yet
    clock.advance(timedelta(hours=20, minutes=30))
    assert await remind(chat, redis_client) == 0  # 3.5 h left
    clock.advance(timedelta(minutes=45))
    assert await remind(chat, redis_client) == 1
    ((kind, text, queued, _),) = await unasked(chat)
    assert kind is ProactiveKind.HOLD_REMINDER and queued
    assert "PT-0006" in text and chat.brain.settings.checkout_text in text
    assert (await hold_of(chat, "PT-0006")).reminded_at is not None
    clock.advance(timedelta(hours=1))
    assert await remind(chat, redis_client) == 0  # once
    assert len(await unasked(chat)) == 1


async def test_no_reminder_after_the_customer_let_the_hold_go(
    make_chat: MakeChat, redis_client: aioredis.Redis, clock: Clock
) -> None:
    chat = await chat_in_window(make_chat, "cust-remind-released")
    await chat.say("hold PT-0006 please")
    await chat.say("cancel my hold on PT-0006")
    clock.advance(timedelta(hours=22))
    assert await remind(chat, redis_client) == 0
    assert await unasked(chat) == []


async def test_a_closed_window_is_counted_not_messaged(
    make_chat: MakeChat, redis_client: aioredis.Redis, clock: Clock
) -> None:
    chat = await chat_in_window(make_chat, "cust-remind-closed")
    await chat.say("hold PT-0006 please")
    chat.conversation.window_expires_at = utc_now() + timedelta(hours=10)
    await chat.session.flush()
    clock.advance(timedelta(hours=22))
    assert await remind(chat, redis_client) == 0
    ((kind, _, queued, reason),) = await unasked(chat)
    assert kind is ProactiveKind.HOLD_REMINDER and not queued and reason and "window" in reason
    assert (await hold_of(chat, "PT-0006")).reminded_at is not None  # counted once
    clock.advance(timedelta(minutes=30))
    assert await remind(chat, redis_client) == 0
    assert len(await unasked(chat)) == 1


async def test_the_last_slot_of_the_quota_is_kept_for_a_hand_off(
    make_chat: MakeChat, redis_client: aioredis.Redis, clock: Clock
) -> None:
    chat = await chat_in_window(make_chat, "cust-remind-quota")
    await chat.say("hold PT-0006 please")
    clock.advance(timedelta(hours=22))
    window = WindowService(redis_client, chat.brain.settings)
    stamp = int(utc_now().timestamp() * 1000)
    window_end = window.opened_until(stamp)
    assert window_end is not None
    await window.open(chat.customer.tiktok_user_id, window_end)
    for _ in range(chat.brain.settings.reply_quota - 1):
        assert await window.reserve_reply(chat.customer.tiktok_user_id, chat.conversation) is None
    assert await remind(chat, redis_client) == 0
    ((_, _, queued, reason),) = await unasked(chat)
    assert not queued and reason and "quota" in reason


@pytest.mark.parametrize("why", ["person", "recent", "quiet"])
async def test_a_courtesy_message_waits_and_goes_out_later(
    make_chat: MakeChat, redis_client: aioredis.Redis, clock: Clock, why: str
) -> None:
    # Quiet hours 22:00-08:00 in the shop's zone, when the test says so.
    quiet = {"quiet_hours_start": 22, "quiet_hours_end": 8, "shop_timezone": "Asia/Tokyo"}
    chat = await chat_in_window(make_chat, f"cust-wait-{why}", **(quiet if why == "quiet" else {}))
    await chat.say("hold PT-0006 please")
    hold = await hold_of(chat, "PT-0006")
    assert hold.expires_at is not None
    if why == "person":
        chat.conversation.mode = ConversationMode.HUMAN
    elif why == "recent":
        chat.customer.last_proactive_at = utc_now()
    await chat.session.flush()
    if why == "quiet":
        # Lapsing at 05:00 Tokyo, due at 02:00: the reminder goes out before 22:00 the
        # evening before instead.
        tokyo = (utc_now() + timedelta(days=2)).astimezone(_TOKYO)
        hold.expires_at = tokyo.replace(hour=5, minute=0, second=0, microsecond=0)
        chat.conversation.window_expires_at = hold.expires_at + timedelta(hours=10)
        await chat.session.flush()
        clock.advance(hold.expires_at - utc_now() - timedelta(hours=4))  # 01:00, quiet
        assert await remind(chat, redis_client) == 0
        assert await unasked(chat) == []
        clock.advance(timedelta(hours=-3, minutes=-10))  # 21:50 the evening before
        assert await remind(chat, redis_client) == 1
        return
    clock.advance(hold.expires_at - utc_now() - timedelta(hours=2))
    assert await remind(chat, redis_client) == 0
    assert await unasked(chat) == [] and (await hold_of(chat, "PT-0006")).reminded_at is None
    if why == "person":
        chat.conversation.mode = ConversationMode.BOT
    else:
        chat.customer.last_proactive_at = utc_now() - timedelta(hours=25)
    await chat.session.flush()
    assert await remind(chat, redis_client) == 1


from zoneinfo import ZoneInfo  # noqa: E402

_TOKYO = ZoneInfo("Asia/Tokyo")


def test_quiet_hours_wrap_midnight_in_the_shops_zone() -> None:
    settings = Settings(quiet_hours_start=21, quiet_hours_end=9, shop_timezone="Europe/London")
    policy = ProactivePolicy(settings, WindowService.__new__(WindowService))
    winter = datetime(2026, 1, 10, tzinfo=UTC)
    summer = datetime(2026, 7, 10, tzinfo=UTC)
    assert policy.quiet_at(winter.replace(hour=21)) and policy.quiet_at(winter.replace(hour=8))
    assert not policy.quiet_at(winter.replace(hour=9)) and not policy.quiet_at(
        winter.replace(hour=20)
    )
    # British Summer Time: 20:00 UTC is 21:00 in London.
    assert policy.quiet_at(summer.replace(hour=20)) and not policy.quiet_at(summer.replace(hour=8))
    due = winter.replace(hour=23, minute=30)
    assert policy.last_moment_before_quiet(due) == winter.replace(hour=20, minute=45)
    assert policy.last_moment_before_quiet(winter.replace(hour=12)) == winter.replace(hour=12)
    none = Settings(quiet_hours_start=5, quiet_hours_end=5)
    assert not ProactivePolicy(none, WindowService.__new__(WindowService)).quiet_at(winter)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        Settings(shop_timezone="Mars/Olympus")


def test_the_wording_names_the_piece_and_the_way_out() -> None:
    assert "{checkout}" in replies.HOLD_REMINDER and "CANCEL HOLD" in replies.HOLD_REMINDER
    assert "{order}" in replies.SALE_CONFIRMED


async def test_a_piece_put_back_on_sale_after_its_order_stays_on_sale(
    make_chat: MakeChat, redis_client: aioredis.Redis
) -> None:
    holder = await chat_in_window(make_chat, "cust-returned")
    await holder.say("hold PT-0006")
    piece_sold = await piece(holder, "PT-0006")
    await OrderRepository(holder.session).record_paid(holder.customer.id, piece_sold, utc_now())
    settings = holder.brain.settings
    first = await record_sales(holder.session, settings, policy(holder, redis_client), utc_now())
    assert first.sold == 1
    # Returned and relisted by the shop: the order still names it, the sale was applied once.
    piece_sold.status = ItemStatus.AVAILABLE
    await holder.session.flush()
    again = await record_sales(holder.session, settings, policy(holder, redis_client), utc_now())
    assert (again.sold, again.outbox_ids) == (0, [])
    assert (await piece(holder, "PT-0006")).status is ItemStatus.AVAILABLE
