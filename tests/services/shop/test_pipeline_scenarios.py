"""ShopBrain inside the real pipeline (in process): webhook bodies in, TikTok sends out
through a collecting fake of TikTok's API, against the reference shop. Replays the public
conversation scenarios as a sanity check of intent, wording and message counts."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import get_settings
from app.db.models import (
    Conversation,
    Customer,
    Hold,
    HoldStatus,
    Item,
    Message,
    WaitlistEntry,
)
from app.db.session import create_session_factory
from app.services import replies
from app.services.messaging.delivery import DeliveryService
from app.services.messaging.inbound import InboundPipeline
from app.services.router import HybridRouter
from app.services.shop import HoldNotActive, ShopBrain, run_followthrough, sell_hold
from app.services.shop.context import load_context
from tests.conftest import SHARED_DIR, Clock
from tests.factories import Envelope, as_queued, image_message, share_post, text_message
from tests.fakes import CollectingSender, FixedMedia
from tests.services.shop.conftest import load_reference_shop

_ids = itertools.count(1)


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intent: str | None = None
    reply_contains: list[str] = Field(default_factory=list)
    reply_not_contains: list[str] = Field(default_factory=list)
    reply_matches: list[str] = Field(default_factory=list)
    replies: int | None = None
    images: int | None = None
    no_reply: bool = False


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    send: str | None = None
    share_post: str | None = None
    image: bool = False
    customer: str | None = None
    duplicate: int = 1
    expect: Expect = Field(default_factory=Expect)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    customer: str = "customer-1"
    turns: list[Turn]


def conversation_of(user_id: str) -> str:
    return f"conv-{user_id}"


def message_of(turn: Turn, user_id: str, message_id: str) -> Envelope:
    where: dict[str, Any] = {
        "message_id": message_id,
        "user_id": user_id,
        "conversation_id": conversation_of(user_id),
    }
    if turn.send is not None:
        return text_message(turn.send, **where)
    if turn.share_post is not None:
        return share_post(turn.share_post, **where)
    return image_message(**where)


@dataclass
class Shop:
    engine: AsyncEngine
    pipeline: InboundPipeline
    delivery: DeliveryService
    sender: CollectingSender
    queued: list[int] = field(default_factory=list)

    async def deliver(self) -> None:
        while self.queued:
            await self.delivery.deliver(self.queued.pop(0))

    async def play(self, user_id: str, text: str) -> tuple[str, list[Any]]:
        message_id = f"m-{next(_ids)}"
        seen = len(self.sender.sent)
        body = text_message(
            text, message_id=message_id, user_id=user_id, conversation_id=conversation_of(user_id)
        )
        await self.pipeline.handle(as_queued(body))
        await self.deliver()
        return message_id, self.sender.sent[seen:]

    async def intent_of(self, message_id: str) -> str | None:
        async with AsyncSession(self.engine) as session:
            return await session.scalar(
                select(Message.intent).where(Message.event_id == message_id)
            )


@pytest.fixture
async def shop(
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    shared_dir: Path,
    offline_router: HybridRouter,
) -> Shop:
    async with AsyncSession(committed_db) as session, session.begin():
        await load_reference_shop(session, shared_dir)
    settings = get_settings()
    factory = create_session_factory(committed_db)
    sender = CollectingSender()
    queued: list[int] = []

    async def enqueue(ids: Sequence[int]) -> None:
        queued.extend(ids)

    async def notify(conversation: Conversation, reason: str) -> None:
        return None

    brain = ShopBrain(settings, offline_router, redis=redis_client)
    pipeline = InboundPipeline(settings, factory, redis_client, brain, enqueue, notify)
    delivery = DeliveryService(settings, factory, redis_client, sender, FixedMedia())
    return Shop(committed_db, pipeline, delivery, sender, queued)


def public_scenarios() -> list[Any]:
    """Read at collection time; none (and the test skipped) without ../shared."""
    return [
        pytest.param(Scenario.model_validate(yaml.safe_load(path.read_text("utf-8"))), id=path.stem)
        for path in sorted((SHARED_DIR / "scenarios" / "public").glob("*.yaml"))
    ]


@pytest.mark.parametrize("scenario", public_scenarios())
async def test_public_scenario(shop: Shop, scenario: Scenario) -> None:
    failures: list[str] = []
    for number, turn in enumerate(scenario.turns, start=1):
        user_id = turn.customer or scenario.customer
        message_id = f"m-{next(_ids)}"
        body = as_queued(message_of(turn, user_id, message_id))
        seen = len(shop.sender.sent)
        for _ in range(turn.duplicate):
            await shop.pipeline.handle(body)
        await shop.deliver()
        sent = shop.sender.sent[seen:]
        text = "\n".join(message.text for message in sent if message.text)
        expect = turn.expect

        def fail(what: str, turn_number: int = number, said: str = text) -> None:
            failures.append(f"turn {turn_number}: {what}; bot said {said!r}")

        if expect.intent is not None:
            got = await shop.intent_of(message_id)
            if got != expect.intent:
                fail(f"intent {got} != {expect.intent}")
        for part in expect.reply_contains:
            if part.lower() not in text.lower():
                fail(f"missing {part!r}")
        for part in expect.reply_not_contains:
            if part.lower() in text.lower():
                fail(f"must not say {part!r}")
        for pattern in expect.reply_matches:
            if re.search(pattern, text) is None:
                fail(f"no match for {pattern!r}")
        if expect.replies is not None and len(sent) != expect.replies:
            fail(f"{len(sent)} replies != {expect.replies}")
        images = sum(1 for message in sent if message.media_id)
        if expect.images is not None and images != expect.images:
            fail(f"{images} images != {expect.images}")
        if expect.no_reply and sent:
            fail("replied although it must stay silent")
        if not expect.no_reply and not sent:
            fail("no reply at all")
        if len([m for m in sent if m.text]) > 1 or images > 1:
            fail("more than one text and one image for one turn")
    assert not failures, "\n".join(failures)


async def test_waitlist_notice_reaches_the_customer_through_the_outbox(shop: Shop) -> None:
    _, held = await shop.play("cust-holder", "can you hold PT-0009?")
    assert "on hold for you" in (held[0].text or "")
    await shop.play("cust-waiter", "is PT-0009 still available?")
    _, joined = await shop.play("cust-waiter", "waitlist")
    assert "#1 in line" in (joined[0].text or "")
    seen = len(shop.sender.sent)

    async def enqueue(ids: Sequence[int]) -> None:
        shop.queued.extend(ids)

    report = await run_followthrough(
        shop.pipeline.session_factory,
        shop.pipeline.settings,
        shop.pipeline.redis,
        enqueue,
        now=datetime.now(UTC) + timedelta(hours=25),
    )
    assert (report.expired, len(report.outbox_ids)) == (1, 1)
    await shop.deliver()
    (notice,) = shop.sender.sent[seen:]
    assert notice.conversation_id == "conv-cust-waiter"
    assert notice.text is not None and "PT-0009" in notice.text and "available again" in notice.text
    _, taken = await shop.play("cust-waiter", "yes!")
    assert "on hold for you" in (taken[0].text or "")


async def test_a_bug_mid_turn_leaves_nothing_behind_and_still_answers(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The brain writes, then fails: the turn's transaction goes back with all it wrote and
    the customer gets the apology, in a second transaction that records the message."""
    from app.services.shop.answers import Answers

    _, asked = await shop.play("cust-bug", "is PT-0005 available?")
    assert "waitlist" in (asked[0].text or "")
    original = Answers.waitlist

    async def broken(self: Answers, item: Item) -> str:
        await original(self, item)  # writes the waitlist entry...
        self.customer.usual_size = "XL"
        self.context.last_sku = "PT-0001"
        raise RuntimeError("bug")  # ...then fails

    monkeypatch.setattr(Answers, "waitlist", broken)
    message_id, answered = await shop.play("cust-bug", "waitlist")
    assert [message.text for message in answered] == [replies.SNAG]
    assert await shop.intent_of(message_id) == "other"
    async with AsyncSession(shop.engine) as session:
        assert await session.scalar(select(func.count()).select_from(WaitlistEntry)) == 0
        customer = await session.scalar(
            select(Customer).where(Customer.tiktok_user_id == "cust-bug")
        )
        assert customer is not None and customer.usual_size is None
        conversation = await session.scalar(
            select(Conversation).where(Conversation.customer_id == customer.id)
        )
        assert conversation is not None and conversation.mode == "bot"
        # The context is the one the previous answer left, not half of the failed one's.
        context = load_context(conversation)
        assert context.offer is not None and context.offer.action == "waitlist"
        assert context.last_sku == "PT-0005"
        status = await session.scalar(select(Message.status).where(Message.event_id == message_id))
        assert status == "processed"

    monkeypatch.setattr(Answers, "waitlist", original)
    _, joined = await shop.play("cust-bug", "waitlist")
    assert "in line" in (joined[0].text or "")


async def _active_hold(shop: Shop, sku: str) -> tuple[int, int]:
    async with AsyncSession(shop.engine) as session:
        row = (
            await session.execute(
                select(Hold.id, Hold.customer_id)
                .join(Item, Item.id == Hold.item_id)
                .where(Item.sku == sku, Hold.status == HoldStatus.ACTIVE)
            )
        ).one()
    assert row[1] is not None
    return row[0], row[1]


async def test_mark_paid_sells_the_held_piece_thanks_the_buyer_and_tells_the_waitlist(
    shop: Shop,
) -> None:
    await shop.play("cust-buyer", "can you hold PT-0009?")
    await shop.play("cust-wait", "is PT-0009 still available?")
    await shop.play("cust-wait", "waitlist")
    hold_id, customer_id = await _active_hold(shop, "PT-0009")
    seen = len(shop.sender.sent)

    async def enqueue(ids: Sequence[int]) -> None:
        shop.queued.extend(ids)

    pipeline = shop.pipeline

    async def mark_paid() -> str:
        return await sell_hold(
            pipeline.session_factory,
            pipeline.settings,
            pipeline.redis,
            enqueue,
            hold_id=hold_id,
            customer_id=customer_id,
        )

    number = await mark_paid()
    await shop.deliver()
    told = {message.conversation_id: message.text or "" for message in shop.sender.sent[seen:]}
    assert set(told) == {"conv-cust-buyer", "conv-cust-wait"}
    assert number in told["conv-cust-buyer"] and "yours" in told["conv-cust-buyer"]
    assert "sold" in told["conv-cust-wait"]
    _, status = await shop.play("cust-buyer", f"any news on order {number}?")
    assert number in (status[0].text or "")
    _, sold = await shop.play("cust-wait", "is PT-0009 still available?")
    assert "sold" in (sold[0].text or "")
    with pytest.raises(HoldNotActive):  # a second click, or a stale page
        await mark_paid()


async def test_the_hold_reminder_goes_out_once_and_can_be_answered(
    shop: Shop, clock: Clock
) -> None:
    await shop.play("cust-remind", "hold PT-0009 please")
    seen = len(shop.sender.sent)
    settings = shop.pipeline.settings.model_copy(
        update={"quiet_hours_start": 0, "quiet_hours_end": 0}
    )

    async def enqueue(ids: Sequence[int]) -> None:
        shop.queued.extend(ids)

    clock.advance(timedelta(hours=21, minutes=30))
    for _ in range(2):  # the beat runs every minute: one reminder all the same
        await run_followthrough(
            shop.pipeline.session_factory, settings, shop.pipeline.redis, enqueue
        )
        await shop.deliver()
    (reminder,) = shop.sender.sent[seen:]
    assert reminder.conversation_id == "conv-cust-remind"
    assert "PT-0009" in (reminder.text or "") and "CANCEL HOLD" in (reminder.text or "")
    _, released = await shop.play("cust-remind", "CANCEL HOLD")
    assert "let go" in (released[0].text or "")
