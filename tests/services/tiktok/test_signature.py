from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.services.tiktok.signature import (
    InvalidSignature,
    SignatureProblem,
    compute_signature,
    signature_header,
    verify_signature,
)

SECRET = "s3cret"


def test_round_trip() -> None:
    body = b'{"event":"im_receive_msg"}'
    verify_signature(SECRET, signature_header(SECRET, body), body, 300)


def test_known_vector() -> None:
    # HMAC-SHA256("s3cret", "1700000000.{}") computed independently
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, 1700000000, b"{}") == expected


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (None, SignatureProblem.MISSING),
        ("", SignatureProblem.MISSING),
        ("t=1", SignatureProblem.MALFORMED),
        ("s=" + "a" * 64, SignatureProblem.MALFORMED),
        ("t=1,s=zz", SignatureProblem.MALFORMED),
        ("t=1,t=2,s=" + "a" * 64, SignatureProblem.MALFORMED),
        ("t=-5,s=" + "a" * 64, SignatureProblem.MALFORMED),
    ],
)
def test_malformed_headers(header: str | None, problem: SignatureProblem) -> None:
    with pytest.raises(InvalidSignature) as raised:
        verify_signature(SECRET, header, b"{}", 300)
    assert raised.value.problem is problem


def test_stale_and_wrong() -> None:
    body = b"{}"
    old = signature_header(SECRET, body, timestamp=int(time.time()) - 301)
    with pytest.raises(InvalidSignature) as stale:
        verify_signature(SECRET, old, body, 300)
    assert stale.value.problem is SignatureProblem.STALE
    with pytest.raises(InvalidSignature) as wrong:
        verify_signature(SECRET, signature_header("other", body), body, 300)
    assert wrong.value.problem is SignatureProblem.MISMATCH


def test_uppercase_hex_is_accepted() -> None:
    body = b"{}"
    stamp = int(time.time())
    header = f"t={stamp},s={compute_signature(SECRET, stamp, body).upper()}"
    verify_signature(SECRET, header, body, 300)


@given(st.text(max_size=200))
def test_any_header_text_either_verifies_or_raises_invalid_signature(header: str) -> None:
    try:
        verify_signature(SECRET, header, b"{}", 300)
    except InvalidSignature:
        return
    raise AssertionError("a random header verified")
