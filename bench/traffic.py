"""A month of DM traffic, generated deterministically and written straight to the database:
the truth the insights test checks the page against (computing its numbers from these
records, in Python), and the 100,000 messages `make bench` renders /insights over.

Every customer has one conversation. Each customer message gets the bot's answer (created
a second later, taken by TikTok some seconds after); asking for a person gets a staff reply
most of the time, some minutes later, and a conversation left waiting stays with a person.
Some answers lead to holds (sold, expired, released or still running), some customers are
sent reminders or alerts (a few not allowed: window closed), a few events are parked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.models import (
    Conversation,
    Customer,
    DeadLetter,
    Handoff,
    Hold,
    Item,
    Message,
    WaitlistEntry,
)

INTENTS = (
    ("availability", 30), ("sizing", 14), ("price", 10), ("hold", 8), ("order_status", 12),
    ("new_drops", 6), ("policy", 7), ("menu", 5), ("thanks", 4), ("human", 3), ("other", 1),
)  # fmt: skip
LAYERS = (("local", 60), ("pattern", 25), ("menu", 10), ("llm", 5))
PIECE_INTENTS = frozenset({"availability", "sizing", "price", "hold"})
SIZES = ("S", "M", "L", "XL")
HOURS = [1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 7, 6, 6, 7, 8, 9, 10, 10, 8, 5, 2]
HANDOFF_REASONS = (
    "customer asked for a person",
    "reply quota nearly spent",
    "asked about many order numbers that are not theirs",
)
WINDOW_CLOSED = "window closed: the customer's last message is over 48 h old"
LATE = "window closed before the message was handled: nothing sent"
PROACTIVE_KINDS = ("hold_reminder", "drop_alert", "waitlist_back", "sale_confirmation")


@dataclass
class SeedItem:
    sku: str
    fits_like: str
    status: str
    created_at: datetime


@dataclass
class SeedMessage:
    conversation: int  # index into Traffic.customers
    direction: str
    created_at: datetime
    sent_at: datetime | None = None
    intent: str | None = None
    layer: str | None = None
    sent_by: str | None = None
    status: str = "processed"
    status_reason: str | None = None
    proactive_kind: str | None = None
    entities: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeedHold:
    customer: int
    sku: str
    created_at: datetime
    status: str


@dataclass
class Traffic:
    first_day: date
    days: int
    tz: str
    customers: list[str] = field(default_factory=list)
    items: list[SeedItem] = field(default_factory=list)
    messages: list[SeedMessage] = field(default_factory=list)
    holds: list[SeedHold] = field(default_factory=list)
    waitlist: list[tuple[int, str]] = field(default_factory=list)
    dead_letters: list[datetime] = field(default_factory=list)
    handoffs: list[tuple[int, datetime, str]] = field(default_factory=list)  # customer, when, why
    # Conversations a person has taken and not answered yet: since when.
    waiting: dict[int, datetime] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)  # pieces with a running hold


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _ in table], weights=[w for _, w in table])[0]


def month_of_traffic(
    first_day: date, days: int = 30, per_day: int = 40, tz: str = "UTC", seed: int = 7
) -> Traffic:
    rng = random.Random(seed)
    zone = ZoneInfo(tz)
    traffic = Traffic(first_day, days, tz)
    start = datetime.combine(first_day, time(), zone).astimezone(UTC)
    traffic.items = [
        SeedItem(
            f"PT-{9000 + n:04d}",
            SIZES[n % len(SIZES)],
            "available" if n % 3 else "sold",
            start - timedelta(days=rng.randint(1, 60)),
        )
        for n in range(16)
    ]
    customers = max(3, per_day * days // 4)
    traffic.customers = [f"seed-customer-{n}" for n in range(customers)]
    moments: dict[int, list[datetime]] = {n: [] for n in range(customers)}
    for day in range(days):
        local_day = datetime.combine(first_day + timedelta(days=day), time(), zone)
        for _ in range(per_day):
            hour = rng.choices(range(24), weights=HOURS)[0]
            at = local_day + timedelta(hours=hour, seconds=rng.randint(0, 3599))
            moments[rng.randrange(customers)].append(at.astimezone(UTC))
    for customer, times in moments.items():
        last_end: datetime | None = None
        for at in sorted(times):
            if last_end is not None and at <= last_end + timedelta(seconds=60):
                at = last_end + timedelta(seconds=61)  # one message after the other's answer
            last_end = _a_turn(rng, traffic, customer, at)
    for day in range(days):
        _a_day_of_the_shop(rng, traffic, start + timedelta(days=day))
    return traffic


def _a_turn(rng: random.Random, traffic: Traffic, customer: int, at: datetime) -> datetime:
    intent = _weighted(rng, INTENTS)
    entities: dict[str, Any] = {}
    if intent in PIECE_INTENTS and rng.random() < 0.7:
        entities["sku"] = rng.choice(traffic.items).sku
    if intent in PIECE_INTENTS and rng.random() < 0.6:
        # The piece the answer was about: the one named, or one found by words or a video.
        entities["pieces"] = [entities.get("sku") or rng.choice(traffic.items).sku]
    if intent in ("sizing", "new_drops") and rng.random() < 0.5:
        entities["size"] = rng.choice((*SIZES, "XS", "XXL"))
    if rng.random() < 0.02:
        # Reached the worker after its window had closed (TikTok delivering days late):
        # recorded, not routed, never answered.
        traffic.messages.append(
            SeedMessage(customer, "inbound", at, sent_at=at - timedelta(days=3),
                        status_reason=LATE)
        )  # fmt: skip
        return at
    traffic.messages.append(
        SeedMessage(
            customer,
            "inbound",
            at,
            sent_at=at - timedelta(seconds=rng.randint(0, 3)),  # TikTok's stamp, a bit earlier
            intent=intent,
            layer=_weighted(rng, LAYERS),
            entities=entities,
        )
    )
    answered = at + timedelta(seconds=1)
    traffic.messages.append(
        SeedMessage(
            customer,
            "outbound",
            answered,
            sent_at=answered + timedelta(seconds=round(rng.uniform(0.2, 25.0), 3)),
            sent_by="bot",
            status="sent",
        )
    )
    end = answered
    if intent == "hold" and "sku" in entities and rng.random() < 0.8:
        status = rng.choice(("converted", "converted", "expired", "released", "active"))
        if status == "active":
            # One running hold per piece (the database's unique index).
            if entities["sku"] in traffic.held:
                status = "expired"
            traffic.held.add(entities["sku"])
        traffic.holds.append(SeedHold(customer, entities["sku"], at + timedelta(seconds=2), status))
    if intent == "availability" and "sku" in entities and rng.random() < 0.1:
        traffic.waitlist.append((customer, entities["sku"]))
    reason = HANDOFF_REASONS[0] if intent == "human" else None
    if reason is None and rng.random() < 0.03:
        reason = rng.choice(HANDOFF_REASONS[1:])
    if reason is not None:
        traffic.handoffs.append((customer, answered, reason))
        if rng.random() < 0.75:
            replied = at + timedelta(minutes=rng.randint(2, 240), seconds=rng.randint(0, 59))
            traffic.messages.append(
                SeedMessage(customer, "outbound", replied, sent_at=replied, sent_by="staff",
                            status="sent")
            )  # fmt: skip
            end = replied
            traffic.waiting.pop(customer, None)
        else:
            traffic.waiting[customer] = at
    return end


def _a_day_of_the_shop(rng: random.Random, traffic: Traffic, day_start: datetime) -> None:
    for _ in range(rng.randint(0, 3)):
        at = day_start + timedelta(hours=rng.randint(10, 19), minutes=rng.randint(0, 59))
        kind = rng.choice(PROACTIVE_KINDS)
        allowed = rng.random() < 0.8
        traffic.messages.append(
            SeedMessage(
                rng.randrange(len(traffic.customers)),
                "outbound",
                at,
                sent_at=at + timedelta(seconds=1) if allowed else None,
                sent_by="bot",
                status="sent" if allowed else "not_sent",
                status_reason=None if allowed else WINDOW_CLOSED,
                proactive_kind=kind,
            )
        )
    if rng.random() < 0.2:
        traffic.dead_letters.append(day_start + timedelta(hours=rng.randint(0, 23)))


async def write(engine: AsyncEngine, traffic: Traffic, batch: int = 5000) -> None:
    """Insert the traffic as rows, in one transaction (Core inserts: 100,000 messages in
    seconds)."""
    table = _tables()
    async with engine.begin() as connection:
        customer_ids = []
        for name in traffic.customers:
            customer_ids.append(
                await connection.scalar(
                    insert(table["customers"]).values(tiktok_user_id=name, username=name)
                    .returning(table["customers"].c.id)
                )
            )  # fmt: skip
        conversation_ids = []
        for n, customer_id in enumerate(customer_ids):
            waiting_since = traffic.waiting.get(n)
            conversation_ids.append(
                await connection.scalar(
                    insert(table["conversations"])
                    .values(
                        tiktok_conversation_id=f"seed-conv-{n}",
                        customer_id=customer_id,
                        mode="human" if waiting_since else "bot",
                        human_since=waiting_since,
                        replies_in_window=0,
                        last_inbound_sequence=0,
                        context={},
                    )
                    .returning(table["conversations"].c.id)
                )
            )
        item_ids: dict[str, int] = {}
        for item in traffic.items:
            item_ids[item.sku] = await connection.scalar(
                insert(table["items"])
                .values(
                    sku=item.sku, title=f"Seeded tee {item.sku}", category="tops",
                    gender="unisex", fits_like=item.fits_like, condition="good",
                    price=Decimal("20.00"), currency="USD", status=item.status,
                    created_at=item.created_at,
                )
                .returning(table["items"].c.id)
            )  # fmt: skip
        rows: list[dict[str, Any]] = [
            {
                "conversation_id": conversation_ids[m.conversation],
                "direction": m.direction,
                "message_type": "text",
                "text": "seeded",
                "payload": {},
                "entities": m.entities,
                "status": m.status,
                "status_reason": m.status_reason,
                "intent": m.intent,
                "router_source": m.layer,
                "sent_by": m.sent_by,
                "sent_at": m.sent_at,
                "proactive_kind": m.proactive_kind,
                "created_at": m.created_at,
            }
            for m in traffic.messages
        ]
        for offset in range(0, len(rows), batch):
            await connection.execute(insert(table["messages"]), rows[offset : offset + batch])
        for hold in traffic.holds:
            await connection.execute(
                insert(table["holds"]).values(
                    item_id=item_ids[hold.sku], customer_id=customer_ids[hold.customer],
                    status=hold.status, created_at=hold.created_at,
                    expires_at=hold.created_at + timedelta(hours=24),
                    ended_at=None if hold.status == "active" else hold.created_at,
                )
            )  # fmt: skip
        for customer, sku in dict.fromkeys(traffic.waitlist):
            await connection.execute(
                insert(table["waitlist"]).values(
                    item_id=item_ids[sku], customer_id=customer_ids[customer]
                )
            )
        for customer, at, reason in traffic.handoffs:
            await connection.execute(
                insert(table["handoffs"]).values(
                    conversation_id=conversation_ids[customer], started_at=at, reason=reason
                )
            )
        for at in traffic.dead_letters:
            await connection.execute(
                insert(table["dead_letters"]).values(
                    kind="event", error="seeded", payload={}, attempts=1, status="parked",
                    created_at=at,
                )
            )  # fmt: skip


def _tables() -> dict[str, Table]:
    models = (Customer, Conversation, Item, Message, Hold, WaitlistEntry, DeadLetter, Handoff)
    return {model.__tablename__: cast(Table, model.__table__) for model in models}
