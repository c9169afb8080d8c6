"""One HTTP exchange with TikTok's API and the reading of its envelope, shared by the
message client (`client`) and the app-level calls of connecting an account (`app_api`).

HTTP-level failures become typed errors here, with whether the request may have reached
TikTok (`maybe_delivered`); the envelope's `code` is left to the caller, which knows what
a refusal means for its call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from app.core.config import Settings
from app.services.tiktok.api import Envelope
from app.services.tiktok.errors import (
    TikTokCode,
    TikTokError,
    TikTokPermanentError,
    TikTokTransientError,
    TransientKind,
    error_for_code,
)

M = TypeVar("M", bound=BaseModel)


class TikTokTransport:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._http = http
        self._api_url = settings.tiktok_api_url
        self._timeout = httpx.Timeout(
            settings.tiktok_http_timeout_seconds,
            connect=min(settings.tiktok_http_timeout_seconds, 5.0),
        )

    async def exchange(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        json: object | None = None,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> Answer:
        """One HTTP request; HTTP-level failures raise, the envelope's `code` is the caller's."""
        headers = {"Access-Token": token} if token is not None else {}
        try:
            response = await self._http.request(
                method,
                self._api_url + path,
                headers=headers,
                json=json,
                params=params,
                data=data,
                files=files,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as error:
            # Connect and pool timeouts never reached TikTok; a read timeout may have.
            reached = not isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout)
            raise TikTokTransientError(
                None,
                f"timeout calling {path}",
                kind=TransientKind.TIMEOUT,
                maybe_delivered=reached,
            ) from error
        except httpx.UnsupportedProtocol as error:
            raise TikTokPermanentError(None, f"bad TikTok API URL: {error}") from error
        except httpx.TransportError as error:
            raise TikTokTransientError(
                None,
                f"connection failed calling {path}: {error.__class__.__name__}",
                kind=TransientKind.CONNECTION,
                maybe_delivered=not isinstance(error, httpx.ConnectError),
            ) from error
        return Answer(envelope_of(response, path), response.status_code)


@dataclass(frozen=True)
class Answer:
    envelope: Envelope
    status: int

    def refusal(self) -> TikTokError | None:
        """The error TikTok's `code` means; None for a success (code 0)."""
        envelope = self.envelope
        if envelope.code == TikTokCode.OK:
            return None
        return error_for_code(
            envelope.code, envelope.message, envelope.request_id, http_status=self.status
        )


def envelope_of(response: httpx.Response, path: str) -> Envelope:
    status = response.status_code
    if status >= 500:
        raise TikTokTransientError(
            None,
            f"TikTok answered HTTP {status} to {path}",
            kind=TransientKind.SERVER_ERROR,
            http_status=status,
            maybe_delivered=True,
        )
    try:
        envelope = Envelope.model_validate_json(response.content)
    except ValidationError:
        envelope = None
    if 200 <= status < 300:
        if envelope is None:
            raise TikTokTransientError(
                None,
                f"TikTok answered {path} with a body that is not its envelope",
                kind=TransientKind.INVALID_RESPONSE,
                http_status=status,
                maybe_delivered=True,
            )
        return envelope
    # A 4xx that still carries TikTok's envelope is classified by its code (a 40100 under
    # HTTP 429 is still a rate limit); without one, only 429 is worth retrying.
    if envelope is not None and envelope.code != TikTokCode.OK:
        return envelope
    if status == 429:
        raise TikTokTransientError(
            None, f"HTTP 429 from {path}", kind=TransientKind.RATE_LIMITED, http_status=status
        )
    raise TikTokPermanentError(None, f"TikTok answered HTTP {status} to {path}", http_status=status)


def data_as(model: type[M], envelope: Envelope) -> M:
    try:
        return model.model_validate(envelope.data if isinstance(envelope.data, dict) else {})
    except ValidationError as error:
        # code 0 with an unexpected body: the request may well have worked, so retrying
        # (possibly sending twice) is not safe.
        first = error.errors()[0]
        raise TikTokPermanentError(
            envelope.code,
            f"unexpected response data: {first['loc']}: {first['msg']}",
            envelope.request_id,
        ) from error
