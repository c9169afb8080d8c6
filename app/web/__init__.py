"""The staff web: login, the inbox (/inbox), the admin (/admin), Connect TikTok
(/connect/tiktok), and the public customer
simulator (/simulator, refused in production unless SIMULATOR_ENABLED)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from app.services.staff.auth import Passwords
from app.web import auth, connect, inbox, simulator
from app.web.admin import install_admin
from app.web.deps import (
    CsrfRejected,
    LoginRequired,
    csrf_rejected_handler,
    login_required_handler,
    staff_error_page,
)
from app.web.templating import STATIC_DIR


def install_staff_web(app: FastAPI) -> None:
    """Everything staff see, mounted on the API app (it reads the lifespan's engine,
    Redis and Celery from app.state at request time)."""
    app.state.staff_passwords = Passwords()
    app.state.error_page = staff_error_page
    app.add_exception_handler(LoginRequired, login_required_handler)
    app.add_exception_handler(CsrfRejected, csrf_rejected_handler)
    app.include_router(auth.router)
    app.include_router(inbox.router)
    app.include_router(connect.router)
    app.include_router(simulator.router)
    # Public on purpose: the login page needs its stylesheet; nothing here is private.
    app.mount("/static/staff", StaticFiles(directory=STATIC_DIR), name="staff-static")
    install_admin(app)
