"""Dependencies of the staff routes: who is signed in, the CSRF check, the services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import RedirectResponse, Response

from app.core.config import Settings
from app.core.errors import PhiliaError
from app.core.logging import get_logger
from app.services.staff.auth import SignedIn, StaffAuth
from app.services.staff.inbox import StaffInbox
from app.web.guards import (
    CSRF_FIELD,
    CSRF_HEADER,
    csrf_failure,
    is_script_request,
    login_url,
    session_cookie_name,
    staff_auth_for,
    tokens_match,
)
from app.web.templating import templates
from app.worker.enqueue import delivery_enqueuer

log = get_logger(__name__)


class NotSignedIn(PhiliaError):
    status_code = 401
    code = "not_signed_in"


class LoginRequired(Exception):
    """A page asked for without a session: answered with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path
        super().__init__(next_path)


class CsrfRejected(Exception):
    pass


async def _auth(request: Request) -> StaffAuth:
    return staff_auth_for(request.app)


AuthDep = Annotated[StaffAuth, Depends(_auth)]


async def current_staff(request: Request, auth: AuthDep) -> SignedIn | None:
    settings: Settings = request.app.state.settings
    return await auth.signed_in(request.cookies.get(session_cookie_name(settings)))


MaybeStaffDep = Annotated[SignedIn | None, Depends(current_staff)]


async def _staff_page(request: Request, staff: MaybeStaffDep) -> SignedIn:
    if staff is None:
        if is_script_request(request):
            raise NotSignedIn("log in first")
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    # An error on this request is shown as the staff error page (see staff_error_page).
    request.state.staff_page = staff
    return staff


async def _staff_api(staff: MaybeStaffDep) -> SignedIn:
    if staff is None:
        raise NotSignedIn("log in first")
    return staff


StaffPage = Annotated[SignedIn, Depends(_staff_page)]
StaffApi = Annotated[SignedIn, Depends(_staff_api)]


async def _csrf_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        # Starlette caches the parsed form on the request: the route reads it again free.
        field = (await request.form()).get(CSRF_FIELD)
        return field if isinstance(field, str) else None
    return None


async def _staff_form(request: Request, staff: StaffPage) -> SignedIn:
    if not tokens_match(staff.csrf_token, await _csrf_token(request)):
        log.info("csrf_rejected", path=request.url.path, staff_id=staff.staff_id)
        raise CsrfRejected()
    return staff


# A signed-in staff member whose request carries the session's CSRF token.
StaffForm = Annotated[SignedIn, Depends(_staff_form)]


async def _inbox(request: Request) -> StaffInbox:
    state = request.app.state
    settings: Settings = state.settings
    enqueue = delivery_enqueuer(state.producer, settings.webhook_enqueue_timeout_seconds)
    return StaffInbox(state.session_factory, state.redis, settings, enqueue)


InboxDep = Annotated[StaffInbox, Depends(_inbox)]


def staff_error_page(request: Request, error: PhiliaError) -> Response | None:
    """The page a person sees for an error on a staff page; None for scripts and the API."""
    staff: SignedIn | None = getattr(request.state, "staff_page", None)
    if staff is None or is_script_request(request):
        return None
    title = "Not found" if error.status_code == 404 else "Something went wrong"
    return templates.TemplateResponse(
        request,
        "error.html",
        {"staff": staff, "title": title, "detail": error.detail},
        status_code=error.status_code,
    )


async def login_required_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, LoginRequired)
    return RedirectResponse(login_url(error.next_path), status_code=303)


async def csrf_rejected_handler(request: Request, error: Exception) -> Response:
    return csrf_failure(request)
