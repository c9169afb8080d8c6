"""Nothing under /inbox or /admin answers without a session: every route of the running
app is asked, so a route added later is covered without touching this test."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import Mount, Route

from app.db.models import StaffUser
from app.main import create_app
from app.web import inbox
from tests.web.conftest import BASE_URL, login, web_settings

if TYPE_CHECKING:
    from tests.conftest import TestServices

_PARAMETER = re.compile(r"{(\w+)(:\w+)?}")
_SAMPLES = {
    "conversation_id": "1",
    "identity": "item",
    "pk": "1",
    "export_type": "csv",
    "column_name": "title",
    "path": "css/main.css",
}


def _fill(path: str) -> str:
    return _PARAMETER.sub(lambda found: _SAMPLES.get(found[1], "1"), path)


def staff_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route under /inbox and /admin."""
    found: list[tuple[str, str]] = []
    for api_route in inbox.router.routes:
        assert isinstance(api_route, APIRoute)
        found.extend((method, _fill(api_route.path)) for method in api_route.methods or ())
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/admin":
            for child in route.routes:
                if isinstance(child, Route):
                    methods = child.methods or {"GET"}
                    found.extend((m, "/admin" + _fill(child.path)) for m in methods)
                elif isinstance(child, Mount):  # the admin's static files
                    found.append(("GET", "/admin" + child.path + "/css/main.css"))
    return sorted({(method, path) for method, path in found if method != "HEAD"})


async def test_every_staff_route_refuses_without_a_session(
    services: TestServices,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    staff: StaffUser,
) -> None:
    app = create_app(web_settings(services))
    routes = staff_routes(app)
    paths = {path for _, path in routes}
    # The enumeration itself must see the pages this test is about.
    assert {"/inbox", "/inbox/1", "/inbox/1/messages", "/inbox/1/reply"} <= paths
    assert {"/admin/", "/admin/item/list", "/admin/import", "/admin/item/create"} <= paths
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            for method, path in routes:
                response = await client.request(method, path, data={"text": "x"})
                assert response.status_code in (303, 401), (method, path, response.status_code)
                if response.status_code == 303:
                    assert response.headers["location"].startswith("/login?next="), path
                # A forged or stale cookie is no better than none.
                client.cookies.set("philia_staff", "A" * 43)
                again = await client.request(method, path)
                assert again.status_code in (303, 401), (method, path)
                client.cookies.clear()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/inbox/rows", 401, id="rows-fragment"),
        pytest.param("/inbox/1/messages", 401, id="poll"),
        pytest.param("/inbox", 303, id="page"),
        pytest.param("/admin/item/list", 303, id="admin-page"),
    ],
)
async def test_pages_redirect_and_script_calls_get_401(
    web: httpx.AsyncClient, path: str, status: int
) -> None:
    response = await web.get(path)
    assert response.status_code == status
    scripted = await web.get(path, headers={"X-Requested-With": "fetch"})
    assert scripted.status_code == 401
    assert scripted.json()["error"] == "not_signed_in"


async def test_the_same_routes_answer_once_logged_in(
    web: httpx.AsyncClient, staff: StaffUser
) -> None:
    assert (await login(web)).status_code == 303
    for path in ("/inbox", "/inbox/rows", "/admin/", "/admin/item/list", "/admin/import"):
        assert (await web.get(path)).status_code == 200, path
