"""Which piece the customer means: a SKU, a pick from the list just shown, a whole
category, their words (the conversation's pieces first), a shared video, or else the
piece talked about last. Finding reads the catalogue and changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.core.memory import release_freed_memory
from app.db.models import Item
from app.db.repositories.items import ItemRepository
from app.services.router import RouteResult
from app.services.shop.context import Offer, ShopContext
from app.services.shop.sizing import fit_of
from app.services.shop.words import (
    IndexBuilder,
    ItemMatcher,
    browsed_category,
    content_words,
    ordinal_choice,
    refers_back,
)

# The most pieces one answer lists or asks the customer to choose from.
MAX_LISTED = 6


_LARGE_CATALOGUE = 2000


class _CatalogIndex:
    """The word index of the whole catalogue, kept by the process until the catalogue's
    version changes. A thrift shop's catalogue only grows (a piece per sale, sold pieces
    stay answerable), so reading and indexing all of it per turn made every DM dearer as
    the shop aged; checking the version is one single-row read."""

    def __init__(self) -> None:
        self._version: uuid.UUID | None = None
        self._matcher: ItemMatcher | None = None
        self._builds = 0
        self._building: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    async def matcher(self, items: ItemRepository) -> ItemMatcher:
        # Version first, rows second: an import committed in between leaves newer rows
        # under the older version, which the next turn sees as stale and rebuilds.
        version = await items.catalog_version()
        if version is not None and version == self._version and self._matcher is not None:
            return self._matcher
        # The turns of a batch that find it stale together build it once: each building
        # its own read the whole catalogue that many times over, and held that many
        # catalogues in memory at once.
        builds_seen = self._builds
        async with self._lock():
            if self._builds != builds_seen and self._matcher is not None:
                return self._matcher  # built by another turn while this one waited
            matcher = await build_matcher(items)
            self._version, self._matcher = version, matcher
            self._builds += 1
        if len(matcher) >= _LARGE_CATALOGUE:
            # Reading and indexing it left freed memory that the process would otherwise
            # carry for good.
            release_freed_memory()
        return matcher

    def _lock(self) -> asyncio.Lock:
        # One per event loop: a lock is bound to the loop it first waits on.
        loop = asyncio.get_running_loop()
        if self._building is None or self._building[0] is not loop:
            self._building = (loop, asyncio.Lock())
        return self._building[1]


async def build_matcher(items: ItemRepository) -> ItemMatcher:
    """The word index of the whole catalogue, read a batch at a time."""
    building = IndexBuilder()
    async for rows in items.search_rows():
        building.add(rows)
    return building.matcher()


_catalog_index = _CatalogIndex()


@dataclass
class Found:
    items: list[Item] = field(default_factory=list)  # one: the piece; several: ask which
    missing_sku: str | None = None  # a SKU the shop does not have
    no_match: bool = False  # words that name no piece
    browse: str | None = None  # a whole category was asked for ("any jackets?")


class PieceFinder:
    """Finds pieces for one turn; `offer` is the question the previous answer asked."""

    def __init__(
        self,
        items: ItemRepository,
        context: ShopContext,
        offer: Offer | None,
        chart: Sequence[Decimal],
    ) -> None:
        self.items = items
        self.context = context
        self.offer = offer
        self.chart = chart
        # Built on first use: most turns never match words against the catalogue.
        self._item_matcher: ItemMatcher | None = None

    async def in_shared_post(self, payload: dict[str, Any]) -> list[Item]:
        """The pieces in the video the customer shared (none when the shop does not know it)."""
        share = payload.get("share_post")
        video_id = share.get("video_id") if isinstance(share, dict) else None
        return await self.items.in_video(str(video_id)) if video_id else []

    async def unmatched_words(self, text: str) -> list[str]:
        """The content words of `text` that name no piece of the shop."""
        return (await self._matcher()).unmatched(text)

    async def find(self, text: str, route: RouteResult) -> Found:
        """The piece(s) the customer means: SKU, a pick from the list just shown, a whole
        category, their words (the conversation's pieces first), then the piece talked
        about last."""
        sku = route.entities.sku
        if sku is not None:
            item = await self.items.get(sku)
            return Found([item]) if item is not None else Found(missing_sku=sku)
        pick = ordinal_choice(text)
        shown = self.offer.skus if self.offer is not None and self.offer.skus else []
        shown = shown or self.context.last_list
        if pick is not None and shown and -len(shown) <= pick < len(shown):
            return Found(await self.items.by_skus([shown[pick]]))
        category = browsed_category(text)
        if category is not None:
            size = route.entities.size
            # Without a size, only the pieces a browse answer lists are read: a shop's
            # stock in one category can run to hundreds.
            available = await self.items.available(category, None if size else MAX_LISTED)
            return Found(self._narrow_by_size(available, size, strict=True), browse=category)
        if content_words(text):
            match = (await self._matcher()).match(text, self.context.candidates(), limit=MAX_LISTED)
            if match.skus:
                found = await self.items.by_skus(match.skus)
                return Found(self._narrow_by_size(found, route.entities.size))
            if match.unmatched and not refers_back(text):
                return Found(no_match=True)
        if self.context.last_sku:
            item = await self.items.get(self.context.last_sku)
            if item is not None:
                return Found([item])
        if self.context.last_list:
            return Found(await self.items.by_skus(self.context.last_list[:MAX_LISTED]))
        return Found()

    async def _matcher(self) -> ItemMatcher:
        if self._item_matcher is None:
            self._item_matcher = await _catalog_index.matcher(self.items)
        return self._item_matcher

    def _narrow_by_size(
        self, found: list[Item], size: str | None, *, strict: bool = False
    ) -> list[Item]:
        """Keep the pieces that fit like `size`; when none does, all of them (or, for a
        browse, none: "shoes in size 10" must not list size 8s)."""
        if size is None or (len(found) < 2 and not strict):
            return found
        fitting = [item for item in found if fit_of(item, self.chart).size == size]
        return fitting if fitting or strict else found
