"""Intent router for customer DMs: menu digits and exact patterns, then an LLM (when a key
is configured) or the local classifier. See `HybridRouter`."""

from app.services.router.models import Entities, Intent, RouterContext, RouteResult, RouteSource
from app.services.router.router import HybridRouter, get_router

__all__ = [
    "Entities",
    "HybridRouter",
    "Intent",
    "RouteResult",
    "RouteSource",
    "RouterContext",
    "get_router",
]
