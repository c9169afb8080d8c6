"""The worker's one TikTok client, built on the runtime's loop, Redis and HTTP pool."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.services.tiktok.client import TikTokClient
from app.services.tiktok.tokens import DbTokenStore

if TYPE_CHECKING:
    from app.worker.runtime import WorkerRuntime


def build_tiktok_client(runtime: WorkerRuntime) -> TikTokClient:
    return TikTokClient(
        runtime.settings,
        runtime.http,
        runtime.redis,
        DbTokenStore.from_settings(runtime.session_factory, runtime.settings),
    )
