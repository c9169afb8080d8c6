"""What can go wrong talking to TikTok, sorted by what the caller should do about it.

The client never retries for long: a Celery task owns the retry loop, so it needs to know
whether an error is worth retrying (`TikTokTransientError`), how long to wait
(`backoff_delay`, and `long_backoff` for TikTok's "too fast" restriction), whether retrying
may be hopeless after a few tries (`refused_by_restriction`), and whether a failed send might
still have reached the customer (`maybe_delivered`), which is what an at-most-once outbox must
not retry blindly.
"""

from __future__ import annotations

import random
from enum import IntEnum, StrEnum


class TikTokCode(IntEnum):
    """The `code` values tiktok-api.md lists (documented, and seen by production
    integrations); everything else is unknown."""

    OK = 0
    PERMISSION = 40001
    BAD_PARAMETERS = 40002
    NOT_FOUND = 40007
    TOO_FAST = 40064
    RATE_LIMITED = 40100
    INVALID_TOKEN = 40105
    UNSUPPORTED_FILE = 40908
    SYSTEM_ERROR = 51065  # "system error, retry later"


class TransientKind(StrEnum):
    SERVER_ERROR = "server_error"  # HTTP 5xx
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    RATE_LIMITED = "rate_limited"  # code 40100 or HTTP 429
    TOO_FAST = "too_fast"  # code 40064: also the daily limit, or the customer's DM rules
    SYSTEM_ERROR = "system_error"  # code 51065: TikTok's own failure, "retry later"
    INVALID_RESPONSE = "invalid_response"  # a 2xx whose body is not TikTok's envelope
    TOKEN_REFRESH_BUSY = "token_refresh_busy"  # another worker held the refresh lock too long
    # Our own Redis failed before the request left (the shared send rate, the token cache):
    # nothing reached TikTok, so the reply can go again as soon as Redis is back.
    LOCAL_OUTAGE = "local_outage"


class TikTokError(Exception):
    def __init__(
        self,
        code: int | None,
        message: str,
        request_id: str | None = None,
        *,
        http_status: int | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        self.http_status = http_status
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class TikTokTransientError(TikTokError):
    """Worth retrying later with backoff."""

    def __init__(
        self,
        code: int | None,
        message: str,
        request_id: str | None = None,
        *,
        kind: TransientKind,
        http_status: int | None = None,
        maybe_delivered: bool = False,
    ) -> None:
        self.kind = kind
        # True when TikTok may have acted on the request before it failed (a 5xx, a read
        # timeout): resending a message then risks a duplicate in the customer's inbox.
        self.maybe_delivered = maybe_delivered
        super().__init__(code, message, request_id, http_status=http_status)

    @property
    def long_backoff(self) -> bool:
        # 40064 is a messaging restriction (too fast, or the daily limit), not a blip:
        # retrying within seconds only extends it.
        return self.kind is TransientKind.TOO_FAST

    @property
    def refused_by_restriction(self) -> bool:
        # 40064 also reads "blocked by the account's DM rules" (the customer's settings, a
        # closed window), which no retry cures: the caller retries it only a few times.
        return self.kind is TransientKind.TOO_FAST


class TikTokPermanentError(TikTokError):
    """Retrying the same request will fail the same way."""


class TikTokAuthError(TikTokPermanentError):
    """The access token was rejected even after a refresh, or the refresh itself was refused:
    the shop has to re-authorise the app."""


class TikTokRequestInvalid(TikTokPermanentError):
    """Rejected locally before any call: TikTok would refuse it, and sending it would only
    spend a rate-limit slot."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


def error_for_code(
    code: int, message: str, request_id: str | None = None, *, http_status: int = 200
) -> TikTokError:
    """The error for a non-zero `code` in TikTok's envelope (40105 is handled by the client,
    which refreshes first; reaching here with it means the refresh did not help)."""
    if code == TikTokCode.RATE_LIMITED:
        return TikTokTransientError(
            code, message, request_id, kind=TransientKind.RATE_LIMITED, http_status=http_status
        )
    if code == TikTokCode.TOO_FAST:
        return TikTokTransientError(
            code, message, request_id, kind=TransientKind.TOO_FAST, http_status=http_status
        )
    if code == TikTokCode.SYSTEM_ERROR:
        # A short-lived fault on TikTok's side: an ordinary retry with backoff. Answered in
        # TikTok's envelope, so like 40100 (and unlike a 5xx page) it says the call failed.
        return TikTokTransientError(
            code, message, request_id, kind=TransientKind.SYSTEM_ERROR, http_status=http_status
        )
    if code == TikTokCode.INVALID_TOKEN:
        return TikTokAuthError(code, message, request_id, http_status=http_status)
    # Unknown codes are permanent on purpose: retrying something we do not understand
    # could repeat a send, and the task logs the code so a new transient one gets added here.
    return TikTokPermanentError(code, message, request_id, http_status=http_status)


def backoff_delay(
    attempt: int, base: float = 1.0, cap: float = 300.0, *, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry).

    Exponential with full jitter: uniform in [0, min(cap, base * 2**attempt)]. Full jitter
    spreads the retries of many workers that failed together (a TikTok outage), so they do
    not come back as one synchronised burst that trips the rate limit again.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if base <= 0 or cap <= 0:
        raise ValueError("base and cap must be positive")
    # Past ~60 doublings the ceiling is the cap anyway; stopping there avoids float overflow.
    ceiling = cap if attempt >= 64 else min(cap, base * 2.0**attempt)
    uniform = rng.uniform if rng is not None else random.uniform
    return uniform(0.0, ceiling)
