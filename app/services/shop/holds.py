"""Holds and the waitlist.

A hold is one conditional UPDATE (`available` -> `reserved`) plus a Hold row, inside a
savepoint: whatever the number of customers asking at the same instant, PostgreSQL lets
exactly one UPDATE see `available`, and the partial unique index "one active hold per
item" backs it up should a row ever be inconsistent. Holds lapse by themselves (the
`philia.expire_holds` beat task); then the first waitlisted customer that TikTok's window
and quota allow is told (`ProactivePolicy`), through the outbox like any reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utc_now
from app.core.config import Settings
from app.core.logging import get_logger
from app.db.models import Customer, Hold, HoldStatus, Item, ItemStatus, ProactiveKind
from app.db.repositories.conversations import ConversationRepository
from app.db.repositories.holds import HoldRepository, WaitlistRepository
from app.services import replies
from app.services.messaging.proactive import Outcome, ProactivePolicy
from app.services.shop.context import Offer, load_context, save_context
from app.services.shop.describe import item_name, price
from app.services.turns import Reply

log = get_logger(__name__)


class HoldResult(StrEnum):
    HELD = "held"
    ALREADY_YOURS = "already_yours"
    TAKEN = "taken"  # reserved for someone else, or sold
    LIMIT = "limit"


@dataclass
class HoldOutcome:
    result: HoldResult
    hold: Hold | None = None
    held_skus: list[str] = field(default_factory=list)


async def place_hold(
    session: AsyncSession,
    settings: Settings,
    item: Item,
    customer: Customer,
    now: datetime | None = None,
) -> HoldOutcome:
    now = now or utc_now()
    holds = HoldRepository(session)
    await holds.lock_customer(customer.id)
    current = await holds.active_for_item(item.id)
    if current is not None and current.customer_id == customer.id:
        return HoldOutcome(HoldResult.ALREADY_YOURS, current)
    if item.status != ItemStatus.AVAILABLE or current is not None:
        return HoldOutcome(HoldResult.TAKEN)
    mine = await holds.active_for_customer(customer.id)
    if len(mine) >= settings.max_holds_per_customer:
        return HoldOutcome(HoldResult.LIMIT, held_skus=[sku for _, sku in mine])
    try:
        async with session.begin_nested():
            if not await holds.reserve_if_available(item.id):
                raise _LostRace
            hold = await holds.add(item.id, customer.id, now + timedelta(hours=settings.hold_hours))
    except (_LostRace, IntegrityError):
        # Someone else's hold committed first: the savepoint undid our half of it.
        await session.refresh(item)
        log.info("hold_lost_race", sku=item.sku)
        return HoldOutcome(HoldResult.TAKEN)
    item.status = ItemStatus.RESERVED
    await WaitlistRepository(session).leave(item.id, customer.id)
    log.info("hold_placed", sku=item.sku, hold_id=hold.id, expires_at=str(hold.expires_at))
    return HoldOutcome(HoldResult.HELD, hold)


class _LostRace(Exception):
    pass


async def join_waitlist(session: AsyncSession, item: Item, customer: Customer) -> tuple[bool, int]:
    """Add the customer to the piece's waitlist; (newly added, place in line)."""
    waitlist = WaitlistRepository(session)
    added = await waitlist.join(item.id, customer.id)
    position = await waitlist.position(item.id, customer.id)
    if added:
        log.info("waitlist_joined", sku=item.sku, position=position)
    return added, position or 1


@dataclass
class ExpiryReport:
    expired: int = 0
    notified: int = 0
    outbox_ids: list[int] = field(default_factory=list)


async def notify_first_waiting(
    session: AsyncSession, policy: ProactivePolicy, item: Item, now: datetime
) -> list[int]:
    """Tell the first waitlisted customer the window and quota allow that the piece is back;
    the outbox ids to enqueue after commit (empty when nobody can be told). Those passed
    over are counted as not sent, and stay in line for the next time."""
    waitlist = WaitlistRepository(session)
    conversations = ConversationRepository(session)
    notice = replies.WAITLIST_NOTICE.format(item=item_name(item), price=price(item), sku=item.sku)
    for entry in await waitlist.waiting(item.id):
        found = await conversations.latest_of_customer(entry.customer_id)
        if found is None:
            continue
        conversation, customer = found
        said = await policy.say(
            session, conversation, customer, ProactiveKind.WAITLIST_BACK, [Reply(notice)], now
        )
        if said.outcome is not Outcome.QUEUED:
            continue
        entry.notified_at = now
        # So that a bare "yes" / "hold" answers the notice. A conversation in the middle of
        # a turn is not waited for (that could deadlock with the turn's own hold).
        locked = await conversations.lock_if_free(conversation.id)
        if locked is not None:
            context = load_context(locked)
            context.offer = Offer(action="hold", sku=item.sku)
            context.remember_item(item.sku)
            save_context(locked, context)
        await session.flush()
        log.info("waitlist_notified", sku=item.sku, customer_id=entry.customer_id)
        return said.outbox_ids
    return []


async def end_hold(
    session: AsyncSession, policy: ProactivePolicy, hold: Hold, status: HoldStatus, now: datetime
) -> list[int]:
    """End a hold (expired, or released by its customer): the piece goes back on sale
    unless staff sold it meanwhile, and its first waitlisted customer is told. Returns
    the notice's outbox ids (the caller enqueues them after commit; the outbox sweeper
    sends any it does not)."""
    hold.status = status
    hold.ended_at = now
    await session.flush()
    item = await HoldRepository(session).release_item_if_reserved(hold.item_id)
    log.info("hold_ended", hold_id=hold.id, status=status.value, released=item is not None)
    if item is None:
        return []
    return await notify_first_waiting(session, policy, item, now)


async def expire_lapsed_holds(
    session: AsyncSession, policy: ProactivePolicy, now: datetime | None = None, limit: int = 200
) -> ExpiryReport:
    """End every customer hold past its expiry."""
    now = now or utc_now()
    report = ExpiryReport()
    for hold in await HoldRepository(session).lapsed(now, limit):
        outbox_ids = await end_hold(session, policy, hold, HoldStatus.EXPIRED, now)
        report.expired += 1
        if outbox_ids:
            report.notified += 1
            report.outbox_ids.extend(outbox_ids)
    return report
