"""A hold's follow-through, as a sales assistant would do it: a recorded order turns it into
a sale (the buyer is thanked, the waitlist told the piece is gone), its customer is reminded
once before it lapses, and it lapses by itself.

An order is recorded by the admin, the orders CSV import, or "mark paid" on the hold in the
inbox. Every one of them ends in `record_sales`, which settles whatever piece is on an order
and not yet sold; the beat task runs it too, so an order written any other way (a SQL
console, a future integration) still leaves no hold dangling. What the customers are told
goes through `ProactivePolicy` (window, quota, quiet hours) and the outbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import redis.asyncio as aioredis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utc_now
from app.core.config import Settings
from app.core.errors import Conflict
from app.core.logging import get_logger
from app.db.models import (
    AlertSubscription,
    Customer,
    HoldStatus,
    Item,
    ItemStatus,
    Order,
    ProactiveKind,
)
from app.db.repositories.alerts import AlertRepository
from app.db.repositories.conversations import ConversationRepository
from app.db.repositories.holds import HoldRepository, WaitlistRepository
from app.db.repositories.items import ItemRepository
from app.db.repositories.orders import OrderRepository
from app.db.session import SessionFactory, transaction
from app.services import replies
from app.services.messaging.proactive import Outcome, ProactivePolicy, Said
from app.services.messaging.window import WindowService
from app.services.shop.context import load_context, save_context
from app.services.shop.describe import alert_subject, item_line, item_name, price, until
from app.services.shop.holds import expire_lapsed_holds
from app.services.shop.sizing import fit_of
from app.services.turns import Reply

log = get_logger(__name__)


@dataclass
class FollowThrough:
    sold: int = 0
    converted: int = 0  # of those, held by their buyer
    reminded: int = 0
    alerted: int = 0
    counted: int = 0  # messages the window or quota did not allow: recorded, not sent
    expired: int = 0
    outbox_ids: list[int] = field(default_factory=list)

    def took(self, said: Said) -> None:
        self.outbox_ids.extend(said.outbox_ids)
        if said.outcome is Outcome.COUNTED:
            self.counted += 1


def policy_for(settings: Settings, redis: aioredis.Redis) -> ProactivePolicy:
    return ProactivePolicy(settings, WindowService(redis, settings))


async def record_sales(
    session: AsyncSession,
    settings: Settings,
    policy: ProactivePolicy,
    now: datetime,
    *,
    item_ids: Sequence[int] | None = None,
    limit: int = 200,
    report: FollowThrough | None = None,
) -> FollowThrough:
    """Every piece on a newly recorded order (not cancelled) becomes sold: a hold its buyer
    had is converted and its buyer thanked; anyone else holding or waiting for it is told.
    Each order line is applied once: a piece the shop puts back on sale later stays so."""
    report = report or FollowThrough()
    sold: set[int] = set()
    for line, item, order in await OrderRepository(session).unsettled_lines(limit, item_ids):
        line.settled_at = now
        if item.id in sold or item.status is ItemStatus.SOLD:
            continue  # an earlier order of the piece, or the shop marked it sold already
        sold.add(item.id)
        await _sell(session, settings, policy, item, order, now, report)
    await session.flush()
    return report


async def _sell(
    session: AsyncSession,
    settings: Settings,
    policy: ProactivePolicy,
    item: Item,
    order: Order,
    now: datetime,
    report: FollowThrough,
) -> None:
    hold = await HoldRepository(session).active_for_item(item.id)
    item.status = ItemStatus.SOLD
    report.sold += 1
    told = {order.customer_id}
    gone = replies.WAITLIST_SOLD.format(item=item_name(item))
    if hold is not None:
        hold.ended_at = now
        if hold.customer_id == order.customer_id:
            hold.status = HoldStatus.CONVERTED
            hold.order_id = order.id
            report.converted += 1
            if settings.sale_confirmations:
                thanks = replies.SALE_CONFIRMED.format(
                    item=item_name(item), order=order.order_number
                )
                await _tell(
                    session,
                    policy,
                    order.customer_id,
                    ProactiveKind.SALE_CONFIRMATION,
                    thanks,
                    now,
                    report,
                )
        else:
            # Sold to someone else (in person, on another channel): the hold cannot stand.
            hold.status = HoldStatus.RELEASED
            if hold.customer_id is not None:
                told.add(hold.customer_id)
                await _tell(
                    session,
                    policy,
                    hold.customer_id,
                    ProactiveKind.WAITLIST_SOLD,
                    gone,
                    now,
                    report,
                )
    for entry in await WaitlistRepository(session).waiting(item.id):
        entry.notified_at = now
        if entry.customer_id not in told:
            told.add(entry.customer_id)
            await _tell(
                session, policy, entry.customer_id, ProactiveKind.WAITLIST_SOLD, gone, now, report
            )
    await session.flush()
    log.info(
        "piece_sold",
        sku=item.sku,
        order=order.order_number,
        hold_id=hold.id if hold else None,
        converted=hold is not None and hold.status is HoldStatus.CONVERTED,
    )


async def _tell(
    session: AsyncSession,
    policy: ProactivePolicy,
    customer_id: int,
    kind: ProactiveKind,
    text: str,
    now: datetime,
    report: FollowThrough,
) -> Said | None:
    found = await ConversationRepository(session).latest_of_customer(customer_id)
    if found is None:
        return None  # never wrote to the shop: there is nobody to message
    conversation, customer = found
    said = await policy.say(session, conversation, customer, kind, [Reply(text)], now)
    report.took(said)
    return said


async def remind_lapsing_holds(
    session: AsyncSession,
    settings: Settings,
    policy: ProactivePolicy,
    now: datetime,
    *,
    limit: int = 200,
    report: FollowThrough | None = None,
) -> FollowThrough:
    """One reminder per hold, HOLD_REMINDER_LEAD_HOURS before it lapses (earlier when that
    moment falls in the quiet hours), with how to pay. A hold released or sold first is not
    active any more and gets none; one the window or quota does not allow is counted."""
    report = report or FollowThrough()
    lead = timedelta(hours=settings.hold_reminder_lead_hours)
    horizon = now + lead + timedelta(days=1)
    for hold, item in await HoldRepository(session).awaiting_reminder(now, horizon, limit):
        assert hold.customer_id is not None and hold.expires_at is not None
        due = policy.last_moment_before_quiet(hold.expires_at - lead)
        if now < due:
            continue
        if due <= hold.created_at:
            # A hold shorter than the lead: its confirmation said when it ends.
            hold.reminded_at = now
            continue
        text = replies.HOLD_REMINDER.format(
            item=item_name(item),
            until=until(hold.expires_at),
            price=price(item),
            checkout=settings.checkout_text,
        )
        said = await _tell(
            session, policy, hold.customer_id, ProactiveKind.HOLD_REMINDER, text, now, report
        )
        if said is not None and said.outcome is Outcome.LATER:
            continue
        hold.reminded_at = now
        if said is not None and said.outcome is Outcome.QUEUED:
            report.reminded += 1
    await session.flush()
    return report


MAX_ALERT_PIECES = 3


async def send_drop_alerts(
    session: AsyncSession,
    settings: Settings,
    policy: ProactivePolicy,
    now: datetime,
    *,
    report: FollowThrough | None = None,
) -> FollowThrough:
    """Each opted-in customer hears about the pieces listed since their last alert that fit
    what they asked for: one message with at most three of them, and a photo of the first.
    Pieces come in through the catalogue import, the admin, or a drop published there; a
    piece sold before the alert goes out is left out. A customer whose window is closed is
    counted, not messaged; one in quiet hours or messaged in the last day waits."""
    report = report or FollowThrough()
    subscriptions = await AlertRepository(session).active_with_customers()
    if not subscriptions:
        return report
    since = min(subscription.seen_until for subscription, _ in subscriptions)
    listed = await ItemRepository(session).listed_between(since, now)
    if not listed:
        return report
    chart = list(settings.size_chart_pit_to_pit_in)
    customers: dict[int, tuple[Customer, list[AlertSubscription]]] = {}
    for subscription, customer in subscriptions:
        customers.setdefault(customer.id, (customer, []))[1].append(subscription)
    for customer, theirs in customers.values():
        fitting: list[tuple[Item, AlertSubscription]] = []
        for item, listed_at in listed:
            match = _first_match(theirs, item, listed_at, chart)
            if match is not None:
                fitting.append((item, match))
            if len(fitting) == MAX_ALERT_PIECES:
                break
        said = await _alert(session, settings, policy, customer, fitting, now) if fitting else None
        if said is not None and said.outcome is Outcome.LATER:
            continue
        for subscription in theirs:
            subscription.seen_until = max(subscription.seen_until, now)
        if said is not None:
            report.took(said)
            if said.outcome is Outcome.QUEUED:
                report.alerted += 1
    await session.flush()
    return report


def _first_match(
    subscriptions: Sequence[AlertSubscription],
    item: Item,
    listed_at: datetime,
    chart: list[Decimal],
) -> AlertSubscription | None:
    for subscription in subscriptions:
        if listed_at <= subscription.seen_until:
            continue
        if subscription.category is not None and item.category != subscription.category:
            continue
        if subscription.size is not None and fit_of(item, chart).size != subscription.size:
            continue
        return subscription
    return None


async def _alert(
    session: AsyncSession,
    settings: Settings,
    policy: ProactivePolicy,
    customer: Customer,
    fitting: Sequence[tuple[Item, AlertSubscription]],
    now: datetime,
) -> Said | None:
    found = await ConversationRepository(session).latest_of_customer(customer.id)
    if found is None:
        return None
    conversation, _ = found
    chart = list(settings.size_chart_pit_to_pit_in)
    first, subscription = fitting[0]
    text = replies.DROP_ALERT.format(
        what=alert_subject(subscription.category, subscription.size),
        lines="\n".join(item_line(item, chart) for item, _ in fitting),
    )
    planned = [Reply(text)]
    if settings.images_enabled and first.images:
        planned.append(Reply(image_url=first.images[0].url))
    said = await policy.say(session, conversation, customer, ProactiveKind.DROP_ALERT, planned, now)
    if said.outcome is Outcome.QUEUED:
        # So that "hold the first one" or a bare SKU answers the alert.
        context = load_context(conversation)
        context.remember_list([item.sku for item, _ in fitting])
        save_context(conversation, context)
    log.info("drop_alert", outcome=said.outcome, pieces=[item.sku for item, _ in fitting])
    return said


Enqueue = Callable[[Sequence[int]], Awaitable[None]]


class HoldNotActive(Conflict):
    code = "hold_not_active"

    def __init__(self) -> None:
        super().__init__(
            "That hold has ended (sold, released or lapsed) or is not this customer's: "
            "reload the conversation."
        )


async def sell_hold(
    session_factory: SessionFactory,
    settings: Settings,
    redis: aioredis.Redis,
    enqueue: Enqueue,
    *,
    hold_id: int,
    customer_id: int,
    now: datetime | None = None,
) -> str:
    """ "Mark paid" on a hold: an order paid now for the held piece, at its price, and the
    sale that follows from it (`record_sales`). Returns the new order's number."""
    now = now or utc_now()
    policy = policy_for(settings, redis)
    for attempt in range(3):
        try:
            async with transaction(session_factory) as session:
                found = await HoldRepository(session).active_with_item(hold_id)
                if found is None or found[0].customer_id != customer_id:
                    raise HoldNotActive
                item = found[1]
                order = await OrderRepository(session).record_paid(customer_id, item, now)
                report = await record_sales(session, settings, policy, now, item_ids=[item.id])
                number = order.order_number
        except IntegrityError:
            # Another order took the same number at the same instant: take the next one.
            if attempt == 2:
                raise
            continue
        break
    log.info("hold_marked_paid", hold_id=hold_id, order=number, sold=report.sold)
    await enqueue(report.outbox_ids)
    return number


async def run_followthrough(
    session_factory: SessionFactory,
    settings: Settings,
    redis: aioredis.Redis,
    enqueue: Enqueue,
    now: datetime | None = None,
) -> FollowThrough:
    """What the `philia.expire_holds` beat task runs: sales, lapsed holds (their first
    waitlisted customer told), reminders, in one transaction; the messages are enqueued once
    it is committed (a rolled-back run messages nobody; the outbox sweeper sends what the
    enqueue misses)."""
    now = now or utc_now()
    policy = policy_for(settings, redis)
    async with transaction(session_factory) as session:
        report = await record_sales(session, settings, policy, now)
        expiry = await expire_lapsed_holds(session, policy, now)
        report.expired = expiry.expired
        report.outbox_ids.extend(expiry.outbox_ids)
        if settings.hold_reminders:
            await remind_lapsing_holds(session, settings, policy, now, report=report)
        if settings.drop_alerts:
            await send_drop_alerts(session, settings, policy, now, report=report)
    if report.outbox_ids:
        try:
            await enqueue(report.outbox_ids)
        except Exception as error:
            log.warning("followthrough_enqueue_failed", error=repr(error), outbox=report.outbox_ids)
    return report
