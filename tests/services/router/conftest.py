from __future__ import annotations

import pytest

from app.core.config import Settings
from app.services.router.local import LocalRouter, get_local_router
from app.services.router.router import HybridRouter


@pytest.fixture(scope="session")
def local_router() -> LocalRouter:
    # Trained once for the whole session, as in a worker process.
    return get_local_router()


@pytest.fixture(scope="session")
def offline_router(local_router: LocalRouter) -> HybridRouter:
    return HybridRouter(Settings(openai_api_key=None), local=local_router)
