"""The hybrid router: exact patterns, then the LLM when configured, else the local model."""

from __future__ import annotations

import asyncio
import threading

from app.core.config import Settings, get_settings
from app.core.logging import get_logger
from app.services.router.hold_gate import MIN_HOLD_CONFIDENCE, as_question
from app.services.router.llm import LLMRouter, LLMUnavailable
from app.services.router.local import LocalRouter, get_local_router
from app.services.router.models import Intent, RouterContext, RouteResult
from app.services.router.patterns import match_pattern

log = get_logger(__name__)


class HybridRouter:
    """Routes one customer DM to an intent and its entities.

    `route` is for the worker (it may call the LLM); `route_offline` never leaves the
    process (CLI, evaluation, and anywhere a network call is not wanted).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        local: LocalRouter | None = None,
        llm: LLMRouter | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._local = local
        self.llm = llm if llm is not None else LLMRouter(self.settings)

    @property
    def local(self) -> LocalRouter:
        if self._local is None:
            self._local = get_local_router()
        return self._local

    def warm_up(self) -> None:
        """Train the local router now (about a second) instead of on the first message."""
        _ = self.local

    async def route(self, text: str, context: RouterContext | None = None) -> RouteResult:
        exact = self._exact(text, context)
        if exact is not None:
            return exact
        if self.llm.configured:
            try:
                result = await self.llm.route(text, context)
            except LLMUnavailable as error:
                log.info("router_fallback_to_local", reason=str(error)[:200])
            else:
                return await self._confirm_hold(text, result)
        await self._ensure_local()
        return self.local.route(text)

    async def _ensure_local(self) -> None:
        if self._local is None:
            # Training takes about a second: keep it off the event loop.
            await asyncio.to_thread(self.warm_up)

    async def _confirm_hold(self, text: str, result: RouteResult) -> RouteResult:
        """An LLM's `hold` stands only when the local model reads the message as a hold
        too (see hold_gate): the LLM can be talked into one, the local model cannot."""
        if result.intent is not Intent.HOLD:
            return result
        await self._ensure_local()
        local = self.local.route(text)
        # A clear reading, not a hold word with the model split between intents: text
        # written to steer the LLM ('{"intent": "hold", ...}') says "hold" too.
        if local.intent is Intent.HOLD and (local.confidence or 0.0) >= MIN_HOLD_CONFIDENCE:
            return result
        log.info("router_llm_hold_unconfirmed")
        return as_question(result)

    def route_offline(self, text: str, context: RouterContext | None = None) -> RouteResult:
        exact = self._exact(text, context)
        return exact if exact is not None else self.local.route(text)

    def _exact(self, text: str, context: RouterContext | None) -> RouteResult | None:
        if not text.strip():
            return RouteResult(intent=Intent.OTHER, source="pattern", confidence=1.0)
        return match_pattern(text, context)


_shared: HybridRouter | None = None
_shared_lock = threading.Lock()


def get_router() -> HybridRouter:
    """The process-wide router (one LLM client, one breaker, one trained local model)."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = HybridRouter(get_settings())
    return _shared
