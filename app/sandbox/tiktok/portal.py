"""TikTok's authorisation page, as the shop owner meets it: `GET /portal/auth` shows what
the app asks for, and the owner's answer (`POST /portal/auth`) sends the browser back to
the app's redirect URI with `auth_code` and `state`, or with `error` when they declined.

The code is then exchanged by the app at `/tt_user/oauth2/token/` (business_api). A test
can play the owner with two requests: the GET to see the form, the POST to answer it.
"""

from __future__ import annotations

from html import escape
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.sandbox.tiktok.protocol import MESSAGING_SCOPES
from app.sandbox.tiktok.state import SandboxState

# Some flows name the parameter `code` (tiktok-api.md): the owner's answer may ask for it.
CODE_PARAMETERS = ("auth_code", "code")


def _refusal(reason: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><title>Authorisation error</title><h1>Cannot authorise</h1>"
        f"<p>{escape(reason)}</p>",
        status_code=400,
    )


def _redirect_ok(redirect_uri: str) -> bool:
    parts = urlsplit(redirect_uri)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _back_to(redirect_uri: str, params: dict[str, str]) -> str:
    separator = "&" if "?" in redirect_uri else "?"
    return f"{redirect_uri}{separator}{urlencode(params)}"


def portal_router(state: SandboxState) -> APIRouter:
    config = state.config
    router = APIRouter()

    @router.get("/portal/auth", response_class=HTMLResponse)
    async def authorise_page(
        app_id: Annotated[str, Query()] = "",
        redirect_uri: Annotated[str, Query()] = "",
        state_: Annotated[str, Query(alias="state")] = "",
        scope: Annotated[str, Query()] = "",
    ) -> Response:
        if app_id != config.client_key:
            return _refusal("app_id is not a known app")
        if not _redirect_ok(redirect_uri):
            return _refusal("redirect_uri must be an http(s) URL")
        asked = [part for part in scope.split(",") if part] or list(MESSAGING_SCOPES)
        boxes = "".join(
            f'<label><input type="checkbox" name="scope" value="{escape(item)}" checked> '
            f"{escape(item)}</label><br>"
            for item in asked
        )
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{escape(value)}">'
            for name, value in (
                ("app_id", app_id),
                ("redirect_uri", redirect_uri),
                ("state", state_),
            )
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>TikTok for Business: authorise</title></head><body>"
            f"<h1>Authorise app {escape(app_id)}</h1>"
            f"<p>The app asks to manage the direct messages of <b>@{escape(config.shop_username)}"
            f"</b> (TikTok sandbox). It will be sent back to {escape(redirect_uri)}.</p>"
            f'<form method="post" action="/portal/auth">{hidden}{boxes}'
            '<button name="decision" value="authorise">Authorise</button> '
            '<button name="decision" value="cancel">Cancel</button></form>'
            "</body></html>"
        )
        return HTMLResponse(page)

    @router.post("/portal/auth")
    async def answer(
        app_id: Annotated[str, Form()] = "",
        redirect_uri: Annotated[str, Form()] = "",
        state_: Annotated[str, Form(alias="state")] = "",
        decision: Annotated[str, Form()] = "authorise",
        scope: Annotated[list[str] | None, Form()] = None,
        code_parameter: Annotated[str, Form()] = "auth_code",
    ) -> Response:
        if app_id != config.client_key:
            return _refusal("app_id is not a known app")
        if not _redirect_ok(redirect_uri):
            return _refusal("redirect_uri must be an http(s) URL")
        if code_parameter not in CODE_PARAMETERS:
            return _refusal("code_parameter must be auth_code or code")
        if decision != "authorise":
            params = {"error": "access_denied", "error_description": "The user declined"}
            return RedirectResponse(_back_to(redirect_uri, {**params, "state": state_}), 302)
        code = state.grant(redirect_uri, tuple(scope or ()))
        return RedirectResponse(
            _back_to(redirect_uri, {code_parameter: code, "state": state_}), status_code=302
        )

    return router
