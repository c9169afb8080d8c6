"""Holds and the waitlist: atomic holds, limits, expiry and the waitlist notice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.core.config import get_settings
from app.db.models import (
    Conversation,
    Customer,
    Hold,
    Item,
    Message,
    OutboxEntry,
    WaitlistEntry,
)
from app.db.session import create_session_factory, transaction
from app.services import replies
from app.services.router import HybridRouter
from app.services.shop import ShopBrain, expire_lapsed_holds, run_followthrough
from app.services.shop.context import load_context
from app.worker.celery_app import celery_app
from tests.factories import add_conversation_for, add_customer
from tests.services.shop.conftest import Chat, MakeChat, load_reference_shop, reply_text

if TYPE_CHECKING:
    from tests.conftest import TestServices


async def item(session: AsyncSession, sku: str) -> Item:
    found = await session.scalar(
        select(Item).where(Item.sku == sku).execution_options(populate_existing=True)
    )
    assert found is not None
    return found


async def active_holds(session: AsyncSession, sku: str) -> list[Hold]:
    found = await session.scalars(
        select(Hold)
        .join(Item, Item.id == Hold.item_id)
        .where(Item.sku == sku, Hold.status == "active")
        .execution_options(populate_existing=True)
    )
    return list(found)


# --- placing holds ----------------------------------------------------------------------


async def test_hold_reserves_the_piece_and_says_how_to_pay(make_chat: MakeChat) -> None:
    chat = await make_chat()
    result = await chat.say("can you hold PT-0006 for me?")
    text = reply_text(result)
    assert result.intent == "hold"
    assert "PT-0006" in text and "on hold for you until" in text and "$48" in text
    assert chat.brain.settings.checkout_text in text
    assert (await item(chat.session, "PT-0006")).status == "reserved"
    (hold,) = await active_holds(chat.session, "PT-0006")
    assert hold.customer_id == chat.customer.id and hold.expires_at is not None
    lasts = hold.expires_at - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < lasts <= timedelta(hours=24)
    again = reply_text(await chat.say("hold PT-0006 please"))
    assert (
        "on hold for you until" in again and len(await active_holds(chat.session, "PT-0006")) == 1
    )


async def test_hold_hours_is_a_setting(make_chat: MakeChat) -> None:
    chat = await make_chat(hold_hours=2)
    await chat.say("I'll take PT-0013")
    (hold,) = await active_holds(chat.session, "PT-0013")
    assert hold.expires_at is not None
    assert hold.expires_at - datetime.now(UTC) <= timedelta(hours=2)


async def test_yes_to_the_hold_offer_holds_the_piece(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("is PT-0009 still available?")
    assert "on hold for you" in reply_text(await chat.say("yes please"))
    assert (await item(chat.session, "PT-0009")).status == "reserved"


async def test_a_yes_later_is_not_an_answer_to_an_old_offer(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("is PT-0009 still available?")
    await chat.say("do you ship to Canada?")
    await chat.say("yes")
    assert (await item(chat.session, "PT-0009")).status == "available"


async def test_no_thanks_declines(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("is PT-0009 still available?")
    assert reply_text(await chat.say("no thanks")) == replies.DECLINED
    assert (await item(chat.session, "PT-0009")).status == "available"


async def test_hold_on_someone_elses_piece_joins_the_waitlist(make_chat: MakeChat) -> None:
    first = await make_chat("cust-first")
    await first.say("can you hold PT-0006 for me?")
    second = await make_chat("cust-second")
    assert "waitlist" in reply_text(await second.say("is PT-0006 available?")).lower()
    text = reply_text(await second.say("hold it"))
    assert "waitlist" in text and "#1 in line" in text
    waiting = await second.session.scalar(
        select(func.count())
        .select_from(WaitlistEntry)
        .where(WaitlistEntry.customer_id == second.customer.id)
    )
    assert waiting == 1
    (hold,) = await active_holds(second.session, "PT-0006")
    assert hold.customer_id == first.customer.id


async def test_sold_piece_cannot_be_held(make_chat: MakeChat) -> None:
    chat = await make_chat()
    text = reply_text(await chat.say("can you hold PT-0003 for me?"))
    assert "sold" in text and "PT-0015" in text
    assert await chat.session.scalar(select(func.count()).select_from(WaitlistEntry)) == 0


async def test_at_most_three_active_holds(make_chat: MakeChat) -> None:
    chat = await make_chat()
    for sku in ("PT-0006", "PT-0009", "PT-0013"):
        assert "on hold for you" in reply_text(await chat.say(f"can you hold {sku}?"))
    text = reply_text(await chat.say("can you hold PT-0014?"))
    assert "3 pieces on hold" in text
    assert "PT-0006" in text and "PT-0009" in text and "PT-0013" in text
    assert (await item(chat.session, "PT-0014")).status == "available"
    limited = await make_chat("cust-limited", max_holds_per_customer=1)
    await limited.say("hold PT-0015")
    assert "1 pieces on hold" in reply_text(await limited.say("hold PT-0016"))


# --- 50 customers, one piece ------------------------------------------------------------


@pytest.fixture
async def committed_shop(committed_db: AsyncEngine, shared_dir: Path) -> AsyncEngine:
    async with AsyncSession(committed_db) as session, session.begin():
        await load_reference_shop(session, shared_dir)
    return committed_db


async def make_conversations(engine: AsyncEngine, count: int) -> list[int]:
    ids: list[int] = []
    async with AsyncSession(engine) as session, session.begin():
        for index in range(count):
            customer = await add_customer(session, f"racer-{index}")
            conversation = await add_conversation_for(
                session, customer, conversation_id=f"race-{index}"
            )
            ids.append(conversation.id)
    return ids


@pytest.fixture
async def wide_engine(services: TestServices) -> AsyncIterator[AsyncEngine]:
    # One connection per customer, so the 50 holds really run at the same time.
    engine = create_async_engine(services.database_url, pool_size=50, max_overflow=0)
    yield engine
    await engine.dispose()


async def test_fifty_customers_one_piece_exactly_one_hold(
    committed_shop: AsyncEngine, wide_engine: AsyncEngine, offline_router: HybridRouter
) -> None:
    conversation_ids = await make_conversations(committed_shop, 50)
    brain = ShopBrain(get_settings(), offline_router)
    offline_router.warm_up()
    factory = create_session_factory(wide_engine)
    barrier = asyncio.Barrier(len(conversation_ids))

    async def customer_asks(conversation_id: int) -> str:
        async with transaction(factory) as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            customer = await session.get(Customer, conversation.customer_id)
            assert customer is not None
            message = Message(
                conversation_id=conversation_id,
                direction="inbound",
                message_type="text",
                text="can you hold PT-0001 for me?",
                payload={},
                entities={},
                status="received",
            )
            await session.execute(select(1))  # hold a connection before the start line
            await barrier.wait()
            result = await brain.respond(session, conversation, customer, [message])
            return reply_text(result)

    answers = await asyncio.gather(*(customer_asks(cid) for cid in conversation_ids))
    won = [answer for answer in answers if "on hold for you" in answer]
    waitlisted = [answer for answer in answers if "waitlist" in answer]
    assert len(won) == 1 and len(waitlisted) == 49
    async with AsyncSession(committed_shop) as session:
        assert len(await active_holds(session, "PT-0001")) == 1
        assert (await item(session, "PT-0001")).status == "reserved"
        waiting = await session.scalar(select(func.count()).select_from(WaitlistEntry))
        assert waiting == 49


# --- expiry and the waitlist notice ---------------------------------------------------------


async def outbox_texts(session: AsyncSession, conversation: Conversation) -> list[str | None]:
    found = await session.scalars(
        select(Message.text)
        .join(OutboxEntry, OutboxEntry.message_id == Message.id)
        .where(Message.conversation_id == conversation.id)
    )
    return list(found)


async def test_expiry_frees_the_piece_and_tells_only_the_first_open_waitlister(
    make_chat: MakeChat,
) -> None:
    holder = await make_chat("cust-holder")
    await holder.say("can you hold PT-0006 for me?")
    (hold,) = await active_holds(holder.session, "PT-0006")
    assert hold.expires_at is not None
    lapse = hold.expires_at + timedelta(minutes=1)
    waiters: list[Chat] = []
    for name in ("cust-closed", "cust-quota-kept", "cust-first-open", "cust-second-open"):
        waiter = await make_chat(name)
        await waiter.say("is PT-0006 available?")
        await waiter.say("WAITLIST")
        waiters.append(waiter)
    closed, quota_kept, first_open, second_open = waiters
    # First in line, but their 48 h window is over when the hold ends: cannot be told.
    closed.conversation.window_expires_at = lapse - timedelta(hours=1)
    # Second, with only the quota's last slot left: it stays kept for a person's follow-up.
    quota_kept.conversation.window_expires_at = lapse + timedelta(hours=20)
    quota_kept.conversation.replies_in_window = holder.brain.settings.reply_quota - 1
    first_open.conversation.window_expires_at = lapse + timedelta(hours=20)
    second_open.conversation.window_expires_at = lapse + timedelta(hours=30)
    await holder.session.flush()

    before = hold.expires_at - timedelta(seconds=1)
    early = await expire_lapsed_holds(holder.session, holder.brain.policy, before)
    assert early.expired == 0 and (await item(holder.session, "PT-0006")).status == "reserved"
    report = await expire_lapsed_holds(holder.session, holder.brain.policy, lapse)
    assert (report.expired, report.notified, len(report.outbox_ids)) == (1, 1, 1)
    assert (await item(holder.session, "PT-0006")).status == "available"
    await holder.session.refresh(hold)
    assert hold.status == "expired" and hold.ended_at == lapse

    (notice,) = await outbox_texts(holder.session, first_open.conversation)
    assert notice is not None and "PT-0006" in notice and "available again" in notice
    assert await outbox_texts(holder.session, closed.conversation) == []
    assert await outbox_texts(holder.session, quota_kept.conversation) == []
    assert await outbox_texts(holder.session, second_open.conversation) == []
    # Those passed over are counted, so the shop sees what the window and quota cost.
    unsent = (
        await holder.session.execute(
            select(Message.conversation_id, Message.status_reason)
            .where(Message.status == "not_sent", Message.proactive_kind == "waitlist_back")
            .order_by(Message.id)
        )
    ).all()
    assert [(c, reason.split(":")[0]) for c, reason in unsent] == [
        (closed.conversation.id, "window closed"),
        (quota_kept.conversation.id, "reply quota nearly spent"),
    ]
    entries = {
        entry.customer_id: entry.notified_at
        for entry in await holder.session.scalars(
            select(WaitlistEntry).execution_options(populate_existing=True)
        )
    }
    assert entries[first_open.customer.id] == lapse
    # Passed over, they stay in line for the next time the piece comes back.
    assert entries[closed.customer.id] is None and entries[quota_kept.customer.id] is None
    assert entries[second_open.customer.id] is None

    # The notice offers the hold: a bare "yes" takes it.
    await holder.session.refresh(first_open.conversation)
    assert load_context(first_open.conversation).offer is not None
    assert "on hold for you" in reply_text(await first_open.say("yes"))
    assert (await item(holder.session, "PT-0006")).status == "reserved"


async def test_holds_imported_as_reserved_never_expire(make_chat: MakeChat) -> None:
    chat = await make_chat()
    far = datetime.now(UTC) + timedelta(days=3650)
    report = await expire_lapsed_holds(chat.session, chat.brain.policy, far)
    assert report.expired == 0
    assert (await item(chat.session, "PT-0005")).status == "reserved"
    assert len(await active_holds(chat.session, "PT-0005")) == 1


async def test_a_piece_sold_meanwhile_stays_sold(make_chat: MakeChat) -> None:
    holder = await make_chat("cust-holder")
    await holder.say("can you hold PT-0013?")
    waiter = await make_chat("cust-waiter")
    await waiter.say("waitlist for PT-0013 please")
    waiter.conversation.window_expires_at = datetime.now(UTC) + timedelta(days=5)
    (await item(holder.session, "PT-0013")).status = "sold"  # staff sold it
    await holder.session.flush()
    report = await expire_lapsed_holds(
        holder.session, holder.brain.policy, datetime.now(UTC) + timedelta(days=2)
    )
    assert (report.expired, report.notified) == (1, 0)
    assert (await item(holder.session, "PT-0013")).status == "sold"
    assert await outbox_texts(holder.session, waiter.conversation) == []


async def test_expiry_task_enqueues_after_commit(
    committed_shop: AsyncEngine, offline_router: HybridRouter, redis_client: aioredis.Redis
) -> None:
    settings = get_settings()
    factory = create_session_factory(committed_shop)
    brain = ShopBrain(settings, offline_router)
    holder_id, waiter_id = await make_conversations(committed_shop, 2)
    for conversation_id, text in ((holder_id, "hold PT-0016"), (waiter_id, "waitlist PT-0016")):
        async with transaction(factory) as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            conversation.window_expires_at = datetime.now(UTC) + timedelta(days=3)
            customer = await session.get(Customer, conversation.customer_id)
            assert customer is not None
            message = Message(message_type="text", text=text, payload={})
            await brain.respond(session, conversation, customer, [message])
    enqueued: list[Sequence[int]] = []

    async def enqueue(ids: Sequence[int]) -> None:
        async with AsyncSession(committed_shop) as other:  # a separate connection sees it
            count = await other.scalar(
                select(func.count()).select_from(OutboxEntry).where(OutboxEntry.id.in_(ids))
            )
        assert count == len(ids)
        enqueued.append(ids)

    report = await run_followthrough(
        factory, settings, redis_client, enqueue, now=datetime.now(UTC) + timedelta(days=2)
    )
    assert report.expired == 1 and len(enqueued) == 1 and len(enqueued[0]) == 1


def test_expiry_runs_on_the_beat_schedule() -> None:
    import app.worker.tasks  # noqa: F401  (registers the tasks, as the worker does)

    schedule = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert "philia.expire_holds" in schedule
    assert "philia.expire_holds" in celery_app.tasks
    assert celery_app.conf.task_routes["philia.expire_holds"] == {"queue": "maintenance"}


async def test_several_skus_in_one_message(make_chat: MakeChat) -> None:
    chat = await make_chat()
    text = reply_text(await chat.say("can you hold PT-0014 and PT-0015 for me?"))
    assert text.count("on hold for you until") == 2 and "PT-0014" in text and "PT-0015" in text
    assert len(await active_holds(chat.session, "PT-0014")) == 1
    assert len(await active_holds(chat.session, "PT-0015")) == 1
    both = reply_text(await chat.say("are PT-0001 and PT-0003 available?"))
    assert "PT-0001" in both and "available" in both and "sold" in both


async def test_a_follow_up_after_a_hold_does_not_hold_the_next_piece(make_chat: MakeChat) -> None:
    chat = await make_chat()
    await chat.say("can you hold PT-0006?")
    follow = reply_text(await chat.say("and PT-0013?"))
    assert "PT-0013" in follow and "still available" in follow
    assert (await item(chat.session, "PT-0013")).status == "available"
    await chat.say("is PT-0018 available?")
    await chat.say("yes")  # joins the waitlist
    assert "PT-0020" in reply_text(await chat.say("what about PT-0020?"))
    assert (await item(chat.session, "PT-0020")).status == "available"


async def test_customer_releases_their_hold_and_the_waitlist_is_told(
    make_chat: MakeChat,
) -> None:
    holder = await make_chat("cust-holder")
    assert reply_text(await holder.say("cancel my hold")) == replies.HOLD_RELEASE_NONE
    await holder.say("can you hold PT-0006?")
    await holder.say("can you hold PT-0009?")
    waiter = await make_chat("cust-waiter")
    await waiter.say("waitlist for PT-0006 please")
    waiter.conversation.window_expires_at = datetime.now(UTC) + timedelta(hours=40)
    await holder.session.flush()
    which = reply_text(await holder.say("cancel my hold"))
    assert "PT-0006" in which and "PT-0009" in which  # several: asks which
    assert (await item(holder.session, "PT-0006")).status == "reserved"
    done = reply_text(await holder.say("cancel my hold on PT-0006"))
    assert done == replies.HOLD_RELEASED.format(item="Ralph Lauren Cable Knit Sweater (PT-0006)")
    assert (await item(holder.session, "PT-0006")).status == "available"
    assert (await item(holder.session, "PT-0009")).status == "reserved"
    (notice,) = await outbox_texts(holder.session, waiter.conversation)
    assert notice is not None and "PT-0006" in notice
    other = reply_text(await holder.say("cancel my hold on PT-0001"))
    assert other == replies.HOLD_RELEASE_NOT_YOURS.format(sku="PT-0001")
