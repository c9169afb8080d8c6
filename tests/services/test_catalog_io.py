from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Hold, HoldStatus, Item, Order
from app.db.session import SessionFactory, transaction
from app.services.shop.catalog_io import (
    ImportFailed,
    export_catalog,
    import_catalog,
    import_orders,
)

HEADER = (
    "sku,title,brand,category,gender,color,tag_size,fits_like,pit_to_pit_in,length_in,"
    "waist_in,inseam_in,shoe_size_us,condition,price,currency,status,drop,video_ids,"
    "image_urls,notes"
)
GOOD_ROW = (
    "PT-0901,Test Tee,Acme,tops,unisex,black,L,,21.5,28,,,,good,20.00,USD,available,"
    "2026-11-drop,7301|7302,https://img.example/1.jpg,"
)


async def _count(session: AsyncSession, model: type[Item] | type[Order]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_reference_catalogue_imports_and_round_trips(
    session_factory: SessionFactory, shared_dir: Path
) -> None:
    text = (shared_dir / "data" / "catalog.csv").read_text()
    async with transaction(session_factory) as session:
        summary = await import_catalog(session, text)
    assert (summary.created, summary.updated) == (24, 0)
    async with transaction(session_factory) as session:
        again = await import_catalog(session, text)
        assert (again.created, again.updated, again.unchanged) == (0, 0, 24)
        assert await _count(session, Item) == 24
        assert await export_catalog(session) == text


async def test_reserved_rows_become_outside_holds(
    session_factory: SessionFactory, shared_dir: Path
) -> None:
    async with transaction(session_factory) as session:
        await import_catalog(session, (shared_dir / "data" / "catalog.csv").read_text())
        holds = (await session.scalars(select(Hold).where(Hold.status == "active"))).all()
        held = {
            (await session.get(Item, hold.item_id)).sku  # type: ignore[union-attr]
            for hold in holds
        }
        assert held == {"PT-0005", "PT-0018"}
        assert all(hold.customer_id is None and hold.expires_at is None for hold in holds)


async def test_status_change_on_reimport_releases_outside_hold(
    session_factory: SessionFactory,
) -> None:
    reserved = GOOD_ROW.replace(",available,", ",reserved,")
    async with transaction(session_factory) as session:
        await import_catalog(session, f"{HEADER}\n{reserved}\n")
    async with transaction(session_factory) as session:
        summary = await import_catalog(session, f"{HEADER}\n{GOOD_ROW}\n")
        assert summary.updated == 1
        item = await session.scalar(select(Item).where(Item.sku == "PT-0901"))
        assert item is not None and item.status == "available"
        hold = await session.scalar(select(Hold).where(Hold.item_id == item.id))
        assert hold is not None and hold.status == HoldStatus.RELEASED


async def test_update_changes_fields_in_place(session_factory: SessionFactory) -> None:
    async with transaction(session_factory) as session:
        await import_catalog(session, f"{HEADER}\n{GOOD_ROW}\n")
    async with transaction(session_factory) as session:
        summary = await import_catalog(
            session, f"{HEADER}\n{GOOD_ROW.replace('20.00', '25.50').replace('7301|', '')}\n"
        )
        assert (summary.created, summary.updated) == (0, 1)
        item = await session.scalar(select(Item).where(Item.sku == "PT-0901"))
        assert item is not None and item.price == Decimal("25.50")
        assert await _count(session, Item) == 1


@pytest.mark.parametrize(
    ("body", "row", "column", "fragment"),
    [
        (f"{HEADER}\n{GOOD_ROW.replace('20.00', 'twenty')}\n", 2, "price", "twenty"),
        (f"{HEADER}\n{GOOD_ROW.replace('20.00', '-5')}\n", 2, "price", "-5"),
        (f"{HEADER}\n{GOOD_ROW}\n{GOOD_ROW}\n", 3, "sku", "duplicate PT-0901"),
        (f"{HEADER.replace(',price', '')}\n{GOOD_ROW}\n", 1, "price", "missing column"),
        (f"{HEADER},extra\n{GOOD_ROW},x\n", 1, "extra", "unknown column"),
        (f"{HEADER}\n{GOOD_ROW.replace('tops', 'hats')}\n", 2, "category", "hats"),
        (f"{HEADER}\n{GOOD_ROW.replace('PT-0901', 'PT-91')}\n", 2, "sku", "PT-91"),
        (f"{HEADER}\n{GOOD_ROW.replace('Test Tee', '')}\n", 2, "title", "empty"),
        (f"{HEADER}\n{GOOD_ROW.replace('https://img', 'ftp://img')}\n", 2, "image_urls", "URL"),
    ],
)
async def test_bad_file_names_row_and_column_and_keeps_nothing(
    session_factory: SessionFactory, body: str, row: int, column: str, fragment: str
) -> None:
    good_first = body.replace(f"{HEADER}\n", f"{HEADER}\n{GOOD_ROW.replace('0901', '0902')}\n", 1)
    if row >= 2:
        row += 1  # the good row now comes first, so the bad one moved down
    with pytest.raises(ImportFailed) as raised:
        async with transaction(session_factory) as session:
            await import_catalog(session, good_first)
    assert (raised.value.row, raised.value.column) == (row, column)
    assert fragment in str(raised.value)
    async with session_factory() as session:
        assert await _count(session, Item) == 0


async def test_orders_import_links_customers_and_items(
    session_factory: SessionFactory, shared_dir: Path
) -> None:
    async with transaction(session_factory) as session:
        await import_catalog(session, (shared_dir / "data" / "catalog.csv").read_text())
        orders_text = (shared_dir / "data" / "orders.csv").read_text()
        assert (await import_orders(session, orders_text)).created == 5
        assert (await import_orders(session, orders_text)).unchanged == 5
        order = await session.scalar(select(Order).where(Order.order_number == "PH-10237"))
        assert order is not None
        await session.refresh(order, ["lines", "customer"])
        assert order.customer.tiktok_user_id == "cust-carol-003"
        assert len(order.lines) == 2
        assert await _count(session, Order) == 5


async def test_orders_with_unknown_sku_fail_cleanly(session_factory: SessionFactory) -> None:
    text = (
        "order_number,customer_tiktok_id,customer_username,status,items,carrier,tracking_number,"
        "placed_at,shipped_at,delivered_at,total,currency\n"
        "PH-20000,cust-x,x,paid,PT-0999,,,2026-11-18T15:04:00Z,,,58.00,USD\n"
    )
    with pytest.raises(ImportFailed, match=r"row 2, column items: unknown SKU PT-0999"):
        async with transaction(session_factory) as session:
            await import_orders(session, text)
    async with session_factory() as session:
        assert await _count(session, Order) == 0
