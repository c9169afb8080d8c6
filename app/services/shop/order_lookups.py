"""How many order numbers a customer may try that are not theirs.

Someone else's order already reads exactly like one that does not exist, but without a
limit a customer could still walk the number space; and a person who keeps asking about
other people's orders needs a person, not more answers. Each lookup by number counts
before the database is asked and is given back when the order is the customer's own, so
only misses add up, and a burst of parallel turns cannot overshoot the limit.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from app.core import redis_keys
from app.core.config import Settings
from app.core.throttle import AttemptCounter
from app.db.models import Customer

HANDOFF_REASON = "asked about many order numbers that are not theirs"


class OrderLookupThrottle:
    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.limit = settings.order_lookup_max_misses
        self._attempts = AttemptCounter(redis, settings.order_lookup_window_minutes * 60)

    async def begin(self, customer: Customer) -> bool:
        """Whether this customer may look an order number up now (the lookup is counted)."""
        key = redis_keys.order_lookup_misses(customer.tiktok_user_id)
        return await self._attempts.begin({key: self.limit}) == 0

    async def was_own(self, customer: Customer) -> None:
        """The number was one of the customer's orders: it does not count."""
        await self._attempts.give_back(redis_keys.order_lookup_misses(customer.tiktok_user_id))
