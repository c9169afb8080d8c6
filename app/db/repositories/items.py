"""The catalogue: pieces with their photos and videos, and drops. Availability answers, the
catalogue import and export, the photo cache and the simulator read pieces only here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import Table, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from app.db.models import CatalogVersion, Drop, Item, ItemImage, ItemStatus, ItemVideo


@dataclass(frozen=True, slots=True)
class SearchRow:
    """The words of a piece that customers use to name it."""

    sku: str
    title: str
    brand: str | None
    color: str | None
    category: str


@dataclass(frozen=True, slots=True)
class SizeRow:
    """What a piece's fit is read from (`sizing.fit_of`), without the rest of the piece."""

    sku: str
    category: str
    fits_like: str | None
    tag_size: str | None
    pit_to_pit_in: Decimal | None
    waist_in: Decimal | None
    shoe_size_us: Decimal | None


class ItemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, sku: str) -> Item | None:
        # populate_existing: a hold or an expiry may have changed the row since this
        # session first loaded it, and availability answers must be current.
        found = await self.session.scalars(
            select(Item)
            .where(Item.sku == sku)
            .options(joinedload(Item.images))
            .execution_options(populate_existing=True)
        )
        return found.unique().one_or_none()

    async def by_skus(self, skus: Sequence[str]) -> list[Item]:
        """The pieces in the order of `skus` (unknown SKUs left out)."""
        if not skus:
            return []
        found = await self.session.scalars(
            select(Item)
            .where(Item.sku.in_(skus))
            .options(joinedload(Item.images))
            .execution_options(populate_existing=True)
        )
        by_sku = {item.sku: item for item in found.unique()}
        return [by_sku[sku] for sku in skus if sku in by_sku]

    async def in_video(self, video_id: str) -> list[Item]:
        found = await self.session.scalars(
            select(Item)
            .join(ItemVideo, ItemVideo.item_id == Item.id)
            .where(ItemVideo.video_id == video_id)
            .order_by(Item.sku)
            .options(joinedload(Item.images))
            .execution_options(populate_existing=True)
        )
        return list(found.unique())

    async def catalog_version(self) -> uuid.UUID | None:
        """Changes whenever pieces are added, removed or renamed (None: not known, after
        the table was emptied by hand)."""
        return await self.session.scalar(_CATALOG_VERSION)

    async def search_rows(self, batch: int = 500) -> AsyncIterator[list[SearchRow]]:
        """Only the naming columns of every piece, sold ones included (a customer may ask
        about a piece that is gone), in SKU order, `batch` rows at a time: read once per
        catalogue version (PieceFinder), and never held whole. Streamed from a cursor, so
        the caller must be in a transaction."""
        result = await self.session.stream(
            select(Item.sku, Item.title, Item.brand, Item.color, Item.category)
            .order_by(Item.sku)
            .execution_options(yield_per=batch)
        )
        async for rows in result.partitions():
            yield [SearchRow(*row) for row in rows]

    async def sizes_available(
        self, category: str | None = None, exclude_sku: str | None = None
    ) -> list[SizeRow]:
        """The fit columns of the available pieces (of `category`), in SKU order: a shop
        can have hundreds on sale, and only a few of them become answers."""
        statement = (
            select(
                Item.sku,
                Item.category,
                Item.fits_like,
                Item.tag_size,
                Item.pit_to_pit_in,
                Item.waist_in,
                Item.shoe_size_us,
            )
            .where(Item.status == ItemStatus.AVAILABLE)
            .order_by(Item.sku)
        )
        if category is not None:
            statement = statement.where(Item.category == category)
        if exclude_sku is not None:
            statement = statement.where(Item.sku != exclude_sku)
        return [SizeRow(*row) for row in await self.session.execute(statement)]

    async def available(self, category: str | None = None, limit: int | None = None) -> list[Item]:
        statement = select(Item).where(Item.status == ItemStatus.AVAILABLE)
        if category is not None:
            statement = statement.where(Item.category == category)
        return list(await self.session.scalars(statement.order_by(Item.sku).limit(limit)))

    async def newest_available(self, limit: int | None = None) -> list[Item]:
        """Newest drop first (drop names sort by date), then SKU; pieces without a drop last."""
        statement = (
            select(Item)
            .outerjoin(Drop, Drop.id == Item.drop_id)
            .where(Item.status == ItemStatus.AVAILABLE)
            .order_by(Drop.name.desc().nulls_last(), Item.sku)
            .options(joinedload(Item.images))
        )
        if limit is not None:
            statement = statement.limit(limit)
        return list((await self.session.scalars(statement)).unique())

    async def listed_between(self, after: datetime, until: datetime) -> list[tuple[Item, datetime]]:
        """Pieces on sale that were listed in (after, until], newest first, with their photos
        and when each was listed: when it was added, or when its drop was published if that
        was later. A piece of a drop not published yet (released in the future) waits."""
        listed = func.greatest(Item.created_at, func.coalesce(Drop.released_at, Item.created_at))
        rows = await self.session.execute(
            select(Item, listed)
            .outerjoin(Drop, Drop.id == Item.drop_id)
            .where(
                Item.status == ItemStatus.AVAILABLE,
                or_(Drop.released_at.is_(None), Drop.released_at <= until),
                listed > after,
                listed <= until,
            )
            .order_by(listed.desc(), Item.sku)
            .options(selectinload(Item.images))
        )
        return [(item, at) for item, at in rows.all()]

    async def by_skus_with_media(self, skus: Sequence[str]) -> dict[str, Item]:
        """For the catalogue import: every piece named, with its videos and photos."""
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

    async def image_by_url(self, url: str) -> ItemImage | None:
        return await self.session.scalar(select(ItemImage).where(ItemImage.url == url))

    async def videos(self) -> list[tuple[str, str, str]]:
        """(video id, SKU, title) of every video an item appears in, by SKU."""
        rows = await self.session.execute(
            select(ItemVideo.video_id, Item.sku, Item.title)
            .join(Item, Item.id == ItemVideo.item_id)
            .order_by(Item.sku, ItemVideo.video_id)
        )
        return [(video_id, sku, title) for video_id, sku, title in rows.all()]


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

    async def overview(self) -> list[tuple[Drop, int]]:
        """Every drop with how many of its pieces are on sale, newest first."""
        on_sale = (
            select(func.count())
            .where(Item.drop_id == Drop.id, Item.status == ItemStatus.AVAILABLE)
            .correlate(Drop)
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(Drop, on_sale).order_by(Drop.released_at.desc().nulls_first(), Drop.name.desc())
        )
        return [(drop, int(count)) for drop, count in rows.all()]

    async def publish(self, drop_id: int, now: datetime) -> Drop | None:
        """Release the drop now: its pieces on sale count as listed from this moment."""
        drop = await self.session.get(Drop, drop_id, with_for_update=True)
        if drop is not None:
            drop.released_at = now
            await self.session.flush()
        return drop


# Read on every turn that searches the catalogue's words: on the table, so that the
# session runs it as Core, without the ORM's preparation of an entity query.
_CATALOG_VERSION = select(cast(Table, CatalogVersion.__table__).c.version)
