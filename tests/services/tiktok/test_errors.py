from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.services.tiktok.errors import (
    TikTokAuthError,
    TikTokPermanentError,
    TikTokTransientError,
    TransientKind,
    backoff_delay,
    error_for_code,
)


@pytest.mark.parametrize(
    ("code", "kind"),
    [(40100, TransientKind.RATE_LIMITED), (40064, TransientKind.TOO_FAST)],
)
def test_rate_codes_are_transient(code: int, kind: TransientKind) -> None:
    error = error_for_code(code, "slow down", "req-1")
    assert isinstance(error, TikTokTransientError)
    assert error.kind is kind
    assert error.long_backoff is (code == 40064)
    assert (error.code, error.request_id, error.http_status) == (code, "req-1", 200)


@pytest.mark.parametrize("code", [40001, 40002, 40007, 40908, 12345, 50002])
def test_other_codes_are_permanent(code: int) -> None:
    error = error_for_code(code, "no")
    assert isinstance(error, TikTokPermanentError)
    assert not isinstance(error, TikTokTransientError)


def test_system_error_code_is_transient_with_an_ordinary_backoff() -> None:
    error = error_for_code(51065, "system error, retry later", "req-2")
    assert isinstance(error, TikTokTransientError)
    assert error.kind is TransientKind.SYSTEM_ERROR
    assert not error.long_backoff and not error.refused_by_restriction
    assert not error.maybe_delivered


@pytest.mark.parametrize("code", [40064, 40100, 51065])
def test_only_too_fast_may_be_a_lasting_refusal(code: int) -> None:
    error = error_for_code(code, "no")
    assert isinstance(error, TikTokTransientError)
    assert error.refused_by_restriction is (code == 40064)


def test_invalid_token_code_is_an_auth_error() -> None:
    assert isinstance(error_for_code(40105, "expired"), TikTokAuthError)


def test_error_text_names_code_status_and_request() -> None:
    error = error_for_code(40002, "Invalid parameters", "20261126ABC", http_status=200)
    assert str(error) == "Invalid parameters code=40002 http=200 request_id=20261126ABC"


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    rng = random.Random(7)
    ceilings = [
        max(backoff_delay(attempt, 1.0, 30.0, rng=rng) for _ in range(2000)) for attempt in range(8)
    ]
    # Full jitter reaches close to each ceiling: 1, 2, 4, 8, 16, then the cap of 30.
    for attempt, expected in enumerate([1, 2, 4, 8, 16, 30, 30, 30]):
        assert expected * 0.95 <= ceilings[attempt] <= expected


def test_backoff_is_spread_not_fixed() -> None:
    rng = random.Random(1)
    delays = {round(backoff_delay(5, 1.0, 60.0, rng=rng), 6) for _ in range(50)}
    assert len(delays) == 50
    assert min(delays) < 8.0 < max(delays)  # both halves of [0, 32] occur


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    base=st.floats(min_value=0.001, max_value=100.0),
    cap=st.floats(min_value=0.001, max_value=86_400.0),
)
def test_backoff_stays_within_bounds(attempt: int, base: float, cap: float) -> None:
    delay = backoff_delay(attempt, base, cap)
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(attempt, 64))


@pytest.mark.parametrize(("attempt", "base", "cap"), [(-1, 1.0, 10.0), (0, 0.0, 10.0), (0, 1.0, 0)])
def test_backoff_rejects_nonsense(attempt: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        backoff_delay(attempt, base, cap)
