"""Customers' opt-ins to hear about new pieces, and their STOP."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import AlertSubscription, Category, Customer


class AlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def subscribe(
        self, customer_id: int, category: Category | None, size: str | None, now: datetime
    ) -> bool:
        """True when this is a new opt-in; False when the customer already has it. Only
        pieces listed from now on are alerted."""
        existing = await self.session.scalar(
            select(AlertSubscription.id).where(
                AlertSubscription.customer_id == customer_id,
                AlertSubscription.stopped_at.is_(None),
                AlertSubscription.category.is_(None)
                if category is None
                else AlertSubscription.category == category,
                AlertSubscription.size.is_(None)
                if size is None
                else AlertSubscription.size == size,
            )
        )
        if existing is not None:
            return False
        self.session.add(
            AlertSubscription(customer_id=customer_id, category=category, size=size, seen_until=now)
        )
        await self.session.flush()
        return True

    async def has_active(self, customer_id: int) -> bool:
        found = await self.session.scalar(
            select(AlertSubscription.id)
            .where(
                AlertSubscription.customer_id == customer_id, AlertSubscription.stopped_at.is_(None)
            )
            .limit(1)
        )
        return found is not None

    async def stop_all(self, customer_id: int, now: datetime) -> int:
        """End every alert of the customer; how many were running."""
        stopped = await self.session.scalars(
            update(AlertSubscription)
            .where(
                AlertSubscription.customer_id == customer_id, AlertSubscription.stopped_at.is_(None)
            )
            .values(stopped_at=now)
            .returning(AlertSubscription.id)
            .execution_options(synchronize_session=False)
        )
        return len(stopped.all())

    async def active_with_customers(self) -> list[tuple[AlertSubscription, Customer]]:
        """Every running opt-in with its customer, locked (SKIP LOCKED: two beat runs
        share the work instead of alerting twice)."""
        rows = await self.session.execute(
            select(AlertSubscription, Customer)
            .join(Customer, Customer.id == AlertSubscription.customer_id)
            .where(AlertSubscription.stopped_at.is_(None))
            .order_by(AlertSubscription.customer_id, AlertSubscription.id)
            .with_for_update(of=AlertSubscription, skip_locked=True)
        )
        return [(subscription, customer) for subscription, customer in rows.all()]
