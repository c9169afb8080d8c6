"""The stand-in's side of connecting an account, checked with raw HTTP: TikTok's
authorisation page, the code exchange and the webhook configuration, and how strictly
each refuses what TikTok would refuse."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.sandbox.control import SandboxControl
from app.sandbox.owner import AuthorisationPageError, authorise_as_owner
from app.sandbox.server import BackgroundServer
from tests.sandbox.conftest import BUSINESS_ID, CLIENT_KEY, CLIENT_SECRET, Receiver

REDIRECT = "https://shop.test/connect/tiktok/callback"
SCOPES = "user.info.basic,message.list.read,message.list.send,message.list.manage"


@pytest.fixture
async def browser() -> Any:
    async with httpx.AsyncClient() as client:
        yield client


def link(server: BackgroundServer, **overrides: str) -> str:
    params = {"app_id": CLIENT_KEY, "redirect_uri": REDIRECT, "state": "s1", "scope": SCOPES}
    params.update(overrides)
    return str(httpx.URL(server.url + "/portal/auth", params=params))


def back_params(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def exchange_body(code: str, **overrides: str) -> dict[str, str]:
    body = {
        "client_id": CLIENT_KEY,
        "client_secret": CLIENT_SECRET,
        "grant_type": "authorization_code",
        "auth_code": code,
        "redirect_uri": REDIRECT,
    }
    body.update(overrides)
    return body


async def granted_code(server: BackgroundServer, browser: httpx.AsyncClient, **answer: Any) -> str:
    params = back_params(await authorise_as_owner(browser, link(server), **answer))
    assert params["state"] == "s1"
    return params["auth_code"]


async def test_the_page_refuses_an_unknown_app_or_a_bad_redirect(
    sandbox_server: BackgroundServer, browser: httpx.AsyncClient, control: SandboxControl
) -> None:
    for bad in ({"app_id": "someone-else"}, {"redirect_uri": "javascript:alert(1)"}):
        page = await browser.get(link(sandbox_server, **bad))
        assert page.status_code == 400
        with pytest.raises(AuthorisationPageError):
            await authorise_as_owner(browser, link(sandbox_server, **bad))


async def test_the_page_escapes_what_it_shows(
    sandbox_server: BackgroundServer, browser: httpx.AsyncClient, control: SandboxControl
) -> None:
    page = await browser.get(link(sandbox_server, state='"><script>x</script>'))
    assert page.status_code == 200
    assert "<script>x</script>" not in page.text


async def test_a_code_is_exchanged_once_for_new_tokens_and_the_open_id(
    sandbox_server: BackgroundServer,
    browser: httpx.AsyncClient,
    api: httpx.AsyncClient,
    control: SandboxControl,
) -> None:
    before = await control.tokens()
    code = await granted_code(sandbox_server, browser)
    answer = (await api.post("/tt_user/oauth2/token/", json=exchange_body(code))).json()
    assert answer["code"] == 0, answer
    data = answer["data"]
    assert data["open_id"] == BUSINESS_ID
    assert set(data["scope"].split(",")) == set(SCOPES.split(","))
    assert data["access_token"] != before.access_token
    assert data["expires_in"] > 0 and data["refresh_token_expires_in"] > 0
    again = (await api.post("/tt_user/oauth2/token/", json=exchange_body(code))).json()
    assert again["code"] == 40002


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"client_secret": "wrong"}, 40001),
        ({"grant_type": "refresh_token"}, 40002),
        ({"redirect_uri": "https://elsewhere.test/cb"}, 40002),
    ],
)
async def test_an_exchange_tiktok_would_refuse_is_refused(
    sandbox_server: BackgroundServer,
    browser: httpx.AsyncClient,
    api: httpx.AsyncClient,
    control: SandboxControl,
    overrides: dict[str, str],
    code: int,
) -> None:
    granted = await granted_code(sandbox_server, browser)
    answer = await api.post("/tt_user/oauth2/token/", json=exchange_body(granted, **overrides))
    assert answer.status_code == 200 and answer.json()["code"] == code


async def test_unticked_scopes_are_not_granted(
    sandbox_server: BackgroundServer,
    browser: httpx.AsyncClient,
    api: httpx.AsyncClient,
    control: SandboxControl,
) -> None:
    code = await granted_code(sandbox_server, browser, scopes=["user.info.basic"])
    answer = (await api.post("/tt_user/oauth2/token/", json=exchange_body(code))).json()
    assert answer["data"]["scope"] == "user.info.basic"


async def test_declining_sends_the_owner_back_with_an_error(
    sandbox_server: BackgroundServer, browser: httpx.AsyncClient, control: SandboxControl
) -> None:
    location = await authorise_as_owner(browser, link(sandbox_server), decision="cancel")
    params = back_params(location)
    assert params["error"] == "access_denied" and params["state"] == "s1"
    assert "auth_code" not in params


async def test_registering_the_webhook_moves_the_deliveries(
    api: httpx.AsyncClient, control: SandboxControl, receiver: Receiver
) -> None:
    query = {"app_id": CLIENT_KEY, "secret": CLIENT_SECRET, "event_type": "DIRECT_MESSAGE"}
    before = (await api.get("/business/webhook/list/", params=query)).json()
    assert before["code"] == 0 and before["data"]["callback_url"].endswith("/webhook/tiktok")

    moved = "https://shop.test/webhook/tiktok"
    body = {**query, "callback_url": moved}
    updated = (await api.post("/business/webhook/update/", json=body)).json()
    assert updated["code"] == 0 and updated["data"]["callback_url"] == moved
    after = (await api.get("/business/webhook/list/", params=query)).json()
    assert after["data"] == {
        "app_id": CLIENT_KEY,
        "event_type": "DIRECT_MESSAGE",
        "callback_url": moved,
    }
    config = await control.configure()
    assert config.webhook_url == moved


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"secret": "wrong"}, 40001), ({"app_id": "other"}, 40001), ({"event_type": "VIDEO"}, 40002)],
)
async def test_the_webhook_configuration_wants_the_apps_secret(
    api: httpx.AsyncClient, control: SandboxControl, overrides: dict[str, str], code: int
) -> None:
    query = {"app_id": CLIENT_KEY, "secret": CLIENT_SECRET, "event_type": "DIRECT_MESSAGE"}
    query.update(overrides)
    listed = (await api.get("/business/webhook/list/", params=query)).json()
    assert listed["code"] == code
    body = {**query, "callback_url": "https://shop.test/webhook/tiktok"}
    updated = (await api.post("/business/webhook/update/", json=body)).json()
    assert updated["code"] == code
