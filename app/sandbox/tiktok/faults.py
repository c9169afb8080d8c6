"""Fault injection: TikTok failing on purpose, so tests can watch the bot cope.

Two sources, asked in this order for every API call. Scripted failures
(`/_sandbox/failures`) are counted rules: fail the next N calls (of some endpoints) with
an HTTP status, a TikTok error code, or a delay. RandomFaults (`/_sandbox/faults/random`)
are drawn per call from rates: TikTok on a bad day, for the chaos tests.

A fault is named by its kind: `http_5xx` (a gateway error page), `code_NNNNN` (TikTok's
envelope with that code) or `delay` (the call then goes on as usual).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from app.sandbox.tiktok.protocol import CODE_TOO_FAST, Endpoint

FailureKind = Annotated[str, Field(pattern=r"^(http_[45]\d\d|code_\d{5}|delay)$")]


class FailureRule(BaseModel):
    kind: FailureKind
    remaining: int = Field(ge=1)
    seconds: float | None = Field(default=None, ge=0, le=120)
    endpoints: list[Endpoint] | None = None  # None: any API call

    @model_validator(mode="after")
    def _delay_has_seconds(self) -> FailureRule:
        if self.kind == "delay" and self.seconds is None:
            raise ValueError("kind 'delay' needs seconds")
        return self


class FailureRequest(BaseModel):
    count: int = Field(default=1, ge=1, le=10_000)
    kind: FailureKind
    seconds: float | None = Field(default=None, ge=0, le=120)
    endpoints: list[Endpoint] | None = None


class FailuresView(BaseModel):
    pending: list[FailureRule]


class RandomFaults(BaseModel):
    """Faults drawn at random for every API call (of `endpoints`, default any), on top of
    the counted rules of `/failures`: TikTok on a bad day, for the chaos tests."""

    http_5xx_rate: float = Field(default=0.0, ge=0, le=1)
    # A burst of 40064 starts with this chance per call and refuses the next calls too.
    too_fast_burst_rate: float = Field(default=0.0, ge=0, le=1)
    too_fast_burst_length: int = Field(default=5, ge=1, le=1000)
    latency_seconds: float = Field(default=0.0, ge=0, le=30)
    endpoints: list[Endpoint] | None = None
    seed: int | None = None


class RandomFaultsView(BaseModel):
    faults: RandomFaults | None
    injected: dict[str, int]  # kind -> how many calls it hit so far


@dataclass
class FaultInjector:
    """The scripted failures still pending, the random faults in force, and what the
    random faults have hit so far."""

    failures: list[FailureRule] = field(default_factory=list)
    random_faults: RandomFaults | None = None
    random_injected: dict[str, int] = field(default_factory=dict)
    too_fast_burst_left: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def reset(self) -> None:
        # The generator is left as it is: only new random faults reseed it.
        self.failures.clear()
        self.random_faults = None
        self.random_injected.clear()
        self.too_fast_burst_left = 0

    async def next_fault(self, endpoint: Endpoint) -> str | None:
        """The fault kind for one call of `endpoint` (None: no fault), once the delay or
        latency it asks for has passed. A scripted failure takes the call; only calls it
        leaves alone get a random draw."""
        rule = self.take_failure(endpoint)
        if rule is not None:
            if rule.kind == "delay":
                await asyncio.sleep(rule.seconds or 0.0)
            return rule.kind
        kind, latency = self.draw_random_fault(endpoint)
        if latency:
            await asyncio.sleep(latency)
        return kind

    # scripted failures

    def take_failure(self, endpoint: Endpoint) -> FailureRule | None:
        for index, rule in enumerate(self.failures):
            if rule.endpoints is None or endpoint in rule.endpoints:
                rule.remaining -= 1
                if rule.remaining == 0:
                    del self.failures[index]
                return rule
        return None

    def add_failures(self, request: FailureRequest) -> None:
        """Raises ValidationError when the request does not make a valid rule (a delay
        without seconds)."""
        rule = FailureRule(
            kind=request.kind,
            remaining=request.count,
            seconds=request.seconds,
            endpoints=request.endpoints,
        )
        self.failures.append(rule)

    def clear_failures(self) -> None:
        self.failures.clear()

    def failures_view(self) -> FailuresView:
        return FailuresView(pending=list(self.failures))

    # random faults

    def draw_random_fault(self, endpoint: Endpoint) -> tuple[str | None, float]:
        """The injected failure kind (or None) and the latency for one call."""
        faults = self.random_faults
        if faults is None or (faults.endpoints is not None and endpoint not in faults.endpoints):
            return None, 0.0
        kind: str | None = None
        if self.too_fast_burst_left > 0:
            self.too_fast_burst_left -= 1
            kind = f"code_{CODE_TOO_FAST}"
        elif self.rng.random() < faults.too_fast_burst_rate:
            self.too_fast_burst_left = faults.too_fast_burst_length - 1
            kind = f"code_{CODE_TOO_FAST}"
        elif self.rng.random() < faults.http_5xx_rate:
            kind = self.rng.choice(("http_500", "http_502", "http_503", "http_504"))
        if kind is not None:
            self.random_injected[kind] = self.random_injected.get(kind, 0) + 1
        return kind, faults.latency_seconds

    def set_random_faults(self, faults: RandomFaults) -> None:
        # Seeded afresh each time, so a seed replays the same faults from here on.
        self.random_faults = faults
        self.random_injected.clear()
        self.too_fast_burst_left = 0
        self.rng = random.Random(faults.seed)

    def clear_random_faults(self) -> None:
        # The counts stay readable after the faults stop.
        self.random_faults = None
        self.too_fast_burst_left = 0

    def random_faults_view(self) -> RandomFaultsView:
        return RandomFaultsView(faults=self.random_faults, injected=dict(self.random_injected))
