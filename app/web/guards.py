"""Cookies, CSRF and the gate in front of /admin.

Every staff page sits behind a server-side session (see app.services.staff.auth). Every
state-changing request carries the session's CSRF token, in a hidden form field or, from
scripts, in the X-CSRF-Token header, compared in constant time. SameSite=Lax on the
cookie already stops most cross-site posts; the token covers the rest (old browsers,
sibling subdomains).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any
from urllib.parse import quote

from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Environment, Settings
from app.services.staff.auth import Passwords, SignedIn, StaffAuth

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_CSRF_COOKIE = "philia_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The largest form the admin accepts (the catalogue CSV upload is the big one).
MAX_ADMIN_BODY_BYTES = 8 * 1024 * 1024

# Pages of people's conversations are never cached; the headers every response gets
# (framing, sniffing, CSP, HSTS) come from app.core.http_headers.
STAFF_HEADERS = {"Cache-Control": "no-store"}


def secure_cookies(settings: Settings) -> bool:
    # Development and tests run on plain http://127.0.0.1, where a Secure cookie is dropped.
    return settings.environment is Environment.PRODUCTION


def session_cookie_name(settings: Settings) -> str:
    # The __Host- prefix makes browsers refuse the cookie unless it is Secure, for "/",
    # and set by this host itself (no Domain): a sibling subdomain cannot plant one.
    return "__Host-philia_staff" if secure_cookies(settings) else "philia_staff"


def login_csrf_cookie_name(settings: Settings) -> str:
    # Prefixed like the session cookie: a sibling subdomain must not plant a known token.
    return f"__Host-{LOGIN_CSRF_COOKIE}" if secure_cookies(settings) else LOGIN_CSRF_COOKIE


def login_csrf_cookie_path(settings: Settings) -> str:
    # __Host- cookies must be for "/"; elsewhere it goes only where it is used.
    return "/" if secure_cookies(settings) else "/login"


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        token,
        # No max-age: the browser forgets it on close; the server forgets it when idle.
        httponly=True,
        secure=secure_cookies(settings),
        samesite="lax",
        path="/",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        session_cookie_name(settings),
        path="/",
        httponly=True,
        secure=secure_cookies(settings),
        samesite="lax",
    )


def tokens_match(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def is_script_request(request: Request) -> bool:
    """Requests from our scripts (and htmx-style clients) want a status, not a page."""
    return "hx-request" in request.headers or "x-requested-with" in request.headers


def login_url(next_path: str) -> str:
    return f"/login?next={quote(next_path, safe='/')}"


def safe_next(value: str | None) -> str:
    """Where to go after logging in: only our own staff pages (no open redirect)."""
    if (
        value
        and value.startswith(("/inbox", "/admin", "/connect/"))
        and "\\" not in value
        and "//" not in value
    ):
        return value
    return "/inbox"


def client_ip(request: Request) -> str:
    # The peer address. Behind a proxy, uvicorn's --proxy-headers (with the proxy in
    # --forwarded-allow-ips) puts the real client here; X-Forwarded-For is not read
    # directly because anyone can send it.
    return request.client.host if request.client else "unknown"


def staff_auth_for(app: Starlette) -> StaffAuth:
    state = app.state
    passwords: Passwords = state.staff_passwords
    return StaffAuth(state.session_factory, state.redis, state.settings, passwords)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    # The path inside the mounted admin: "/admin/login" is "/login" there.
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


async def _read_body(receive: Receive, limit: int) -> list[Message] | None:
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


class AdminGate:
    """ASGI middleware of the mounted sqladmin app: a staff session for everything under
    /admin (pages are sent to /login, scripts get 401), and the CSRF token on every
    request that changes something. sqladmin's own forms do not carry our token; the
    admin layout (templates/admin/sqladmin/base.html) loads admin-csrf.js, which adds it
    to every form and script request."""

    def __init__(self, app: ASGIApp, main_app: Starlette) -> None:
        self.app = app
        self.main_app = main_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        settings: Settings = self.main_app.state.settings
        auth = staff_auth_for(self.main_app)
        staff = await auth.signed_in(request.cookies.get(session_cookie_name(settings)))
        route = _route_path(scope)
        if staff is None:
            await self._refuse_anonymous(request)(scope, receive, send)
            return
        if route == "/login":  # sqladmin's own login page: ours is the only one
            await RedirectResponse("/admin/", status_code=303)(scope, receive, send)
            return
        if route == "/logout":
            await RedirectResponse("/logout", status_code=303)(scope, receive, send)
            return
        scope.setdefault("state", {})["staff"] = staff
        if request.method not in SAFE_METHODS:
            body = await _read_body(receive, MAX_ADMIN_BODY_BYTES)
            if body is None:
                await JSONResponse(
                    {"error": "payload_too_large", "detail": "the form is too large"}, 413
                )(scope, receive, send)
                return
            receive = _replay(body, receive)
            if not await self._csrf_ok(scope, receive, staff):
                await csrf_failure(request)(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, _with_headers(send, STAFF_HEADERS))

    @staticmethod
    def _refuse_anonymous(request: Request) -> Response:
        if request.method in SAFE_METHODS and not is_script_request(request):
            return RedirectResponse(login_url(request.url.path), status_code=303)
        return JSONResponse({"error": "not_signed_in", "detail": "log in first"}, 401)

    @staticmethod
    async def _csrf_ok(scope: Scope, receive: Receive, staff: SignedIn) -> bool:
        request = Request(scope, receive)
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            async with request.form() as form:
                field = form.get(CSRF_FIELD)
                given = field if isinstance(field, str) else None
        return tokens_match(staff.csrf_token, given)


def csrf_failure(request: Request) -> Response:
    detail = (
        "This form has expired or did not come from a Philia page. Reload the page and try again."
    )
    if is_script_request(request) or "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"error": "csrf_failed", "detail": detail}, 403)
    return Response(
        f'<!doctype html><title>Refused</title><p>{detail}</p><p><a href="/inbox">Inbox</a></p>',
        status_code=403,
        media_type="text/html",
    )


def _with_headers(send: Send, headers: dict[str, str]) -> Send:
    async def sending(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            mutable = MutableHeaders(scope=message)
            for name, value in headers.items():
                mutable.setdefault(name, value)
        await send(message)

    return sending


class StaffRoute(APIRoute):
    """Routes of the staff pages: no response is ever cached."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_headers(request: Request) -> Response:
            response = await handler(request)
            for name, value in STAFF_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return with_headers
