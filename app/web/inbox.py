"""The staff inbox: /inbox lists conversations, /inbox/{id} is one of them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.core.config import Settings
from app.core.logging import get_logger
from app.db.models import Message
from app.services.messaging.alerts import tiktok_alerts
from app.services.shop import sell_hold
from app.services.staff.auth import SignedIn
from app.services.staff.inbox import (
    ConversationView,
    ReplyRefused,
    WindowView,
)
from app.web.deps import InboxDep, StaffApi, StaffForm, StaffPage
from app.web.guards import StaffRoute, is_script_request
from app.web.templating import author, clock, countdown, describe, templates
from app.worker.enqueue import delivery_enqueuer

log = get_logger(__name__)

router = APIRouter(prefix="/inbox", route_class=StaffRoute, include_in_schema=False)

# Conversation and message ids are PostgreSQL BIGINTs. A larger number is nobody's id, and
# asyncpg refuses to even send it (a 500), so it is refused here with a 422 saying why.
BIGINT_MAX = 2**63 - 1
ConversationId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]


class ReplyForm(BaseModel):
    # The configured per-message limit is checked in the route; this only bounds the body.
    text: str = Field(default="", max_length=20_000)


class WindowOut(BaseModel):
    open: bool
    ends_at: float | None
    seconds_left: int
    label: str
    replies_used: int
    replies_left: int
    queued: int

    @classmethod
    def of(cls, window: WindowView) -> WindowOut:
        return cls(
            open=window.open,
            ends_at=window.ends_at,
            seconds_left=window.seconds_left,
            label=countdown(window.seconds_left),
            replies_used=window.replies_used,
            replies_left=window.replies_left,
            queued=window.queued,
        )


class MessageOut(BaseModel):
    id: int
    direction: str
    author: str
    text: str
    status: str
    status_reason: str | None
    at: str

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        return cls(
            id=message.id,
            direction=message.direction,
            author=author(message),
            text=describe(message),
            status=message.status,
            status_reason=message.status_reason,
            at=clock(message.created_at),
        )


class PollOut(BaseModel):
    conversation_id: int
    mode: str
    window: WindowOut
    messages: list[MessageOut]


@router.get("")
async def inbox(request: Request, staff: StaffPage, inbox: InboxDep) -> Response:
    entries = await inbox.overview()
    state = request.app.state
    alerts = await tiktok_alerts(state.redis, state.settings, state.session_factory)
    return templates.TemplateResponse(
        request, "inbox.html", {"staff": staff, "entries": entries, "alerts": alerts}
    )


@router.get("/rows")
async def inbox_rows(request: Request, staff: StaffApi, inbox: InboxDep) -> Response:
    """The list's rows alone, for the page's periodic refresh."""
    entries = await inbox.overview()
    return templates.TemplateResponse(request, "_inbox_rows.html", {"entries": entries})


def _conversation_page(
    request: Request,
    staff: SignedIn,
    view: ConversationView,
    *,
    error: str | None = None,
    draft: str = "",
    status_code: int = 200,
) -> Response:
    settings: Settings = request.app.state.settings
    return templates.TemplateResponse(
        request,
        "conversation.html",
        {
            "staff": staff,
            "view": view,
            "error": error,
            "draft": draft,
            "max_chars": settings.max_text_chars,
            "quota": settings.reply_quota,
        },
        status_code=status_code,
    )


@router.get("/{conversation_id}")
async def conversation(
    request: Request, conversation_id: ConversationId, staff: StaffPage, inbox: InboxDep
) -> Response:
    view = await inbox.conversation(conversation_id)
    return _conversation_page(request, staff, view)


@router.get("/{conversation_id}/messages")
async def poll(
    conversation_id: ConversationId,
    staff: StaffApi,
    inbox: InboxDep,
    after: Annotated[int, Query(ge=0, le=BIGINT_MAX)] = 0,
) -> PollOut:
    """Messages after an id, with the live window: the page polls this every few seconds.

    The page asks from just before its oldest still-pending message, so a reply that
    has since been sent (or refused) comes back with its new status."""
    view = await inbox.messages_after(conversation_id, after)
    return PollOut(
        conversation_id=conversation_id,
        mode=view.conversation.mode,
        window=WindowOut.of(view.window),
        messages=[MessageOut.of(message) for message in view.messages],
    )


@router.post("/{conversation_id}/reply")
async def reply(
    request: Request,
    conversation_id: ConversationId,
    staff: StaffForm,
    inbox: InboxDep,
    form: Annotated[ReplyForm, Form()],
) -> Response:
    settings: Settings = request.app.state.settings
    text = form.text.strip()
    problem = None
    if not text:
        problem = "Write a message first."
    elif len(text) > settings.max_text_chars:
        problem = f"A message can have at most {settings.max_text_chars} characters."
    elif "\x00" in text:
        # PostgreSQL cannot store it, and no keyboard types it: a client bug or a probe.
        problem = "The message contains a NUL character (U+0000), which cannot be sent."
    try:
        if problem is not None:
            return await _refuse(
                request, staff, inbox, conversation_id, "invalid", problem, 400, form.text
            )
        outbox_ids = await inbox.reply(conversation_id, staff, text)
    except ReplyRefused as refusal:
        # Not the generic error page: the conversation again, with the person's draft.
        return await _refuse(
            request,
            staff,
            inbox,
            conversation_id,
            refusal.code,
            refusal.detail,
            refusal.status_code,
            form.text,
        )
    if is_script_request(request):
        return JSONResponse({"status": "queued", "outbox_ids": outbox_ids}, status_code=202)
    return RedirectResponse(f"/inbox/{conversation_id}", status_code=303)


async def _refuse(
    request: Request,
    staff: SignedIn,
    inbox: InboxDep,
    conversation_id: int,
    code: str,
    detail: str,
    status_code: int,
    draft: str,
) -> Response:
    if is_script_request(request):
        return JSONResponse({"error": code, "detail": detail}, status_code=status_code)
    # Without scripts: the page again, with the reason and the text the person typed.
    view = await inbox.conversation(conversation_id)
    return _conversation_page(
        request, staff, view, error=detail, draft=draft, status_code=status_code
    )


@router.post("/{conversation_id}/hand-back")
async def hand_back(
    request: Request, conversation_id: ConversationId, staff: StaffForm, inbox: InboxDep
) -> Response:
    """The bot answers this customer again from their next message."""
    await inbox.hand_back(conversation_id, staff)
    if is_script_request(request):
        return JSONResponse({"mode": "bot"})
    return RedirectResponse("/inbox", status_code=303)


@router.post("/{conversation_id}/take-over")
async def take_over(
    request: Request, conversation_id: ConversationId, staff: StaffForm, inbox: InboxDep
) -> Response:
    """Silence the bot in this conversation before replying."""
    await inbox.take_over(conversation_id, staff)
    if is_script_request(request):
        return JSONResponse({"mode": "human"})
    return RedirectResponse(f"/inbox/{conversation_id}", status_code=303)


@router.post("/{conversation_id}/holds/{hold_id}/paid")
async def mark_paid(
    request: Request,
    conversation_id: ConversationId,
    hold_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)],
    staff: StaffForm,
    inbox: InboxDep,
) -> Response:
    """The customer paid for a held piece: an order is recorded for it, the hold becomes a
    sale, the customer is thanked and the piece's waitlist told (followthrough.py)."""
    view = await inbox.conversation(conversation_id)
    state = request.app.state
    settings: Settings = state.settings
    order_number = await sell_hold(
        state.session_factory,
        settings,
        state.redis,
        delivery_enqueuer(state.producer, settings.webhook_enqueue_timeout_seconds),
        hold_id=hold_id,
        customer_id=view.customer.id,
    )
    log.info("staff_marked_paid", staff_id=staff.staff_id, hold_id=hold_id, order=order_number)
    if is_script_request(request):
        return JSONResponse({"order_number": order_number}, status_code=201)
    return RedirectResponse(f"/inbox/{conversation_id}", status_code=303)
