"""Which Redis database index a test session or a scenario run is using, on a server they
share: each claims its index with a key in database 0 (which neither uses for data), so
two runs side by side never flush each other's keys."""

from __future__ import annotations

CLAIM_TTL_SECONDS = 6 * 3600


def claim_key(index: int) -> str:
    return f"philia:scratch-redis-db:{index}"
