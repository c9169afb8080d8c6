from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.core.errors import PhiliaError
from app.core.logging import get_logger

log = get_logger(__name__)


async def _philia_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, PhiliaError)
    if error.status_code >= 500:
        log.warning("request_failed", path=request.url.path, error=error.code, detail=error.detail)
    return JSONResponse(
        {"error": error.code, "detail": error.detail}, status_code=error.status_code
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PhiliaError, _philia_error)
