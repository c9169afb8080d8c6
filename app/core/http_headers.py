"""Security headers on every response the app gives, in one ASGI middleware.

Every response: no MIME sniffing, no referrer beyond our origin, never framed, and in
production HSTS (the shop is served over HTTPS only; a browser that has seen the header once
never falls back to plain HTTP). HTML responses also get a Content-Security-Policy, chosen by
path: our own pages load everything from our origin; sqladmin's pages need inline styles
(its select and date widgets set style attributes); FastAPI's API docs (development only)
load Swagger UI and ReDoc from their CDN with an inline bootstrap script.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Receive, Scope, Send

HSTS = "max-age=63072000; includeSubDomains"

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

_OWN_PAGES_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)
_ADMIN_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
_DOCS_CDN = "https://cdn.jsdelivr.net"
_DOCS_CSP = (
    f"default-src 'self'; script-src 'self' 'unsafe-inline' {_DOCS_CDN}; "
    f"style-src 'self' 'unsafe-inline' {_DOCS_CDN} https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_CSP_BY_PREFIX = (("/admin", _ADMIN_CSP), ("/docs", _DOCS_CSP), ("/redoc", _DOCS_CSP))


def content_security_policy(path: str) -> str:
    for prefix, policy in _CSP_BY_PREFIX:
        if path == prefix or path.startswith(prefix + "/"):
            return policy
    return _OWN_PAGES_CSP


class SecurityHeaders:
    """Adds the headers unless the route set its own (a route may be stricter)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("root_path", "") + scope["path"]

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    headers.setdefault(name, value)
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", HSTS)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", content_security_policy(path))
            await send(message)

        await self.app(scope, receive, sending)
