"""The admin (sqladmin) behind the staff session, its CSRF gate, and the CSV upload."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import Customer, Drop, FaqEntry, Hold, Item, WaitlistEntry
from app.services.shop.catalog_io import CATALOG_COLUMNS
from tests.web.conftest import add_conversation, csrf_in

VIEWS = (
    "item",
    "item-video",
    "item-image",
    "drop",
    "order",
    "order-item",
    "faq-entry",
    "hold",
    "waitlist-entry",
)


def catalog_csv(*rows: dict[str, str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CATALOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")


def item_row(sku: str, **changes: str) -> dict[str, str]:
    row = {name: "" for name in CATALOG_COLUMNS}
    row.update(
        sku=sku,
        title=f"Vintage tee {sku}",
        brand="Levi's",
        category="tops",
        gender="unisex",
        tag_size="L",
        pit_to_pit_in="21.5",
        condition="good",
        price="28.00",
        currency="USD",
        status="available",
        drop="Spring drop",
        video_ids="7301|7302",
        image_urls="https://cdn.philia.test/a.jpg",
    )
    row.update(changes)
    return row


async def item_count(engine: AsyncEngine) -> int:
    async with AsyncSession(engine) as session:
        return int(await session.scalar(select(func.count()).select_from(Item)) or 0)


async def admin_csrf(client: httpx.AsyncClient, path: str = "/admin/") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    marker = '<meta name="csrf-token" content="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


async def test_every_list_and_form_page_loads_for_staff(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    await add_conversation(committed_db, redis_client, "ada")
    async with AsyncSession(committed_db) as session, session.begin():
        drop = Drop(name="Autumn workwear")
        session.add(drop)
        await session.flush()
        item = Item(
            sku="PT-0042",
            title="Carhartt chore coat",
            category="outerwear",
            gender="men",
            condition="very good",
            price=Decimal("64.00"),
            currency="USD",
            status="reserved",
            drop_id=drop.id,
        )
        session.add(item)
        await session.flush()
        customer = await session.scalar(select(Customer).where(Customer.username == "ada"))
        assert customer is not None
        hold = Hold(item_id=item.id, customer_id=customer.id, status="active")
        session.add_all([hold, WaitlistEntry(item_id=item.id, customer_id=customer.id)])
        await session.flush()
        ids = {"item": item.id, "hold": hold.id, "drop": drop.id}
    index = await signed_in.get("/admin/")
    assert index.status_code == 200
    assert "/static/staff/admin-csrf.js" in index.text
    for view in VIEWS:
        for page in ("list", "create"):
            response = await signed_in.get(f"/admin/{view}/{page}")
            assert response.status_code == 200, (view, page, response.text[:500])
    for view, pk in ids.items():
        for page in ("edit", "details"):
            response = await signed_in.get(f"/admin/{view}/{page}/{pk}")
            assert response.status_code == 200, (view, page, response.text[:500])
    items = await signed_in.get("/admin/item/list")
    assert "PT-0042" in items.text and "Carhartt chore coat" in items.text
    holds = await signed_in.get("/admin/hold/list")
    # Related rows are named for people (SKU and title, @username), not object reprs.
    assert "PT-0042 Carhartt chore coat" in holds.text and "@ada" in holds.text
    form = await signed_in.get(f"/admin/item/edit/{ids['item']}")
    assert '<option selected value="reserved">' in form.text  # statuses offered as choices
    assert "Autumn workwear" in form.text


async def test_admin_changes_need_the_csrf_token(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine
) -> None:
    faq = {
        "topic": "shipping",
        "question": "Do you ship to Canada?",
        "answer": "Yes, tracked, 5-8 business days.",
        "keywords": "canada shipping",
        "save": "Save",
    }
    assert (await signed_in.post("/admin/faq-entry/create", data=faq)).status_code == 403
    forged = await signed_in.post("/admin/faq-entry/create", data={**faq, "csrf_token": "nope"})
    assert forged.status_code == 403
    async with AsyncSession(committed_db) as session:
        assert await session.scalar(select(func.count()).select_from(FaqEntry)) == 0

    token = await admin_csrf(signed_in, "/admin/faq-entry/create")
    created = await signed_in.post("/admin/faq-entry/create", data={**faq, "csrf_token": token})
    assert created.status_code == 302, created.text[:500]
    async with AsyncSession(committed_db) as session:
        entry = await session.scalar(select(FaqEntry))
    assert entry is not None and entry.answer == "Yes, tracked, 5-8 business days."

    # sqladmin deletes with a script request: the token travels in the header.
    url = f"/admin/faq-entry/delete?pks={entry.id}"
    assert (await signed_in.delete(url)).status_code == 403
    deleted = await signed_in.delete(url, headers={"X-CSRF-Token": token})
    assert deleted.status_code == 200
    async with AsyncSession(committed_db) as session:
        assert await session.scalar(select(func.count()).select_from(FaqEntry)) == 0


async def test_admin_sends_its_own_login_and_logout_to_ours(
    signed_in: httpx.AsyncClient,
) -> None:
    login = await signed_in.get("/admin/login")
    assert login.status_code == 303 and login.headers["location"] == "/admin/"
    logout = await signed_in.get("/admin/logout")
    assert logout.status_code == 303 and logout.headers["location"] == "/logout"


async def upload(
    client: httpx.AsyncClient, content: bytes, kind: str = "catalog"
) -> httpx.Response:
    page = await client.get("/admin/import")
    assert page.status_code == 200
    return await client.post(
        "/admin/import",
        data={"csrf_token": csrf_in(page.text), "kind": kind},
        files={"file": ("catalog.csv", content, "text/csv")},
    )


async def test_a_bad_catalogue_shows_the_row_and_imports_nothing(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine
) -> None:
    content = catalog_csv(item_row("PT-0101"), item_row("PT-0102", price="cheap"))
    response = await upload(signed_in, content)
    assert response.status_code == 422
    assert "Nothing was imported." in response.text
    assert "Row 3" in response.text and "<code>price</code>" in response.text
    assert "&#39;cheap&#39;" in response.text  # the offending value, escaped
    assert await item_count(committed_db) == 0


async def test_a_good_catalogue_is_imported_with_a_summary(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine
) -> None:
    content = catalog_csv(item_row("PT-0101"), item_row("PT-0102", status="sold"))
    response = await upload(signed_in, content)
    assert response.status_code == 200
    assert "Imported catalog.csv: 2 created, 0 updated, 0 unchanged." in response.text
    assert await item_count(committed_db) == 2
    again = await upload(signed_in, content)
    assert "0 created, 0 updated, 2 unchanged" in again.text


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param(b"\xff\xfe not utf-8", "not UTF-8", id="encoding"),
        pytest.param(b"sku,title\nPT-0001,Tee\n", "missing column in the header", id="header"),
    ],
)
async def test_unreadable_files_are_explained(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, content: bytes, words: str
) -> None:
    response = await upload(signed_in, content)
    assert response.status_code in (400, 422)
    assert words in response.text
    assert await item_count(committed_db) == 0


async def test_the_upload_needs_the_csrf_token(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine
) -> None:
    response = await signed_in.post(
        "/admin/import",
        data={"kind": "catalog"},
        files={"file": ("catalog.csv", catalog_csv(item_row("PT-0101")), "text/csv")},
    )
    assert response.status_code == 403
    assert await item_count(committed_db) == 0
