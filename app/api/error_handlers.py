from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from app.core.errors import PhiliaError
from app.core.logging import get_logger

log = get_logger(__name__)

# The staff web's error page: a Response for a request it serves as a page, else None
# (the API's routes and the pages' scripts get JSON).
ErrorPage = Callable[[Request, PhiliaError], Response | None]


async def _philia_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, PhiliaError)
    if error.status_code >= 500:
        log.warning("request_failed", path=request.url.path, error=error.code, detail=error.detail)
    page: ErrorPage | None = getattr(request.app.state, "error_page", None)
    shown = page(request, error) if page is not None else None
    if shown is not None:
        return shown
    return JSONResponse(
        {"error": error.code, "detail": error.detail}, status_code=error.status_code
    )


def install_error_handlers(app: FastAPI) -> None:
    """The one handler of every PhiliaError, for the API and the staff web alike (the web
    sets `app.state.error_page` to show browsers its page)."""
    app.add_exception_handler(PhiliaError, _philia_error)
