"""The admin (sqladmin) behind the staff session, its CSRF gate, and the CSV upload."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import (
    Customer,
    Drop,
    FaqEntry,
    Hold,
    Item,
    Message,
    Order,
    OutboxEntry,
    WaitlistEntry,
)
from app.services.shop.catalog_io import CATALOG_COLUMNS, ORDER_COLUMNS
from tests.web.conftest import Thread, add_conversation, csrf_in, place_hold_for

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


async def held_by_customer(
    client: httpx.AsyncClient, engine: AsyncEngine, redis: aioredis.Redis, name: str
) -> tuple[Thread, int]:
    """A customer in an open window holding PT-0101 (imported through the admin)."""
    assert (await upload(client, catalog_csv(item_row("PT-0101")))).status_code == 200
    thread = await add_conversation(engine, redis, name, mode="bot")
    return thread, await place_hold_for(engine, thread.user_id, "PT-0101")


async def sale_of(engine: AsyncEngine, hold_id: int) -> tuple[str, str, list[str]]:
    """The hold's status, its piece's, and the kinds of what the shop said unasked."""
    async with AsyncSession(engine) as session:
        hold = await session.get_one(Hold, hold_id)
        item = await session.get_one(Item, hold.item_id)
        kinds = await session.scalars(
            select(Message.proactive_kind)
            .join(OutboxEntry, OutboxEntry.message_id == Message.id)
            .where(Message.proactive_kind.is_not(None))
        )
        return hold.status, item.status, [str(kind) for kind in kinds]


async def test_an_orders_csv_makes_the_held_piece_a_sale(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    thread, hold_id = await held_by_customer(signed_in, committed_db, redis_client, "ola")
    orders = io.StringIO()
    writer = csv.DictWriter(orders, fieldnames=ORDER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerow(
        {name: "" for name in ORDER_COLUMNS}
        | {
            "order_number": "PH-20001",
            "customer_tiktok_id": thread.user_id,
            "status": "paid",
            "items": "PT-0101",
            "placed_at": "2026-11-30T10:00:00Z",
            "total": "28.00",
            "currency": "USD",
        }
    )
    response = await upload(signed_in, orders.getvalue().encode(), kind="orders")
    assert response.status_code == 200, response.text[:500]
    assert await sale_of(committed_db, hold_id) == ("converted", "sold", ["sale_confirmation"])


async def test_an_order_line_added_in_the_admin_makes_the_held_piece_a_sale(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    thread, hold_id = await held_by_customer(signed_in, committed_db, redis_client, "pia")
    async with AsyncSession(committed_db, expire_on_commit=False) as session, session.begin():
        customer = await session.scalar(
            select(Customer).where(Customer.tiktok_user_id == thread.user_id)
        )
        assert customer is not None
        order = Order(
            order_number="PH-20002",
            customer_id=customer.id,
            status="paid",
            placed_at=datetime.now(UTC),
            total=Decimal("28.00"),
            currency="USD",
        )
        session.add(order)
        await session.flush()
        item_id = await session.scalar(select(Item.id).where(Item.sku == "PT-0101"))
    assert await sale_of(committed_db, hold_id) == ("active", "reserved", [])
    token = await admin_csrf(signed_in, "/admin/order-item/create")
    created = await signed_in.post(
        "/admin/order-item/create",
        data={"order": str(order.id), "item": str(item_id), "csrf_token": token, "save": "Save"},
    )
    assert created.status_code == 302, created.text[:500]
    assert await sale_of(committed_db, hold_id) == ("converted", "sold", ["sale_confirmation"])


async def test_publishing_a_drop_releases_it_now(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine
) -> None:
    content = catalog_csv(item_row("PT-0101", drop="Winter drop"), item_row("PT-0102"))
    assert (await upload(signed_in, content)).status_code == 200
    page = await signed_in.get("/admin/publish-drop")
    assert page.status_code == 200 and "Winter drop" in page.text
    async with AsyncSession(committed_db) as session:
        drop = await session.scalar(select(Drop).where(Drop.name == "Winter drop"))
    assert drop is not None and drop.released_at is None
    token = csrf_in(page.text)
    refused = await signed_in.post("/admin/publish-drop", data={"drop_id": str(drop.id)})
    assert refused.status_code == 403  # no CSRF token
    published = await signed_in.post(
        "/admin/publish-drop", data={"drop_id": str(drop.id), "csrf_token": token}
    )
    assert published.status_code == 200 and "Published Winter drop" in published.text
    async with AsyncSession(committed_db) as session:
        released = await session.scalar(select(Drop.released_at).where(Drop.id == drop.id))
    assert released is not None and abs(released - datetime.now(UTC)) < timedelta(minutes=1)
    missing = await signed_in.post(
        "/admin/publish-drop", data={"drop_id": "999999", "csrf_token": token}
    )
    assert missing.status_code == 404
    bad = await signed_in.post("/admin/publish-drop", data={"drop_id": "x", "csrf_token": token})
    assert bad.status_code == 400
