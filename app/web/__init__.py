"""The staff web: login, the inbox (/inbox), the shop's numbers (/insights), the admin
(/admin), Connect TikTok
(/connect/tiktok), and the public customer
simulator (/simulator, refused in production unless SIMULATOR_ENABLED)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from app.services.staff.auth import Passwords
from app.web import auth, connect, inbox, insights, simulator
from app.web.admin import install_admin
from app.web.deps import (
    CsrfRejected,
    LoginRequired,
    csrf_rejected_handler,
    login_required_handler,
    staff_error_page,
)
from app.web.templating import STATIC_DIR


async def _no_icon() -> Response:
    return Response(status_code=204)


def install_staff_web(app: FastAPI) -> None:
    """Everything staff see, mounted on the API app (it reads the lifespan's engine,
    Redis and Celery from app.state at request time)."""
    app.state.staff_passwords = Passwords()
    app.state.error_page = staff_error_page
    app.add_exception_handler(LoginRequired, login_required_handler)
    app.add_exception_handler(CsrfRejected, csrf_rejected_handler)
    app.include_router(auth.router)
    app.include_router(inbox.router)
    app.include_router(insights.router)
    app.include_router(connect.router)
    app.include_router(simulator.router)
    # Browsers ask every page's origin for an icon (the admin's pages name none): an empty
    # answer instead of a 404 in every console.
    app.add_api_route("/favicon.ico", _no_icon, methods=["GET"], include_in_schema=False)
    # Public on purpose: the login page needs its stylesheet; nothing here is private.
    app.mount("/static/staff", StaticFiles(directory=STATIC_DIR), name="staff-static")
    install_admin(app)
