"""The TikTok Business Messaging endpoints the bot calls (tiktok-api.md): send a message,
upload an image, ask a conversation's capabilities, and refresh the OAuth tokens. They
answer with TikTok's shapes, auth header and error behaviour, and record every call.

The request models here are written from the spec on purpose rather than imported from
the client: if both sides shared one model, a wrong field name would pass every test.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.sandbox.tiktok.multipart import parse_multipart
from app.sandbox.tiktok.protocol import (
    CODE_BAD_PARAMETERS,
    CODE_INVALID_TOKEN,
    CODE_NOT_FOUND,
    CODE_OK,
    CODE_PERMISSION,
    CODE_RATE_LIMITED,
    CODE_UNSUPPORTED_FILE,
    Endpoint,
    envelope,
    validation_message,
)
from app.sandbox.tiktok.state import RecordedCall, SandboxState, Upload
from app.sandbox.tiktok.webhooks import WebhookSender

MAX_TEXT_CHARS = 6000
WEBHOOK_EVENT_TYPE = "DIRECT_MESSAGE"
# Direct messages are one-to-one: the only conversation type the capabilities query takes.
CONVERSATION_TYPE_SINGLE = "SINGLE"
MAX_IMAGE_BYTES = 3 * 1024 * 1024
IMAGE_SIGNATURES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


# -- TikTok request shapes, from the spec -------------------------------------------------


class _TextBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str


class _ImageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    media_id: str


class _SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    business_id: str
    recipient_type: Literal["CONVERSATION"]
    recipient: str = Field(min_length=1)
    message_type: Literal["TEXT", "IMAGE"]
    text: _TextBody | None = None
    image: _ImageBody | None = None


class _RefreshBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str
    client_secret: str
    grant_type: str
    refresh_token: str


class _AuthCodeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str
    client_secret: str
    grant_type: str
    auth_code: str
    redirect_uri: str


class _WebhookUpdateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_id: str
    secret: str
    event_type: str
    callback_url: str = Field(min_length=1)


@dataclass
class _Outcome:
    """What an endpoint's own checks decided; the gate wraps it in TikTok's envelope."""

    code: int
    data: dict[str, Any] | None = None
    message: str | None = None


def _respond(call: RecordedCall, status: int, body: bytes, code: int | None) -> Response:
    call.http_status = status
    call.code = code
    return Response(content=body, status_code=status, media_type="application/json")


async def _api_call(
    state: SandboxState,
    request: Request,
    endpoint: Endpoint,
    action: Callable[[], Awaitable[_Outcome]],
    *,
    needs_token: bool = True,
) -> Response:
    """The gate every API call goes through, in TikTok's order: recorded, then injected
    faults, the rate limit and the access token, and only then the endpoint's own
    checks (`action`)."""
    call = state.record_call(request, endpoint)
    # Read the whole request first (Starlette keeps it): a delayed answer must still act
    # on a request whose client has given up waiting, as TikTok would.
    await request.body()
    kind = await state.faults.next_fault(endpoint)
    if kind is not None:
        call.injected = kind
        if kind.startswith("http_"):
            # A gateway error page, not TikTok's envelope: what a proxy in front answers.
            status = int(kind.removeprefix("http_"))
            call.http_status = status
            return PlainTextResponse(f"{status} injected error", status_code=status)
        if kind.startswith("code_"):
            code = int(kind.removeprefix("code_"))
            return _respond(call, 200, envelope(code), code)
    if state.over_rate_limit(call):
        return _respond(call, 200, envelope(CODE_RATE_LIMITED), CODE_RATE_LIMITED)
    if needs_token:
        problem = state.token_problem(
            request.headers.get("Access-Token"), request.headers.get("Authorization")
        )
        if problem is not None:
            return _respond(call, 200, envelope(CODE_INVALID_TOKEN, problem), CODE_INVALID_TOKEN)
    outcome = await action()
    return _respond(call, 200, envelope(outcome.code, outcome.message, outcome.data), outcome.code)


def business_api_router(state: SandboxState, webhooks: WebhookSender) -> APIRouter:
    config = state.config
    router = APIRouter()

    @router.post("/open_api/{version}/business/message/send/")
    async def send_message(version: str, request: Request) -> Response:
        async def action() -> _Outcome:
            try:
                payload = _SendBody.model_validate_json(await request.body())
            except ValidationError as error:
                return _Outcome(CODE_BAD_PARAMETERS, message=validation_message(error))
            if payload.business_id != config.business_id:
                return _Outcome(CODE_PERMISSION)
            if payload.message_type == "TEXT":
                if payload.text is None or payload.image is not None:
                    return _Outcome(CODE_BAD_PARAMETERS, message="TEXT needs text and no image")
                if not payload.text.body.strip() or len(payload.text.body) > MAX_TEXT_CHARS:
                    return _Outcome(CODE_BAD_PARAMETERS, message="text.body must be 1-6000 chars")
                message = state.record_message(payload.recipient, "TEXT", text=payload.text.body)
            else:
                if payload.image is None or payload.text is not None:
                    return _Outcome(CODE_BAD_PARAMETERS, message="IMAGE needs image and no text")
                if payload.image.media_id not in state.media:
                    return _Outcome(CODE_NOT_FOUND, message="media_id not found")
                message = state.record_message(
                    payload.recipient, "IMAGE", media_id=payload.image.media_id
                )
            if state.settings.echo_sends:
                # In the background, so the send's answer does not wait on the bot's webhook.
                webhooks.spawn(webhooks.echo_send(message))
            if config.flat_send_answer:
                return _Outcome(CODE_OK, data={"message_id": message.message_id})
            return _Outcome(CODE_OK, data={"message": {"message_id": message.message_id}})

        return await _api_call(state, request, "send", action)

    @router.post("/open_api/{version}/business/message/media/upload/")
    async def upload_media(version: str, request: Request) -> Response:
        async def action() -> _Outcome:
            parts = parse_multipart(await request.body(), request.headers.get("content-type", ""))
            if parts is None:
                return _Outcome(CODE_BAD_PARAMETERS, message="expected multipart/form-data")
            business = parts.get("business_id")
            media_type = parts.get("media_type")
            upload = parts.get("file")
            if business is None or media_type is None or upload is None:
                return _Outcome(
                    CODE_BAD_PARAMETERS, message="business_id, media_type and file are required"
                )
            if upload.filename is None:
                return _Outcome(CODE_BAD_PARAMETERS, message="file must be a file part")
            if business.content.decode("utf-8", "replace") != config.business_id:
                return _Outcome(CODE_PERMISSION)
            if media_type.content != b"IMAGE":
                return _Outcome(CODE_BAD_PARAMETERS, message="media_type must be IMAGE")
            detected = next(
                (
                    kind
                    for magic, kind in IMAGE_SIGNATURES.items()
                    if upload.content.startswith(magic)
                ),
                None,
            )
            if detected is None:
                return _Outcome(CODE_UNSUPPORTED_FILE, message="only JPG and PNG are supported")
            if len(upload.content) > MAX_IMAGE_BYTES:
                return _Outcome(CODE_BAD_PARAMETERS, message="file larger than 3 MB")
            media = Upload(
                media_id="v10033g5" + secrets.token_hex(12),
                filename=upload.filename,
                content_type=detected,
                size=len(upload.content),
                uploaded_at=time.time(),
                content=upload.content,
            )
            state.media[media.media_id] = media
            return _Outcome(CODE_OK, data={"media_id": media.media_id})

        return await _api_call(state, request, "media_upload", action)

    @router.get("/open_api/{version}/business/message/capabilities/get/")
    async def get_capabilities(version: str, request: Request) -> Response:
        async def action() -> _Outcome:
            query = request.query_params
            if query.get("business_id") != config.business_id:
                return _Outcome(CODE_PERMISSION)
            conversation_id = query.get("conversation_id")
            if not conversation_id:
                return _Outcome(CODE_BAD_PARAMETERS, message="conversation_id is required")
            # TikTok takes it and a production client always sends it; the stand-in insists,
            # so a client that forgets it finds out here.
            if query.get("conversation_type") != CONVERSATION_TYPE_SINGLE:
                return _Outcome(CODE_BAD_PARAMETERS, message="conversation_type must be SINGLE")
            try:
                requested = orjson.loads(query.get("capability_types", ""))
            except orjson.JSONDecodeError:
                requested = None
            if not (
                isinstance(requested, list)
                and requested
                and all(isinstance(item, str) for item in requested)
            ):
                return _Outcome(
                    CODE_BAD_PARAMETERS, message="capability_types must be a JSON list of strings"
                )
            infos = [
                {
                    "capability_type": kind,
                    "capability_result": kind == "IMAGE_SEND"
                    and state.image_send_for(conversation_id),
                }
                for kind in requested
            ]
            return _Outcome(CODE_OK, data={"capability_infos": infos})

        return await _api_call(state, request, "capabilities", action)

    @router.post("/open_api/{version}/tt_user/oauth2/refresh_token/")
    async def refresh_token(version: str, request: Request) -> Response:
        async def action() -> _Outcome:
            try:
                payload = _RefreshBody.model_validate_json(await request.body())
            except ValidationError as error:
                return _Outcome(CODE_BAD_PARAMETERS, message=validation_message(error))
            if payload.client_id != config.client_key or not secrets.compare_digest(
                payload.client_secret, config.client_secret
            ):
                return _Outcome(CODE_PERMISSION, message="client_id or client_secret is wrong")
            if payload.grant_type != "refresh_token":
                return _Outcome(CODE_BAD_PARAMETERS, message="grant_type must be refresh_token")
            if (
                not secrets.compare_digest(payload.refresh_token, state.refresh_token)
                or time.time() >= state.refresh_expires_at
            ):
                return _Outcome(CODE_BAD_PARAMETERS, message="refresh_token is invalid or expired")
            state.rotate_tokens()
            return _Outcome(
                CODE_OK,
                data={
                    "access_token": state.access_token,
                    "expires_in": config.access_token_ttl_seconds,
                    "refresh_token": state.refresh_token,
                    "refresh_token_expires_in": config.refresh_token_ttl_seconds,
                    "open_id": config.business_id,
                    "scope": "message.list.send,message.list.read",
                    "token_type": "Bearer",
                },
            )

        # The refresh call carries the client secret, not an access token.
        return await _api_call(state, request, "refresh_token", action, needs_token=False)

    def app_credentials_wrong(app_id: str, secret: str) -> bool:
        return app_id != config.client_key or not secrets.compare_digest(
            secret, config.client_secret
        )

    def tokens_data(scopes: tuple[str, ...]) -> dict[str, Any]:
        return {
            "access_token": state.access_token,
            "expires_in": config.access_token_ttl_seconds,
            "refresh_token": state.refresh_token,
            "refresh_token_expires_in": config.refresh_token_ttl_seconds,
            "open_id": config.business_id,
            "scope": ",".join(scopes),
            "token_type": "Bearer",
        }

    @router.post("/open_api/{version}/tt_user/oauth2/token/")
    async def exchange_auth_code(version: str, request: Request) -> Response:
        async def action() -> _Outcome:
            try:
                payload = _AuthCodeBody.model_validate_json(await request.body())
            except ValidationError as error:
                return _Outcome(CODE_BAD_PARAMETERS, message=validation_message(error))
            if app_credentials_wrong(payload.client_id, payload.client_secret):
                return _Outcome(CODE_PERMISSION, message="client_id or client_secret is wrong")
            if payload.grant_type != "authorization_code":
                return _Outcome(
                    CODE_BAD_PARAMETERS, message="grant_type must be authorization_code"
                )
            granted = state.redeem(payload.auth_code, payload.redirect_uri)
            if granted is None:
                return _Outcome(
                    CODE_BAD_PARAMETERS,
                    message="auth_code is invalid, expired, used or for another redirect_uri",
                )
            # A new authorisation: a new pair, the old one no longer honoured.
            state.rotate_tokens()
            return _Outcome(CODE_OK, data=tokens_data(granted.scopes))

        return await _api_call(state, request, "oauth_token", action, needs_token=False)

    @router.post("/open_api/{version}/business/webhook/update/")
    async def update_webhook(version: str, request: Request) -> Response:
        async def action() -> _Outcome:
            try:
                payload = _WebhookUpdateBody.model_validate_json(await request.body())
            except ValidationError as error:
                return _Outcome(CODE_BAD_PARAMETERS, message=validation_message(error))
            if app_credentials_wrong(payload.app_id, payload.secret):
                return _Outcome(CODE_PERMISSION, message="app_id or secret is wrong")
            if payload.event_type != WEBHOOK_EVENT_TYPE:
                return _Outcome(CODE_BAD_PARAMETERS, message="event_type must be DIRECT_MESSAGE")
            if not payload.callback_url.startswith(("https://", "http://")):
                return _Outcome(CODE_BAD_PARAMETERS, message="callback_url must be a URL")
            # From now on the webhooks go there, as TikTok's would.
            state.settings.webhook_url = payload.callback_url
            return _Outcome(CODE_OK, data=webhook_data())

        return await _api_call(state, request, "webhook_update", action, needs_token=False)

    @router.get("/open_api/{version}/business/webhook/list/")
    async def list_webhook(version: str, request: Request) -> Response:
        async def action() -> _Outcome:
            query = request.query_params
            if app_credentials_wrong(query.get("app_id", ""), query.get("secret", "")):
                return _Outcome(CODE_PERMISSION, message="app_id or secret is wrong")
            if query.get("event_type") != WEBHOOK_EVENT_TYPE:
                return _Outcome(CODE_BAD_PARAMETERS, message="event_type must be DIRECT_MESSAGE")
            return _Outcome(CODE_OK, data=webhook_data())

        return await _api_call(state, request, "webhook_list", action, needs_token=False)

    def webhook_data() -> dict[str, Any]:
        data: dict[str, Any] = {"app_id": config.client_key, "event_type": WEBHOOK_EVENT_TYPE}
        if state.settings.webhook_url:
            data["callback_url"] = state.settings.webhook_url
        return data

    return router
