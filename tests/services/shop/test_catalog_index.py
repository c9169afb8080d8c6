"""The catalogue's word index is kept by the process between turns and rebuilt only when
the catalogue's version changes: pieces added, renamed or removed, never a hold or a sale."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import Item, ItemStatus
from app.db.repositories.items import ItemRepository
from app.services.shop.finding import _catalog_index, _CatalogIndex
from tests.statements import engine_of, statements_sent


def piece(sku: str, title: str, **values: Any) -> Item:
    return Item(
        sku=sku,
        title=title,
        brand=values.pop("brand", None),
        category=values.pop("category", "outerwear"),
        gender="unisex",
        color=values.pop("color", None),
        condition="good",
        price=Decimal("30.00"),
        currency="USD",
        **values,
    )


@contextmanager
def catalogue_reads(session: AsyncSession) -> Iterator[list[str]]:
    """Every statement that reads the pieces' names, as sent to PostgreSQL."""
    with statements_sent(engine_of(session)) as sent:
        reads: list[str] = []
        yield reads
    reads.extend(read for read in sent if "items.title" in read and "FROM items" in read)


async def test_the_version_follows_names_not_holds_or_sales(session: AsyncSession) -> None:
    repository = ItemRepository(session)
    session.add(piece("PT-0801", "Corduroy Chore Jacket", brand="Carhartt"))
    await session.flush()
    added = await repository.catalog_version()
    assert added is not None

    await session.execute(
        update(Item).where(Item.sku == "PT-0801").values(status=ItemStatus.SOLD, price=25)
    )
    assert await repository.catalog_version() == added

    await session.execute(
        update(Item).where(Item.sku == "PT-0801").values(title="Corduroy Work Jacket")
    )
    renamed = await repository.catalog_version()
    assert renamed not in (None, added)

    await session.execute(delete(Item).where(Item.sku == "PT-0801"))
    assert await repository.catalog_version() not in (None, added, renamed)


async def test_the_index_is_read_once_per_catalogue_version(session: AsyncSession) -> None:
    repository = ItemRepository(session)
    session.add(piece("PT-0802", "Fleece Pullover", brand="Patagonia", color="green"))
    await session.flush()

    with catalogue_reads(session) as reads:
        first = await _catalog_index.matcher(repository)
        assert first.match("the patagonia fleece").skus == ["PT-0802"]
        again = await _catalog_index.matcher(repository)
    assert again is first and len(reads) == 1

    # A hold or a sale leaves the index as it was.
    await session.execute(
        update(Item).where(Item.sku == "PT-0802").values(status=ItemStatus.RESERVED)
    )
    with catalogue_reads(session) as reads:
        assert await _catalog_index.matcher(repository) is first
    assert reads == []

    # A new piece is found on the very next turn.
    session.add(piece("PT-0803", "Denim Trucker Jacket", brand="Levis", color="blue"))
    await session.flush()
    with catalogue_reads(session) as reads:
        rebuilt = await _catalog_index.matcher(repository)
    assert len(reads) == 1
    assert rebuilt.match("levis trucker").skus == ["PT-0803"]
    assert rebuilt.match("the patagonia fleece").skus == ["PT-0802"]


async def test_a_rolled_back_import_leaves_the_index_valid(session: AsyncSession) -> None:
    """The version is transactional: after an import rolls back, the version (and the index
    built for it) is the one from before, with none of the import's pieces."""
    repository = ItemRepository(session)
    session.add(piece("PT-0804", "Wool Overshirt", brand="Pendleton"))
    await session.flush()
    before = await _catalog_index.matcher(repository)

    savepoint = await session.begin_nested()
    session.add(piece("PT-0805", "Wool Peacoat", brand="Schott"))
    await session.flush()
    assert (await _catalog_index.matcher(repository)).match("schott peacoat").skus == ["PT-0805"]
    await savepoint.rollback()

    after = await _catalog_index.matcher(repository)
    assert after.match("schott peacoat").skus == []
    assert after.match("pendleton overshirt").skus == ["PT-0804"]
    assert before.match("pendleton overshirt").skus == ["PT-0804"]


async def test_the_naming_rows_are_read_in_sku_order_a_batch_at_a_time(
    session: AsyncSession,
) -> None:
    await session.execute(delete(Item))
    for sku in ("PT-0905", "PT-0901", "PT-0904", "PT-0902", "PT-0903"):
        session.add(piece(sku, f"Jacket {sku}"))
    await session.flush()
    batches = [batch async for batch in ItemRepository(session).search_rows(batch=2)]
    assert [[row.sku for row in batch] for batch in batches] == [
        ["PT-0901", "PT-0902"],
        ["PT-0903", "PT-0904"],
        ["PT-0905"],
    ]


async def test_turns_that_find_it_stale_together_build_it_once(committed_db: AsyncEngine) -> None:
    """The turns of a batch run at once in one process: after a catalogue change they all
    find the index stale, and one of them reads the catalogue for all."""
    async with AsyncSession(committed_db) as session:
        session.add(piece("PT-0806", "Suede Trucker Jacket", brand="Levis", color="brown"))
        await session.commit()
    index = _CatalogIndex()
    sessions = [AsyncSession(committed_db) for _ in range(4)]
    try:
        with statements_sent(committed_db) as sent:
            built = await asyncio.gather(
                *(index.matcher(ItemRepository(session)) for session in sessions)
            )
    finally:
        for session in sessions:
            await session.close()
    reads = [read for read in sent if "items.title" in read and "FROM items" in read]
    assert len(reads) == 1
    assert all(matcher is built[0] for matcher in built)
    assert built[0].match("levis suede trucker").skus == ["PT-0806"]
