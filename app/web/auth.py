"""Logging staff in and out."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, Field
from starlette.responses import RedirectResponse, Response

from app.core.config import Settings
from app.services.staff.auth import MAX_PASSWORD_CHARS, BadCredentials, LockedOut
from app.web.deps import AuthDep, MaybeStaffDep, StaffForm, StaffPage
from app.web.guards import (
    StaffRoute,
    clear_session_cookie,
    client_ip,
    csrf_failure,
    login_csrf_cookie_name,
    login_csrf_cookie_path,
    safe_next,
    secure_cookies,
    session_cookie_name,
    set_session_cookie,
    tokens_match,
)
from app.web.templating import templates

router = APIRouter(route_class=StaffRoute, include_in_schema=False)


class LoginForm(BaseModel):
    email: str = Field(default="", max_length=255)
    password: str = Field(default="", max_length=MAX_PASSWORD_CHARS)
    csrf_token: str = Field(default="", max_length=200)
    next: str = Field(default="/inbox", max_length=2000)


def _login_page(
    request: Request,
    csrf_token: str,
    next_path: str,
    *,
    email: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"csrf_token": csrf_token, "next": next_path, "email": email, "error": error},
        status_code=status_code,
    )


@router.get("/login")
async def login_page(request: Request, staff: MaybeStaffDep, next: str = "/inbox") -> Response:
    if staff is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    settings: Settings = request.app.state.settings
    # Before a session exists the form is tied to the browser by a cookie of its own
    # (login CSRF: a foreign site must not log a person into an account it controls).
    token = secrets.token_urlsafe(32)
    response = _login_page(request, token, safe_next(next))
    response.set_cookie(
        login_csrf_cookie_name(settings),
        token,
        max_age=3600,
        httponly=True,
        secure=secure_cookies(settings),
        samesite="strict",
        path=login_csrf_cookie_path(settings),
    )
    return response


@router.post("/login")
async def login(request: Request, form: Annotated[LoginForm, Form()], auth: AuthDep) -> Response:
    settings: Settings = request.app.state.settings
    expected = request.cookies.get(login_csrf_cookie_name(settings)) or ""
    if not expected or not tokens_match(expected, form.csrf_token):
        return csrf_failure(request)
    next_path = safe_next(form.next)
    result = await auth.login(form.email, form.password, client_ip(request))
    if isinstance(result, LockedOut):
        response = _login_page(
            request,
            form.csrf_token,
            next_path,
            email=form.email,
            error=(
                "Too many failed logins. For your safety this login is locked: "
                f"try again in {result.minutes} minute{'s' if result.minutes != 1 else ''}."
            ),
            status_code=429,
        )
        response.headers["Retry-After"] = str(result.retry_after)
        return response
    if isinstance(result, BadCredentials):
        return _login_page(
            request,
            form.csrf_token,
            next_path,
            email=form.email,
            error="Wrong email or password.",
            status_code=401,
        )
    # A brand-new token on every login (a token planted before login is worth nothing);
    # a session this browser already had is ended rather than left to idle out.
    await auth.logout(request.cookies.get(session_cookie_name(settings)))
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, settings, result.token)
    response.delete_cookie(
        login_csrf_cookie_name(settings),
        path=login_csrf_cookie_path(settings),
        secure=secure_cookies(settings),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/logout")
async def logout_page(request: Request, staff: StaffPage) -> Response:
    # Logging out changes state, so it is a POST with the CSRF token; this page (where
    # the admin's "Logout" link lands) holds the button.
    return templates.TemplateResponse(request, "logout.html", {"staff": staff})


@router.post("/logout")
async def logout(request: Request, staff: StaffForm, auth: AuthDep) -> Response:
    await auth.logout(staff.token)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, request.app.state.settings)
    return response
