from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.db.models import Customer, Item, Order, OrderItem, OrderStatus

ORDER_NUMBER_PREFIX = "PH-"
FIRST_ORDER_NUMBER = 10001
LAST_ORDER_NUMBER = 99999  # PH- and five digits (PRODUCT.md)


class CustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, customer_id: int) -> Customer | None:
        return await self.session.get(Customer, customer_id)

    async def get_by_tiktok_id(self, tiktok_user_id: str) -> Customer | None:
        return await self.session.scalar(
            select(Customer).where(Customer.tiktok_user_id == tiktok_user_id)
        )

    async def get_or_create(self, tiktok_user_id: str, username: str | None = None) -> Customer:
        customer = await self.get_by_tiktok_id(tiktok_user_id)
        if customer is None:
            customer = Customer(tiktok_user_id=tiktok_user_id, username=username)
            self.session.add(customer)
            await self.session.flush()
        elif username and customer.username != username:
            customer.username = username
        return customer


class OrderRepository:
    """Orders by number for the shop (import, admin), and orders seen through one customer:
    those queries are scoped to the customer, so an order of someone else is
    indistinguishable from one that does not exist."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_by_number(self, order_number: str) -> Order | None:
        return await self.session.scalar(
            select(Order)
            .where(Order.order_number == order_number)
            .options(selectinload(Order.lines).selectinload(OrderItem.item))
        )

    async def customers_order(self, customer_id: int, order_number: str) -> Order | None:
        return await self.session.scalar(
            select(Order)
            .where(Order.order_number == order_number, Order.customer_id == customer_id)
            .options(selectinload(Order.lines).selectinload(OrderItem.item))
        )

    async def recent_of_customer(self, customer_id: int, limit: int) -> list[Order]:
        found = await self.session.scalars(
            select(Order)
            .where(Order.customer_id == customer_id)
            .order_by(Order.placed_at.desc(), Order.id.desc())
            .limit(limit)
            .options(selectinload(Order.lines).selectinload(OrderItem.item))
        )
        return list(found)

    async def unsettled_lines(
        self, limit: int, item_ids: Sequence[int] | None = None
    ) -> list[tuple[OrderItem, Item, Order]]:
        """Order lines whose sale has not been applied yet (orders in any status but
        cancelled), with their piece and order, earliest order first for each piece; the
        lines locked (SKIP LOCKED: a concurrent settlement takes the others)."""
        statement = (
            select(OrderItem, Item, Order)
            .join(Item, Item.id == OrderItem.item_id)
            .join(Order, Order.id == OrderItem.order_id)
            .where(OrderItem.settled_at.is_(None), Order.status != OrderStatus.CANCELLED)
            .order_by(Item.id, Order.placed_at, Order.id)
            .limit(limit)
            .with_for_update(of=OrderItem, skip_locked=True)
        )
        if item_ids is not None:
            statement = statement.where(Item.id.in_(item_ids))
        return [
            (line, item, order)
            for line, item, order in (await self.session.execute(statement)).all()
        ]

    async def next_order_number(self) -> str:
        """The number after the highest in the shop's format; an order recorded at the same
        instant with the same number fails on the unique constraint (the caller retries)."""
        highest = await self.session.scalar(
            select(func.max(Order.order_number)).where(
                Order.order_number.regexp_match(r"^PH-[0-9]{5}$")
            )
        )
        number = int(highest[len(ORDER_NUMBER_PREFIX) :]) + 1 if highest else FIRST_ORDER_NUMBER
        if number > LAST_ORDER_NUMBER:
            raise OrderNumbersExhausted
        return f"{ORDER_NUMBER_PREFIX}{number:05d}"

    async def record_paid(self, customer_id: int, item: Item, now: datetime) -> Order:
        """An order paid now for one piece, at its listed price."""
        order = Order(
            order_number=await self.next_order_number(),
            customer_id=customer_id,
            status=OrderStatus.PAID,
            placed_at=now,
            total=item.price,
            currency=item.currency,
            lines=[OrderItem(item_id=item.id)],
        )
        self.session.add(order)
        await self.session.flush()
        return order


class OrderNumbersExhausted(Exception):
    """Every PH- number with five digits is taken."""
