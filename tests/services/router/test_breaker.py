from __future__ import annotations

import pytest

from app.services.router.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_recovers_after_a_good_trial() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 60, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.now += 59.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the one trial
    assert not breaker.allow()  # nobody else while it runs
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(2, 60, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_failed_trial_reopens_for_a_full_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 30, clock=clock)
    breaker.record_failure()
    clock.now += 31
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 29
    assert not breaker.allow()
    clock.now += 2
    assert breaker.allow()


def test_a_trial_that_never_reports_does_not_block_forever() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10, clock=clock)
    breaker.record_failure()
    clock.now += 11
    assert breaker.allow()  # trial started, then its task was cancelled
    clock.now += 11
    assert breaker.allow()


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 10)
