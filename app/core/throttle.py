"""Attempts counted in Redis against a limit: staff logins, customers' order-number lookups.

An attempt is counted before the thing it guards is done and given back when it turns
out fine, so a burst of parallel attempts cannot slip past the limit while the first ones
are still being checked. A key's count lives for one window from its first attempt;
reaching the limit restarts that clock, so a lockout always lasts a whole window.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

# KEYS: the counts; ARGV[i]: the limit of KEYS[i]; ARGV[#KEYS + 1]: the window (s).
# Returns 0 when the attempt may go ahead (and counts it), else the seconds until the
# longest lockout among the keys ends. All keys or none are counted, atomically.
_BEGIN_ATTEMPT = """
local n = #KEYS
local wait = 0
for i = 1, n do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= tonumber(ARGV[i]) then
    wait = math.max(wait, redis.call('TTL', KEYS[i]), 1)
  end
end
if wait > 0 then return wait end
for i = 1, n do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 or count >= tonumber(ARGV[i]) then
    redis.call('EXPIRE', KEYS[i], ARGV[n + 1])
  end
end
return 0
"""

_GIVE_BACK = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""


class AttemptCounter:
    """Counts of attempts per key, each against its own limit, over one window."""

    def __init__(self, redis: aioredis.Redis, window_seconds: int) -> None:
        self.redis = redis
        self.window_seconds = window_seconds
        self._begin = redis.register_script(_BEGIN_ATTEMPT)
        self._give_back = redis.register_script(_GIVE_BACK)

    async def begin(self, limits: Mapping[str, int]) -> int:
        """Count one attempt against every key (key -> limit); 0 if it may go ahead, else
        the seconds to wait (and nothing is counted)."""
        keys = list(limits)
        args = [*(limits[key] for key in keys), self.window_seconds]
        return int(await self._begin(keys=keys, args=args))

    async def give_back(self, key: str) -> None:
        """The attempt went fine: it no longer counts against the key."""
        await self._give_back(keys=[key])
