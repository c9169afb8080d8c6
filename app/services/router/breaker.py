"""A small circuit breaker for the LLM: stop calling a failing service for a while.

Written here rather than taken from a library because the need is tiny (one process-wide
counter, no shared state across workers) and the popular packages are built around
synchronous call wrapping or are no longer maintained. Each worker process has its own
breaker: a dead LLM is detected by each of them after a few failures, which is cheap.

States: closed (calls go through) -> open after `failure_threshold` consecutive failures
(calls are skipped) -> after `reset_seconds`, half-open: one trial call goes through;
its success closes the breaker, its failure opens it again for another period.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int,
        reset_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started_at: float | None = None

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """Whether to call the service now. In half-open state only one trial at a time
        is let through; a trial that never reports back stops blocking after
        `reset_seconds` (a cancelled task must not keep the breaker shut forever)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        now = self._clock()
        if self._trial_started_at is not None and now - self._trial_started_at < self.reset_seconds:
            return False
        self._trial_started_at = now
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_started_at = None

    def record_failure(self) -> None:
        self._failures += 1
        self._trial_started_at = None
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            # A failed half-open trial re-opens for a full period, from now.
            self._opened_at = self._clock()
