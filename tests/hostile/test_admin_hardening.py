"""The admin (sqladmin) against a signed-in but careless or hostile staff member.

sqladmin serves any file under the working directory named by a text column
(/admin/{view}/{pk}/{column}/download/ and /preview/): those routes must not exist. And no
admin URL may answer 5xx for bad input: a NUL in a search, a pk that is not a number, too
big for BIGINT, or missing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest
from sqladmin import ModelView
from sqlalchemy import Column, String, inspect, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import (
    Drop,
    FaqEntry,
    Hold,
    Item,
    ItemImage,
    ItemVideo,
    Order,
    OrderItem,
    WaitlistEntry,
)
from app.main import create_app
from tests.factories import add_customer
from tests.web.conftest import (  # noqa: F401  (fixtures, used by name)
    signed_in,
    staff,
    web,
    web_settings,
)
from tests.web.test_admin import admin_csrf

if TYPE_CHECKING:
    from tests.conftest import TestServices

# A file sqladmin would have served: it allows anything under the working directory.
SERVED_FILE = Path("pyproject.toml")
# Not a number, beyond BIGINT, missing, a NUL, a fraction.
BAD_PKS = ("abc", "99999999999999999999", "", "1\x00", "-1.5")


@pytest.fixture
def secret() -> str:
    assert SERVED_FILE.is_file(), "run the tests from the project root"
    return SERVED_FILE.read_text()


def model_views(services: TestServices) -> list[ModelView]:
    """The model views of the admin exactly as the application registers them. Built on
    an app of its own: install_admin gives every app its own view classes, so this leaves
    the app under test alone."""
    admin = create_app(web_settings(services)).state.admin
    views = [view for view in admin.views if isinstance(view, ModelView)]
    assert len(views) >= 9
    return views


async def seed_every_model(engine: AsyncEngine) -> None:
    """A row behind every view of the admin."""
    now = datetime.now(UTC)
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        customer = await add_customer(session, "cust-1", username="ada")
        drop = Drop(name="Spring drop")
        session.add(drop)
        await session.flush()
        item = Item(
            sku="PT-0001",
            title="Levi's 501",
            category="bottoms",
            gender="unisex",
            condition="good",
            price=Decimal("40.00"),
            currency="USD",
            status="available",
            drop_id=drop.id,
        )
        session.add(item)
        await session.flush()
        order = Order(
            order_number="PH-10001",
            customer_id=customer.id,
            status="paid",
            placed_at=now,
            total=Decimal("40.00"),
            currency="USD",
        )
        session.add(order)
        await session.flush()
        session.add_all(
            [
                ItemVideo(item_id=item.id, video_id="7301"),
                ItemImage(item_id=item.id, position=0, url="https://cdn.philia.test/a.jpg"),
                OrderItem(order_id=order.id, item_id=item.id),
                FaqEntry(topic="shipping", question="Ship?", answer="Yes.", keywords="ship"),
                Hold(item_id=item.id, customer_id=customer.id, status="active"),
                WaitlistEntry(item_id=item.id, customer_id=customer.id),
            ]
        )


def text_columns(model: type[Any]) -> list[Column[Any]]:
    return [column for column in inspect(model).columns if isinstance(column.type, String)]


async def fill_text_columns(engine: AsyncEngine, model: type[Any], value: str) -> None:
    """Every text column of the model's rows that can hold the value set to it; a
    constrained column (an SKU, a status, a currency) keeps its valid value."""
    for column in text_columns(model):
        try:
            async with engine.begin() as connection:
                await connection.execute(update(model).values({column.key: value}))
        except DBAPIError:
            continue


async def test_no_view_serves_files_from_any_column(
    signed_in: httpx.AsyncClient,  # noqa: F811
    committed_db: AsyncEngine,
    services: TestServices,
    secret: str,
) -> None:
    await seed_every_model(committed_db)
    views = model_views(services)
    walked = 0
    for view in views:
        columns = list(inspect(view.model).columns)
        await fill_text_columns(committed_db, view.model, str(SERVED_FILE))
        async with AsyncSession(committed_db) as session:
            pk = await session.scalar(select(*inspect(view.model).primary_key))
        assert pk is not None, f"no {view.identity} row seeded"
        # Every column, not only the text ones: nothing of the shape may be served.
        for column in columns:
            for route in ("download", "preview"):
                url = f"/admin/{view.identity}/{pk}/{column.key}/{route}/"
                response = await signed_in.get(url)
                assert response.status_code == 404, (url, response.status_code)
                assert secret not in response.text
            walked += isinstance(column.type, String)
    async with AsyncSession(committed_db) as session:
        title = await session.scalar(select(Item.title))
    assert title == str(SERVED_FILE)  # the path sqladmin served before is really there
    assert walked >= 20  # the text columns of the catalogue, orders and FAQ at least


def test_the_file_routes_are_not_registered(services: TestServices) -> None:
    admin = create_app(web_settings(services)).state.admin
    names = {getattr(route, "name", None) for route in admin.admin.routes}
    assert {"list", "details", "edit", "delete", "export"} <= names
    assert not names & {"file_download", "file_preview"}


async def test_bad_input_is_a_client_error_on_every_view(
    signed_in: httpx.AsyncClient,  # noqa: F811
    committed_db: AsyncEngine,
    services: TestServices,
) -> None:
    await seed_every_model(committed_db)
    token = await admin_csrf(signed_in)
    for view in model_views(services):
        base = f"/admin/{view.identity}"
        for term in ("\x00", "PT\x00-0001", "%\x00%"):
            response = await signed_in.get(f"{base}/list", params={"search": term})
            assert response.status_code == 400, (base, term, response.status_code)
        for pk in BAD_PKS:
            path_pk = quote(pk, safe="")
            for page in ("details", "edit"):
                response = await signed_in.get(f"{base}/{page}/{path_pk}")
                assert response.status_code == 404, (base, page, pk, response.status_code)
            edit = await signed_in.post(f"{base}/edit/{path_pk}", data={"csrf_token": token})
            assert edit.status_code == 404, (base, pk, edit.status_code)
            delete = await signed_in.delete(
                f"{base}/delete", params={"pks": pk}, headers={"X-CSRF-Token": token}
            )
            assert delete.status_code == 404, (base, pk, delete.status_code)
            for route in ("download", "preview"):
                response = await signed_in.get(f"{base}/{path_pk or 1}/id/{route}/")
                assert response.status_code == 404, (base, route, pk, response.status_code)
        no_pks = await signed_in.delete(f"{base}/delete", headers={"X-CSRF-Token": token})
        assert no_pks.status_code == 400, (base, no_pks.status_code)
        # The list, a search and the pages of a real row still work.
        assert (await signed_in.get(f"{base}/list", params={"search": "PT"})).status_code == 200
        async with AsyncSession(committed_db) as session:
            pk = await session.scalar(select(*inspect(view.model).primary_key))
        for page in ("details", "edit"):
            response = await signed_in.get(f"{base}/{page}/{pk}")
            assert response.status_code == 200, (base, page, response.status_code)


async def test_a_nul_in_an_admin_form_is_a_client_error(
    signed_in: httpx.AsyncClient,  # noqa: F811
    committed_db: AsyncEngine,
) -> None:
    token = await admin_csrf(signed_in, "/admin/faq-entry/create")
    faq = {
        "topic": "shipping",
        "question": "Do you ship\x00 to Canada?",
        "answer": "Yes.",
        "keywords": "canada",
        "save": "Save",
        "csrf_token": token,
    }
    created = await signed_in.post("/admin/faq-entry/create", data=faq)
    assert created.status_code == 400, created.status_code
    await seed_every_model(committed_db)
    async with AsyncSession(committed_db) as session:
        entry = await session.scalar(select(FaqEntry))
    assert entry is not None
    edited = await signed_in.post(f"/admin/faq-entry/edit/{entry.id}", data=faq)
    assert edited.status_code == 400, edited.status_code
    async with AsyncSession(committed_db) as session:
        assert (await session.scalar(select(FaqEntry.question))) == "Ship?"
    # The NUL was the only thing wrong with the form.
    clean = {**faq, "question": "Do you ship to Canada?"}
    saved = await signed_in.post(f"/admin/faq-entry/edit/{entry.id}", data=clean)
    assert saved.status_code == 302, saved.status_code
