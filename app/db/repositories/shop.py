"""Queries of the thrift domain: finding pieces, holds, the waitlist, a customer's orders
and the FAQ. The shop brain and the hold expiry task read and write only through here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.db.models import (
    Conversation,
    Customer,
    Drop,
    FaqEntry,
    Hold,
    HoldStatus,
    Item,
    ItemStatus,
    ItemVideo,
    Order,
    OrderItem,
    WaitlistEntry,
)


@dataclass(frozen=True)
class SearchRow:
    """The words of a piece that customers use to name it."""

    sku: str
    title: str
    brand: str | None
    color: str | None
    category: str


class ShopItemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, sku: str) -> Item | None:
        # populate_existing: a hold or an expiry may have changed the row since this
        # session first loaded it, and availability answers must be current.
        return await self.session.scalar(
            select(Item)
            .where(Item.sku == sku)
            .options(selectinload(Item.images))
            .execution_options(populate_existing=True)
        )

    async def by_skus(self, skus: Sequence[str]) -> list[Item]:
        """The pieces in the order of `skus` (unknown SKUs left out)."""
        if not skus:
            return []
        found = await self.session.scalars(
            select(Item)
            .where(Item.sku.in_(skus))
            .options(selectinload(Item.images))
            .execution_options(populate_existing=True)
        )
        by_sku = {item.sku: item for item in found}
        return [by_sku[sku] for sku in skus if sku in by_sku]

    async def in_video(self, video_id: str) -> list[Item]:
        found = await self.session.scalars(
            select(Item)
            .join(ItemVideo, ItemVideo.item_id == Item.id)
            .where(ItemVideo.video_id == video_id)
            .order_by(Item.sku)
            .options(selectinload(Item.images))
            .execution_options(populate_existing=True)
        )
        return list(found)

    async def search_rows(self) -> list[SearchRow]:
        """Only the naming columns of every piece: word matching happens in Python, and a
        thrift shop's catalogue (thousands of rows at most) is a small read."""
        rows = await self.session.execute(
            select(Item.sku, Item.title, Item.brand, Item.color, Item.category).order_by(Item.sku)
        )
        return [SearchRow(*row) for row in rows.all()]

    async def available_in_category(self, category: str, exclude_sku: str) -> list[Item]:
        found = await self.session.scalars(
            select(Item)
            .where(
                Item.category == category,
                Item.status == ItemStatus.AVAILABLE.value,
                Item.sku != exclude_sku,
            )
            .order_by(Item.sku)
        )
        return list(found)

    async def available(self, category: str | None = None) -> list[Item]:
        statement = select(Item).where(Item.status == ItemStatus.AVAILABLE.value)
        if category is not None:
            statement = statement.where(Item.category == category)
        return list(await self.session.scalars(statement.order_by(Item.sku)))

    async def newest_available(self, limit: int | None = None) -> list[Item]:
        """Newest drop first (drop names sort by date), then SKU; pieces without a drop last."""
        statement = (
            select(Item)
            .outerjoin(Drop, Drop.id == Item.drop_id)
            .where(Item.status == ItemStatus.AVAILABLE.value)
            .order_by(Drop.name.desc().nulls_last(), Item.sku)
            .options(selectinload(Item.images))
        )
        if limit is not None:
            statement = statement.limit(limit)
        return list(await self.session.scalars(statement))


class ShopHoldRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_customer(self, customer_id: int) -> None:
        """Serialise one customer's hold requests so the per-customer limit holds even
        when they write from two conversations at once."""
        await self.session.execute(
            select(Customer.id).where(Customer.id == customer_id).with_for_update()
        )

    async def active_for_item(self, item_id: int) -> Hold | None:
        return await self.session.scalar(
            select(Hold)
            .where(Hold.item_id == item_id, Hold.status == HoldStatus.ACTIVE.value)
            .execution_options(populate_existing=True)
        )

    async def active_for_customer(self, customer_id: int) -> list[tuple[Hold, str]]:
        rows = await self.session.execute(
            select(Hold, Item.sku)
            .join(Item, Item.id == Hold.item_id)
            .where(Hold.customer_id == customer_id, Hold.status == HoldStatus.ACTIVE.value)
            .order_by(Hold.created_at, Hold.id)
        )
        return [(row[0], row[1]) for row in rows.all()]

    async def reserve_if_available(self, item_id: int) -> bool:
        """The atomic step of a hold: only one concurrent UPDATE can see `available`.
        PostgreSQL re-checks the WHERE clause after waiting for a competing writer."""
        reserved = await self.session.scalar(
            update(Item)
            .where(Item.id == item_id, Item.status == ItemStatus.AVAILABLE.value)
            .values(status=ItemStatus.RESERVED.value, updated_at=func.now())
            .returning(Item.id)
            .execution_options(synchronize_session=False)
        )
        return reserved is not None

    async def add(self, item_id: int, customer_id: int, expires_at: datetime) -> Hold:
        hold = Hold(
            item_id=item_id,
            customer_id=customer_id,
            status=HoldStatus.ACTIVE.value,
            expires_at=expires_at,
        )
        self.session.add(hold)
        await self.session.flush()
        return hold

    async def lapsed(self, now: datetime, limit: int) -> list[Hold]:
        """Customer holds past their expiry. Outside holds (no customer, no expiry) never
        lapse. SKIP LOCKED lets two beat runs share the work instead of waiting."""
        found = await self.session.scalars(
            select(Hold)
            .where(
                Hold.status == HoldStatus.ACTIVE.value,
                Hold.customer_id.is_not(None),
                Hold.expires_at.is_not(None),
                Hold.expires_at <= now,
            )
            .order_by(Hold.expires_at, Hold.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(found)

    async def release_item_if_reserved(self, item_id: int) -> Item | None:
        """Put a piece back on sale, unless staff sold it meanwhile."""
        released = await self.session.scalar(
            update(Item)
            .where(Item.id == item_id, Item.status == ItemStatus.RESERVED.value)
            .values(status=ItemStatus.AVAILABLE.value, updated_at=func.now())
            .returning(Item.id)
            .execution_options(synchronize_session=False)
        )
        if released is None:
            return None
        return await self.session.scalar(
            select(Item).where(Item.id == item_id).execution_options(populate_existing=True)
        )


class WaitlistRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def join(self, item_id: int, customer_id: int) -> bool:
        """True when the customer was added, False when already on the list."""
        added = await self.session.scalar(
            insert(WaitlistEntry)
            .values(item_id=item_id, customer_id=customer_id)
            .on_conflict_do_nothing(
                index_elements=[WaitlistEntry.item_id, WaitlistEntry.customer_id]
            )
            .returning(WaitlistEntry.id)
        )
        return added is not None

    async def position(self, item_id: int, customer_id: int) -> int | None:
        """1-based place among those not told yet; None when not waiting."""
        entry = await self.session.scalar(
            select(WaitlistEntry).where(
                WaitlistEntry.item_id == item_id, WaitlistEntry.customer_id == customer_id
            )
        )
        if entry is None:
            return None
        ahead = await self.session.scalar(
            select(func.count())
            .select_from(WaitlistEntry)
            .where(
                WaitlistEntry.item_id == item_id,
                WaitlistEntry.notified_at.is_(None),
                (WaitlistEntry.created_at < entry.created_at)
                | ((WaitlistEntry.created_at == entry.created_at) & (WaitlistEntry.id < entry.id)),
            )
        )
        return int(ahead or 0) + 1

    async def leave(self, item_id: int, customer_id: int) -> None:
        entry = await self.session.scalar(
            select(WaitlistEntry).where(
                WaitlistEntry.item_id == item_id, WaitlistEntry.customer_id == customer_id
            )
        )
        if entry is not None:
            await self.session.delete(entry)
            await self.session.flush()

    async def waiting(self, item_id: int) -> list[WaitlistEntry]:
        found = await self.session.scalars(
            select(WaitlistEntry)
            .where(WaitlistEntry.item_id == item_id, WaitlistEntry.notified_at.is_(None))
            .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
            .with_for_update()
        )
        return list(found)

    async def open_conversation(self, customer_id: int, now: datetime) -> Conversation | None:
        """The customer's conversation whose reply window (PostgreSQL's mirror of Redis) is
        still open; the delivery layer re-checks the real window before sending."""
        return await self.session.scalar(
            select(Conversation)
            .where(Conversation.customer_id == customer_id, Conversation.window_expires_at > now)
            .order_by(Conversation.window_expires_at.desc())
            .limit(1)
        )

    async def lock_conversation_if_free(self, conversation_id: int) -> Conversation | None:
        """The conversation row, unless a turn holds it right now (then None: the caller
        skips what it wanted to write rather than wait and risk a lock cycle)."""
        return await self.session.scalar(
            select(Conversation)
            .where(Conversation.id == conversation_id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )


class CustomerOrderRepository:
    """Orders seen through one customer: every query is scoped to the customer, so an
    order of someone else is indistinguishable from one that does not exist."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_number(self, customer_id: int, order_number: str) -> Order | None:
        return await self.session.scalar(
            select(Order)
            .where(Order.order_number == order_number, Order.customer_id == customer_id)
            .options(selectinload(Order.lines).selectinload(OrderItem.item))
        )

    async def recent(self, customer_id: int, limit: int) -> list[Order]:
        found = await self.session.scalars(
            select(Order)
            .where(Order.customer_id == customer_id)
            .order_by(Order.placed_at.desc(), Order.id.desc())
            .limit(limit)
            .options(selectinload(Order.lines).selectinload(OrderItem.item))
        )
        return list(found)


class FaqRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> Sequence[FaqEntry]:
        return (await self.session.scalars(select(FaqEntry).order_by(FaqEntry.topic))).all()

    async def by_topics(self, topics: Sequence[str]) -> dict[str, FaqEntry]:
        if not topics:
            return {}
        found = await self.session.scalars(select(FaqEntry).where(FaqEntry.topic.in_(topics)))
        return {entry.topic: entry for entry in found}
