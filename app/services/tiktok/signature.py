"""TikTok webhook signatures: `t=<unix seconds>,s=<hex HMAC-SHA256 of "t.<raw body>">`."""

from __future__ import annotations

import hashlib
import hmac
import time
from enum import StrEnum

SIGNATURE_HEADERS = ("TikTok-Signature", "X-TikTok-Signature")


class SignatureProblem(StrEnum):
    MISSING = "missing"
    MALFORMED = "malformed"
    STALE = "stale"
    MISMATCH = "mismatch"


class InvalidSignature(Exception):
    def __init__(self, problem: SignatureProblem) -> None:
        self.problem = problem
        super().__init__(f"webhook signature {problem.value}")


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value TikTok would send: used by the stand-in and the tests."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},s={compute_signature(secret, stamp, body)}"


def parse_signature_header(header: str) -> tuple[int, str]:
    fields: dict[str, str] = {}
    for part in header.split(","):
        key, separator, value = part.strip().partition("=")
        if not separator or not key or key in fields:
            raise InvalidSignature(SignatureProblem.MALFORMED)
        fields[key] = value
    timestamp, signature = fields.get("t", ""), fields.get("s", "")
    # isascii(): str.isdigit() also accepts "²" or "①", which int() then refuses.
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise InvalidSignature(SignatureProblem.MALFORMED)
    if len(signature) != 64 or any(c not in "0123456789abcdefABCDEF" for c in signature):
        raise InvalidSignature(SignatureProblem.MALFORMED)
    return int(timestamp), signature.lower()


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    tolerance_seconds: int,
    now: float | None = None,
) -> None:
    """Raise InvalidSignature unless `header` signs `body` within the tolerance."""
    if not header:
        raise InvalidSignature(SignatureProblem.MISSING)
    timestamp, signature = parse_signature_header(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise InvalidSignature(SignatureProblem.STALE)
    expected = compute_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected, signature):
        raise InvalidSignature(SignatureProblem.MISMATCH)
