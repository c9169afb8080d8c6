"""The customer simulator (/simulator): a phone-like chat page for trying the bot.

Nothing here talks to the bot directly. The page's backend asks the TikTok sandbox to play
the customer (the sandbox signs and posts the webhook, exactly as TikTok would) and reads
back what the bot sent through the sandbox's record of business messages, so a newcomer
watches the real pipeline: webhook, queue, worker, TikTok stand-in.

The page is public (no staff session): it can only make a pretend customer write to a
pretend TikTok. It is off in production unless SIMULATOR_ENABLED says otherwise, and the
JSON endpoints accept only `application/json` bodies, which a cross-site form cannot send
without a CORS preflight that this app never grants.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import HTMLResponse, Response

from app.core.config import Settings
from app.core.logging import get_logger
from app.db.repositories.items import ItemRepository
from app.db.session import SessionFactory
from app.sandbox.control import SandboxControl
from app.sandbox.media import placeholder_png
from app.sandbox.tiktok import conversation_id_for
from app.web.templating import templates

log = get_logger(__name__)
router = APIRouter(prefix="/simulator", tags=["simulator"], include_in_schema=False)

_SANDBOX_TIMEOUT_SECONDS = 10.0


async def _enabled_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    if not settings.simulator_on:
        # 404 rather than 403: in production the page simply does not exist.
        raise HTTPException(status_code=404, detail="Not Found")
    return settings


SimulatorSettings = Annotated[Settings, Depends(_enabled_settings)]


class SandboxMissing(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            status_code=503,
            detail="No TikTok sandbox is configured: set SANDBOX_URL (make run does it).",
        )


def _sandbox(settings: Settings) -> SandboxControl:
    url = settings.simulator_sandbox_url
    if url is None:
        raise SandboxMissing()
    return SandboxControl(url, timeout=_SANDBOX_TIMEOUT_SECONDS)


class VideoChoice(BaseModel):
    video_id: str
    label: str


async def _videos(session_factory: SessionFactory) -> list[VideoChoice]:
    async with session_factory() as session:
        return [
            VideoChoice(video_id=video_id, label=f"{sku} · {title}")
            for video_id, sku, title in await ItemRepository(session).videos()
        ]


@router.get("", response_class=HTMLResponse)
async def simulator_page(request: Request, settings: SimulatorSettings) -> Response:
    videos = await _videos(request.app.state.session_factory)
    return templates.TemplateResponse(
        request,
        "simulator.html",
        {
            "shop_name": settings.shop_name,
            "sandbox_url": settings.simulator_sandbox_url,
            "videos": videos,
            "questions": SUGGESTED_QUESTIONS,
            "reactions": REACTIONS,
        },
    )


# The suggested questions a shop may set up in TikTok: the customer taps one instead of
# typing, and TikTok sends the tap as a `qa_button_card` template.
SUGGESTED_QUESTIONS = ("Show me the menu", "What's new this week?", "Can you hold a piece?")
REACTIONS = ("❤️", "👍", "😂", "😮")


class CustomerSays(BaseModel):
    """One thing the customer does: writes text, shares a video, sends a photo or a
    sticker, taps a suggested question (`text`), or reacts to the shop's last message."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["text", "video", "photo", "sticker", "question", "reaction"]
    text: str | None = Field(default=None, max_length=6000)
    video_id: str | None = Field(default=None, max_length=64)
    emoji: str | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _has_what_it_needs(self) -> CustomerSays:
        if self.kind in ("text", "question") and not (self.text or "").strip():
            raise ValueError(f"a {self.kind} needs text")
        if self.kind == "video" and not self.video_id:
            raise ValueError("sharing a video needs video_id")
        if self.kind == "reaction" and not self.emoji:
            raise ValueError("a reaction needs emoji")
        return self


class Sent(BaseModel):
    conversation_id: str
    message_id: str
    bot_status: int | None
    media_id: str | None = None


class ChatMessage(BaseModel):
    seq: int
    at: float  # unix seconds, when the sandbox received the bot's call
    kind: Literal["text", "image"]
    text: str | None = None
    image_url: str | None = None


class Thread(BaseModel):
    conversation_id: str
    messages: list[ChatMessage]


async def _require_json(request: Request) -> None:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(status_code=415, detail="send application/json")


@router.post("/api/send", dependencies=[Depends(_require_json)])
async def customer_sends(body: CustomerSays, settings: SimulatorSettings) -> Sent:
    media_id = "v0f044g" + secrets.token_hex(12) if body.kind == "photo" else None
    try:
        async with _sandbox(settings) as sandbox:
            result = await sandbox.play_customer(
                body.user_id,
                text=body.text if body.kind == "text" else None,
                share_post_video_id=body.video_id if body.kind == "video" else None,
                image_media_id=media_id,
                # A picture the sandbox serves, so the page can show what was sent.
                sticker_url=(
                    f"{sandbox.base_url}/_sandbox/media/sticker.png"
                    if body.kind == "sticker"
                    else None
                ),
                button_text=body.text if body.kind == "question" else None,
                # The sandbox points the reaction at the shop's last message.
                reaction_emoji=body.emoji if body.kind == "reaction" else None,
            )
    except httpx.HTTPError as error:
        log.warning("simulator_sandbox_unreachable", error=str(error)[:200])
        raise HTTPException(status_code=502, detail="the TikTok sandbox did not answer") from None
    return Sent(
        conversation_id=result.conversation_id,
        message_id=result.message_id,
        bot_status=result.bot_status,
        media_id=media_id,
    )


@router.get("/api/messages")
async def bot_messages(user_id: str, settings: SimulatorSettings, after: int = 0) -> Thread:
    """What the bot sent this customer (after sequence number `after`), oldest first."""
    # The sandbox derives the conversation from the user id the same way.
    conversation_id = conversation_id_for(user_id, settings.tiktok_business_id)
    try:
        async with _sandbox(settings) as sandbox:
            recorded = await sandbox.messages(conversation_id=conversation_id)
    except httpx.HTTPError as error:
        log.warning("simulator_sandbox_unreachable", error=str(error)[:200])
        raise HTTPException(status_code=502, detail="the TikTok sandbox did not answer") from None
    return Thread(
        conversation_id=conversation_id,
        messages=[
            ChatMessage(
                seq=message.seq,
                at=message.received_at,
                kind="image" if message.message_type == "IMAGE" else "text",
                text=message.text,
                image_url=(
                    f"/simulator/media/{message.media_id}" if message.media_id is not None else None
                ),
            )
            for message in recorded
            if message.seq > after
        ],
    )


# TikTok media ids are letters and digits. The id becomes part of a URL to the sandbox, so
# anything else (a control character, `?`, `#`, `..`) is refused before it gets there.
MediaId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


@router.get("/media/{media_id}")
async def media(media_id: MediaId, settings: SimulatorSettings) -> Response:
    """A photo by TikTok media id: the bytes the bot uploaded, or (for the customer's own
    pretend photos, which were never uploaded) the sandbox's placeholder for that id."""
    try:
        async with _sandbox(settings) as sandbox:
            found = await sandbox.uploaded(media_id)
    except httpx.HTTPError:
        found = None
    if found is None:
        return Response(placeholder_png(media_id), media_type="image/png")
    content, content_type = found
    return Response(content, media_type=content_type, headers={"Cache-Control": "max-age=3600"})
