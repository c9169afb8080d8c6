"""Connect TikTok (/connect/tiktok): where a member of staff connects the shop's account and
points TikTok's webhooks at this bot (tiktok-api.md, "Connecting an account").

The link to TikTok carries a fresh `state` made for the person viewing the page; TikTok
sends them back to /connect/tiktok/callback with it, where only that person's session (or,
for a link made on the command line, nobody's) may use it, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from app.core.config import Settings
from app.core.logging import get_logger
from app.services.messaging.alerts import tiktok_alerts
from app.services.tiktok.api import WebhookConfigData
from app.services.tiktok.connect import (
    COMMAND_LINE,
    ConnectRefused,
    TikTokConnector,
    staff_holder,
)
from app.services.tiktok.errors import TikTokError
from app.services.tiktok.transport import build_http_client
from app.web.deps import LoginRequired, MaybeStaffDep, StaffForm, StaffPage
from app.web.guards import StaffRoute
from app.web.templating import templates

log = get_logger(__name__)

router = APIRouter(prefix="/connect/tiktok", route_class=StaffRoute, include_in_schema=False)

# Query values TikTok puts on the callback are short; anything longer is not TikTok's.
_MAX_PARAM = 2048
Param = Annotated[str | None, Query(max_length=_MAX_PARAM)]


@asynccontextmanager
async def _connector(request: Request) -> AsyncIterator[TikTokConnector]:
    state = request.app.state
    settings: Settings = state.settings
    async with build_http_client(settings) as http:
        yield TikTokConnector(settings, state.redis, state.session_factory, http)


async def _page(
    request: Request,
    staff: object,
    connector: TikTokConnector,
    *,
    notice: str | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    state = request.app.state
    webhook: WebhookConfigData | None = None
    webhook_problem: str | None = None
    try:
        webhook = await connector.webhook_on_file()
    except TikTokError as error:
        webhook_problem = str(error)
    link: str | None = None
    try:
        link = await connector.start(staff_holder(getattr(staff, "staff_id", 0)))
    except ConnectRefused as refused:
        problem = problem or refused.detail
    return templates.TemplateResponse(
        request,
        "connect.html",
        {
            "staff": staff,
            "status": await connector.status(),
            "alerts": await tiktok_alerts(state.redis, state.settings, state.session_factory),
            "webhook": webhook,
            "webhook_problem": webhook_problem,
            "link": link,
            "notice": notice,
            "problem": problem,
        },
        status_code=status_code,
    )


@router.get("")
async def connect_page(request: Request, staff: StaffPage) -> Response:
    async with _connector(request) as connector:
        return await _page(request, staff, connector)


@router.post("/webhook")
async def register_webhook(request: Request, staff: StaffForm) -> Response:
    async with _connector(request) as connector:
        try:
            registered = await connector.register_webhook()
        except (TikTokError, ConnectRefused) as error:
            detail = error.detail if isinstance(error, ConnectRefused) else str(error)
            # Shown on the page like any TikTok trouble there: the person retries from it.
            return await _page(request, staff, connector, problem=f"Not registered: {detail}")
        return await _page(
            request,
            staff,
            connector,
            notice=f"TikTok now sends direct messages to {registered.callback_url}",
        )


@router.get("/callback")
async def callback(
    request: Request,
    staff: MaybeStaffDep,
    state: Param = None,
    auth_code: Param = None,
    code: Param = None,
    error: Param = None,
    error_description: Param = None,
) -> Response:
    """Where TikTok sends the owner back. With a staff session the result is shown on the
    Connect TikTok page; a link made on the command line needs no session."""
    if staff is not None:
        request.state.staff_page = staff
    holder = staff_holder(staff.staff_id) if staff is not None else None
    declined = error_description or error
    async with _connector(request) as connector:
        if staff is None and state:
            asked_by = await connector.holder_of(state)
            if asked_by is not None and asked_by != COMMAND_LINE:
                # A staff link whose session ended while the owner was at TikTok: the
                # state is kept, and used once they have logged in again.
                raise LoginRequired(_here(request))
        try:
            connected = await connector.finish(
                state=state, auth_code=auth_code or code, holder=holder, error=declined
            )
        except ConnectRefused as refused:
            if staff is None:
                return _bare(request, "TikTok not connected", refused.detail, 400)
            return await _page(request, staff, connector, problem=refused.detail, status_code=400)
        lines = [f"TikTok account {connected.open_id} connected."]
        if connected.webhook is not None:
            lines.append(f"Direct messages now go to {connected.webhook.callback_url}.")
        if connected.webhook_error is not None:
            lines.append(f"The webhook is not registered yet: {connected.webhook_error}.")
        lines.extend(connected.notes)
        if staff is None:
            # Whoever opens a command-line link learns only that it worked; the details are
            # for `python -m app.cli tiktok status`.
            return _bare(
                request, "TikTok connected", "The shop's TikTok account is connected.", 200
            )
        return await _page(request, staff, connector, notice=" ".join(lines))


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _bare(request: Request, title: str, detail: str, status_code: int) -> Response:
    """The answer to a command-line link: no staff chrome, nothing about the shop."""
    return templates.TemplateResponse(
        request,
        "connect_done.html",
        {"staff": None, "title": title, "detail": detail},
        status_code=status_code,
    )
