"""One HTTP exchange with TikTok's API and the reading of its envelope, shared by the
message client (`client`) and the app-level calls of connecting an account (`app_api`).

HTTP-level failures become typed errors here, with whether the request may have reached
TikTok (`maybe_delivered`); the envelope's `code` is left to the caller, which knows what
a refusal means for its call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import aiohttp
import orjson
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

# A file for a multipart upload: (file name, bytes, content type).
Upload = tuple[str, bytes, str]


def build_http_client(settings: Settings) -> aiohttp.ClientSession:
    """The process's HTTP client for TikTok, with explicit timeouts: a hung TikTok must not
    hold a worker forever. Built on the event loop it is used on, and closed there.

    aiohttp rather than httpx (which the openai SDK brings): every reply is one call, and
    aiohttp spends about a quarter of httpx's CPU on it (150 against 530 microseconds per
    call measured on the development machine)."""
    total = settings.tiktok_http_timeout_seconds
    return aiohttp.ClientSession(
        # `connect` covers waiting for a pooled connection and opening one: a call that
        # timed out there never reached TikTok. `sock_read` bounds each wait for the answer.
        timeout=aiohttp.ClientTimeout(total=None, connect=min(total, 5.0), sock_read=total),
        connector=aiohttp.TCPConnector(limit=50),
        headers={"User-Agent": "philia-bot"},
        json_serialize=lambda value: orjson.dumps(value).decode(),
    )


class TikTokTransport:
    def __init__(self, settings: Settings, http: aiohttp.ClientSession) -> None:
        self._http = http
        self._api_url = settings.tiktok_api_url

    async def exchange(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        json: object | None = None,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, Upload] | None = None,
    ) -> Answer:
        """One HTTP request; HTTP-level failures raise, the envelope's `code` is the caller's."""
        headers = {"Access-Token": token} if token is not None else {}
        body: aiohttp.FormData | dict[str, str] | None = data
        if files:
            body = _multipart(data or {}, files)
        try:
            async with self._http.request(
                method,
                self._api_url + path,
                headers=headers,
                json=json,
                params=params,
                data=body,
                allow_redirects=False,
            ) as response:
                status, content = response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as error:
            # No connection was made (or free in the pool): the request never left.
            raise TikTokTransientError(
                None, f"timeout calling {path}", kind=TransientKind.TIMEOUT, maybe_delivered=False
            ) from error
        except TimeoutError as error:
            # The request went out and the answer did not come: TikTok may have acted on it.
            raise TikTokTransientError(
                None, f"timeout calling {path}", kind=TransientKind.TIMEOUT, maybe_delivered=True
            ) from error
        except aiohttp.InvalidURL as error:
            raise TikTokPermanentError(None, f"bad TikTok API URL: {error}") from error
        except aiohttp.ClientError as error:
            raise TikTokTransientError(
                None,
                f"connection failed calling {path}: {error.__class__.__name__}",
                kind=TransientKind.CONNECTION,
                # Refused or unresolvable: nothing was sent. Dropped later: it may have been.
                maybe_delivered=not isinstance(error, aiohttp.ClientConnectorError),
            ) from error
        return Answer(envelope_of(status, content, path), status)


def _multipart(fields: dict[str, str], files: dict[str, Upload]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, content_type) in files.items():
        form.add_field(name, content, filename=filename, content_type=content_type)
    return form


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


def envelope_of(status: int, content: bytes, path: str) -> Envelope:
    if status >= 500:
        raise TikTokTransientError(
            None,
            f"TikTok answered HTTP {status} to {path}",
            kind=TransientKind.SERVER_ERROR,
            http_status=status,
            maybe_delivered=True,
        )
    try:
        envelope = Envelope.model_validate_json(content)
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
