"""Holds and the waitlist: the one-customer reservation of a piece, and who is told when it
comes back. Reserving and releasing a piece are atomic UPDATEs here, so two customers asking
at once can never both get it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Customer, Hold, HoldStatus, Item, ItemStatus, WaitlistEntry


class HoldRepository:
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
            .where(Hold.item_id == item_id, Hold.status == HoldStatus.ACTIVE)
            .execution_options(populate_existing=True)
        )

    async def active_for_customer(self, customer_id: int) -> list[tuple[Hold, str]]:
        rows = await self.session.execute(
            select(Hold, Item.sku)
            .join(Item, Item.id == Hold.item_id)
            .where(Hold.customer_id == customer_id, Hold.status == HoldStatus.ACTIVE)
            .order_by(Hold.created_at, Hold.id)
        )
        return [(row[0], row[1]) for row in rows.all()]

    async def reserve_if_available(self, item_id: int) -> bool:
        """The atomic step of a hold: only one concurrent UPDATE can see `available`.
        PostgreSQL re-checks the WHERE clause after waiting for a competing writer."""
        reserved = await self.session.scalar(
            update(Item)
            .where(Item.id == item_id, Item.status == ItemStatus.AVAILABLE)
            .values(status=ItemStatus.RESERVED, updated_at=func.now())
            .returning(Item.id)
            .execution_options(synchronize_session=False)
        )
        return reserved is not None

    async def add(self, item_id: int, customer_id: int, expires_at: datetime) -> Hold:
        hold = Hold(
            item_id=item_id,
            customer_id=customer_id,
            status=HoldStatus.ACTIVE,
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
                Hold.status == HoldStatus.ACTIVE,
                Hold.customer_id.is_not(None),
                Hold.expires_at.is_not(None),
                Hold.expires_at <= now,
            )
            .order_by(Hold.expires_at, Hold.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(found)

    async def active_with_item(self, hold_id: int) -> tuple[Hold, Item] | None:
        """An active hold and its piece, the hold locked."""
        row = (
            await self.session.execute(
                select(Hold, Item)
                .join(Item, Item.id == Hold.item_id)
                .where(Hold.id == hold_id, Hold.status == HoldStatus.ACTIVE)
                .with_for_update(of=Hold)
            )
        ).first()
        return (row[0], row[1]) if row is not None else None

    async def awaiting_reminder(
        self, now: datetime, lapsing_before: datetime, limit: int
    ) -> list[tuple[Hold, Item]]:
        """Customer holds still running that lapse before `lapsing_before` and have had no
        reminder, with their piece; locked, SKIP LOCKED as `lapsed`."""
        rows = await self.session.execute(
            select(Hold, Item)
            .join(Item, Item.id == Hold.item_id)
            .where(
                Hold.status == HoldStatus.ACTIVE,
                Hold.customer_id.is_not(None),
                Hold.reminded_at.is_(None),
                Hold.expires_at > now,
                Hold.expires_at <= lapsing_before,
            )
            .order_by(Hold.expires_at, Hold.id)
            .limit(limit)
            .with_for_update(of=Hold, skip_locked=True)
        )
        return [(hold, item) for hold, item in rows.all()]

    async def release_item_if_reserved(self, item_id: int) -> Item | None:
        """Put a piece back on sale, unless staff sold it meanwhile."""
        released = await self.session.scalar(
            update(Item)
            .where(Item.id == item_id, Item.status == ItemStatus.RESERVED)
            .values(status=ItemStatus.AVAILABLE, updated_at=func.now())
            .returning(Item.id)
            .execution_options(synchronize_session=False)
        )
        if released is None:
            return None
        return await self.session.scalar(
            select(Item).where(Item.id == item_id).execution_options(populate_existing=True)
        )

    async def count_active(self) -> int:
        count = await self.session.scalar(
            select(func.count()).select_from(Hold).where(Hold.status == HoldStatus.ACTIVE)
        )
        return int(count or 0)


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
