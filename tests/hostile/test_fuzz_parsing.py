"""Hypothesis fuzzing of the webhook's signature header and envelope parsing.

Whatever arrives, the parsers either accept it or raise their own documented exception:
never a bare ValueError, KeyError, TypeError or UnicodeError that would become a 500.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.services.tiktok.signature import (
    InvalidSignature,
    compute_signature,
    signature_header,
    verify_signature,
)
from app.services.tiktok.webhook import (
    InvalidEnvelope,
    WebhookEnvelope,
    identify,
    parse_content,
    parse_envelope,
)
from tests.factories import text_message, with_content

SECRET = "fuzz-secret"
TOLERANCE = 300
NOW = 1_800_000_000.0

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)

_hex = st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=70)
_digits = st.text(alphabet="0123456789", min_size=0, max_size=14)
# Unicode decimal digits (Arabic-Indic, Devanagari...): int() accepts them.
_unicode_digits = st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=12)


# Header text that looks more or less like `t=<digits>,s=<hex>`, plus arbitrary text.
_header_parts = st.one_of(
    st.builds(lambda t: f"t={t}", st.one_of(_digits, _unicode_digits, st.text(max_size=12))),
    st.builds(lambda s: f"s={s}", st.one_of(_hex, st.text(max_size=70))),
    st.text(max_size=20),
)
headers = st.one_of(
    st.none(),
    st.text(max_size=200),
    st.lists(_header_parts, max_size=5).map(",".join),
    st.lists(_header_parts, max_size=5).map(" , ".join),
)


def _check_verify(header: str | None, body: bytes) -> None:
    try:
        verify_signature(SECRET, header, body, TOLERANCE, now=NOW)
    except InvalidSignature:
        return
    # Accepted: it must genuinely sign the body, within the tolerance.
    assert header is not None
    fields = dict(part.strip().split("=", 1) for part in header.split(","))
    timestamp = int(fields["t"])
    assert abs(NOW - timestamp) <= TOLERANCE
    assert fields["s"].lower() == compute_signature(SECRET, timestamp, body)


@FUZZ
@given(header=headers, body=st.binary(max_size=512))
def test_verify_signature_never_raises_anything_else(header: str | None, body: bytes) -> None:
    _check_verify(header, body)


@FUZZ
@given(
    body=st.binary(max_size=512),
    skew=st.integers(min_value=-2 * TOLERANCE, max_value=2 * TOLERANCE),
    upper=st.booleans(),
    spaces=st.booleans(),
)
def test_genuine_signatures_verify_only_within_tolerance(
    body: bytes, skew: int, upper: bool, spaces: bool
) -> None:
    stamp = int(NOW) + skew
    digest = compute_signature(SECRET, stamp, body)
    header = f"t={stamp},{' ' if spaces else ''}s={digest.upper() if upper else digest}"
    if abs(skew) <= TOLERANCE:
        verify_signature(SECRET, header, body, TOLERANCE, now=NOW)
    else:
        with pytest.raises(InvalidSignature):
            verify_signature(SECRET, header, body, TOLERANCE, now=NOW)


@FUZZ
@given(body=st.binary(max_size=256), tamper=st.binary(min_size=1, max_size=8))
def test_tampered_body_is_rejected(body: bytes, tamper: bytes) -> None:
    header = signature_header(SECRET, body, timestamp=int(NOW))
    with pytest.raises(InvalidSignature):
        verify_signature(SECRET, header, body + tamper, TOLERANCE, now=NOW)


@pytest.mark.parametrize(
    "stamp",
    [
        # str.isdigit() accepts these but int() does not: once a 500 instead of a 401.
        pytest.param("²", id="superscript-two"),
        pytest.param("①", id="circled-one"),
        pytest.param("1²", id="digit-then-superscript"),
        pytest.param("١٢٣", id="arabic-indic-digits"),
    ],
)
def test_non_decimal_digit_timestamps_are_malformed(stamp: str) -> None:
    header = f"t={stamp},s={'a' * 64}"
    with pytest.raises(InvalidSignature):
        verify_signature(SECRET, header, b"{}", TOLERANCE, now=time.time())


# --- envelope ---------------------------------------------------------------------------


def _check_envelope(body: bytes) -> WebhookEnvelope | None:
    try:
        envelope = parse_envelope(body)
    except InvalidEnvelope:
        return None
    assert isinstance(envelope, WebhookEnvelope)
    return envelope


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)

envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "client_key": json_values,
        "event": st.one_of(st.sampled_from(["im_receive_msg", "", "x" * 65]), json_values),
        "create_time": json_values,
        "user_openid": json_values,
        "content": json_values,
    },
)


@FUZZ
@given(body=st.binary(max_size=1024))
def test_parse_envelope_on_arbitrary_bytes(body: bytes) -> None:
    _check_envelope(body)


@FUZZ
@given(value=st.one_of(json_values, envelope_like))
def test_parse_envelope_on_arbitrary_json(value: Any) -> None:
    _check_envelope(orjson.dumps(value))


@FUZZ
@given(
    body=st.one_of(
        st.just(b'{"client_key":"k","event":"e","create_time":1,"content":"x"'),
        st.just(b'{"create_time": 1e400}'),
        st.just(b'{"create_time": 123456789012345678901234567890}'),
        st.just(b"\xef\xbb\xbf{}"),
        st.just(b"\xff\xfe{\x00}\x00"),
    )
)
def test_parse_envelope_on_edge_bodies(body: bytes) -> None:
    _check_envelope(body)


def _envelope(content: str) -> WebhookEnvelope:
    # A genuine envelope: only the content is left to chance.
    return WebhookEnvelope.model_validate(with_content(text_message(), content))


def _check_content(content: str) -> None:
    with contextlib.suppress(InvalidEnvelope):
        parse_content(_envelope(content))


@FUZZ
@given(content=st.text(max_size=512))
def test_parse_content_on_arbitrary_text(content: str) -> None:
    _check_content(content)


message_like = st.fixed_dictionaries(
    {},
    optional={
        "timestamp": json_values,
        "conversation_id": json_values,
        "message_id": json_values,
        "from": json_values,
        "to": json_values,
        "from_user": st.one_of(json_values, st.fixed_dictionaries({"id": json_values})),
        "to_user": json_values,
        "type": json_values,
        "text": st.one_of(json_values, st.fixed_dictionaries({"body": json_values})),
        "image": json_values,
        "share_post": json_values,
        "referenced_message_info": json_values,
    },
)


@FUZZ
@given(value=st.one_of(json_values, message_like))
def test_parse_content_on_arbitrary_json(value: Any) -> None:
    _check_content(orjson.dumps(value).decode("utf-8"))


@FUZZ
@given(value=st.one_of(st.binary(max_size=512), json_values.map(orjson.dumps)))
def test_identifying_a_parked_body_never_raises(value: bytes) -> None:
    event_id, conversation_id = identify(value)
    assert event_id.startswith("sha256:") or conversation_id is not None


def test_a_readable_body_is_identified_by_its_message_and_conversation() -> None:
    body = orjson.dumps(text_message("hi", message_id="m-9", conversation_id="c-9"))
    assert identify(body) == ("m-9", "c-9")
