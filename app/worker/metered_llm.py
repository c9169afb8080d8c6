"""The LLM layer of the worker's router, timed and counted into WorkerMetrics."""

from __future__ import annotations

import time

from app.core.counters import WorkerMetrics
from app.services.router import HybridRouter, RouterContext, RouteResult
from app.services.router.llm import LLMRouter, LLMUnavailable


class MeteredLLMRouter(LLMRouter):
    """The router's LLM layer, timed and counted. It wraps the configured instance (same
    settings, same circuit breaker) so that the router itself needs no metrics code; every
    failed call here is a fallback to the local classifier in HybridRouter.route."""

    def __init__(self, inner: LLMRouter, metrics: WorkerMetrics) -> None:
        # No super().__init__(): that would build a second breaker; share the inner one.
        self.settings = inner.settings
        self.breaker = inner.breaker
        self.inner = inner
        self.metrics = metrics

    async def route(self, text: str, context: RouterContext | None = None) -> RouteResult:
        started = time.perf_counter()
        try:
            result = await self.inner.route(text, context)
        except LLMUnavailable:
            await self.metrics.llm_call(False, time.perf_counter() - started)
            raise
        await self.metrics.llm_call(True, time.perf_counter() - started)
        return result


def meter_llm(router: HybridRouter, metrics: WorkerMetrics) -> None:
    """Wrap the router's LLM layer once (the router is a process singleton, inherited over
    fork); a later call, from a rebuilt runtime, points it at that runtime's Redis."""
    if isinstance(router.llm, MeteredLLMRouter):
        router.llm.metrics = metrics
    else:
        router.llm = MeteredLLMRouter(router.llm, metrics)
