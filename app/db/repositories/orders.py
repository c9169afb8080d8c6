from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.db.models import Customer, Order, OrderItem


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
