from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.db.models import Drop, Hold, HoldStatus, Item


class DropRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_or_create(self, name: str) -> Drop:
        drop = await self.session.scalar(select(Drop).where(Drop.name == name))
        if drop is None:
            drop = Drop(name=name)
            self.session.add(drop)
            await self.session.flush()
        return drop


class ItemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_skus(self, skus: Sequence[str]) -> dict[str, Item]:
        if not skus:
            return {}
        items = await self.session.scalars(
            select(Item)
            .where(Item.sku.in_(skus))
            .options(selectinload(Item.videos), selectinload(Item.images))
        )
        return {item.sku: item for item in items}

    async def all_with_media(self) -> Sequence[Item]:
        result = await self.session.scalars(
            select(Item)
            .order_by(Item.sku)
            .options(selectinload(Item.videos), selectinload(Item.images), selectinload(Item.drop))
        )
        return result.all()


class HoldRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active_for_item(self, item_id: int) -> Hold | None:
        return await self.session.scalar(
            select(Hold).where(Hold.item_id == item_id, Hold.status == HoldStatus.ACTIVE.value)
        )
