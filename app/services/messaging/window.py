"""TikTok's 48 h reply window and its 10-message quota, kept in Redis.

`TIKTOK_WINDOW:{user_id}` holds the window's end (unix milliseconds) and expires then;
`TIKTOK_QUOTA:{user_id}` counts replies sent in it and expires with it. The window
runs from the customer's message as TikTok stamped it, so a late delivery can find it
already closed. PostgreSQL keeps a mirror on the conversation row, from which the keys
are restored if Redis lost them (it keeps nothing on disk).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

import redis.asyncio as aioredis

from app.core import redis_keys
from app.core.clock import unix_now
from app.core.config import Settings

# Refresh only forwards: an older message delivered late must not shorten the window
# or hand back a quota spent after a newer message.
_REFRESH = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local new_end = tonumber(ARGV[1])
if new_end < current then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1])
redis.call('SET', KEYS[2], '0', 'PXAT', ARGV[1])
return 1
"""

# Reserve one reply slot atomically: -1 window closed, -2 quota spent, else the count.
_RESERVE = """
local window_end = redis.call('GET', KEYS[1])
if not window_end then return -1 end
local used = redis.call('INCR', KEYS[2])
if used == 1 then redis.call('PEXPIREAT', KEYS[2], window_end) end
if used > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[2])
  return -2
end
return used
"""

# Count a message the shop sent without the bot (it was not reserved): no cap, since it
# went out already, and nothing when there is no window to count it in.
_COUNT = """
local window_end = redis.call('GET', KEYS[1])
if not window_end then return -1 end
local used = redis.call('INCR', KEYS[2])
if used == 1 then redis.call('PEXPIREAT', KEYS[2], window_end) end
return used
"""

_RELEASE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class WindowMirror(Protocol):
    """PostgreSQL's copy of a customer's window and quota: a conversation, or the row a
    delivery claimed without loading one."""

    window_expires_at: datetime | None
    replies_in_window: int


class Refusal(StrEnum):
    WINDOW_CLOSED = "window closed: the customer's last message is over 48 h old"
    QUOTA_SPENT = "reply quota for this window is spent"


@dataclass(frozen=True)
class WindowState:
    open: bool
    ends_at: float | None
    replies_used: int
    replies_left: int


class WindowReader(Protocol):
    """Where a customer's window and quota are read from before something is said unasked."""

    async def state(self, user_id: str, conversation: WindowMirror) -> WindowState: ...


class MirroredWindow:
    """The window as PostgreSQL's mirror has it: for the brain run without Redis (the
    `converse` and `route` tools, brain-only tests). The worker reads Redis, which also
    counts replies reserved and not yet mirrored."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def state(self, user_id: str, conversation: WindowMirror) -> WindowState:
        end = conversation.window_expires_at
        if end is None or end.timestamp() <= unix_now():
            return WindowState(False, None, 0, 0)
        used = conversation.replies_in_window
        left = max(0, self.settings.reply_quota - used)
        return WindowState(True, end.timestamp(), used, left)


class WindowService:
    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._refresh = redis.register_script(_REFRESH)
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)
        self._count = redis.register_script(_COUNT)

    def window_end_for(self, customer_timestamp_ms: int) -> float:
        """Unix seconds at which the window opened by this message closes."""
        return customer_timestamp_ms / 1000 + self.settings.window_hours * 3600

    def opened_until(self, customer_timestamp_ms: int) -> datetime | None:
        """The end of the window a customer message opens (to the millisecond, as Redis
        keeps it), or None when that is over already."""
        end = self.window_end_for(customer_timestamp_ms)
        if end <= unix_now():
            return None
        return datetime.fromtimestamp(int(end * 1000) / 1000, UTC)

    async def open(self, user_id: str, end_at: datetime) -> None:
        """Open or extend the window in Redis (forward only). The conversation's mirror
        moves with the statement that records the message (`MessageRepository.
        record_inbound`)."""
        end_ms = round(end_at.timestamp() * 1000)
        await self._refresh(
            keys=[redis_keys.window(user_id), redis_keys.quota(user_id)], args=[end_ms]
        )

    async def _restore_from_mirror(self, user_id: str, conversation: WindowMirror) -> None:
        end = conversation.window_expires_at
        if end is None or end.timestamp() <= unix_now():
            return
        stamp_ms = int(end.timestamp() * 1000)
        await self.redis.set(redis_keys.window(user_id), stamp_ms, pxat=stamp_ms, nx=True)
        await self.redis.set(
            redis_keys.quota(user_id), conversation.replies_in_window, pxat=stamp_ms, nx=True
        )

    async def reserve_reply(self, user_id: str, conversation: WindowMirror) -> Refusal | None:
        """Take one reply slot; the refusal says why nothing may be sent."""
        keys = [redis_keys.window(user_id), redis_keys.quota(user_id)]
        used = int(await self._reserve(keys=keys, args=[self.settings.reply_quota]))
        if used == -1:
            await self._restore_from_mirror(user_id, conversation)
            used = int(await self._reserve(keys=keys, args=[self.settings.reply_quota]))
        if used == -1:
            return Refusal.WINDOW_CLOSED
        if used == -2:
            return Refusal.QUOTA_SPENT
        conversation.replies_in_window = used
        return None

    async def count_sent_elsewhere(self, user_id: str, conversation: WindowMirror) -> None:
        """A message the shop sent outside the bot (staff in the TikTok app, TikTok's
        automations, another tool) spends quota as the bot's replies do. `conversation`
        already counts it: a window Redis lost is restored from that mirror, not counted
        twice; without an open window nothing is counted, and no key is left behind."""
        keys = [redis_keys.window(user_id), redis_keys.quota(user_id)]
        if int(await self._count(keys=keys)) == -1:
            await self._restore_from_mirror(user_id, conversation)

    async def release_reply(self, user_id: str, conversation: WindowMirror | None) -> None:
        """Give a slot back when a reserved reply was not delivered after all (`conversation`:
        its mirror, to set, if one is still to be written)."""
        left = int(await self._release(keys=[redis_keys.quota(user_id)]))
        if conversation is not None:
            conversation.replies_in_window = left

    async def state(self, user_id: str, conversation: WindowMirror) -> WindowState:
        state, _ = await self.state_with(user_id, conversation)
        return state

    async def state_with(
        self, user_id: str, conversation: WindowMirror, *others: str
    ) -> tuple[WindowState, list[bytes | None]]:
        """`state`, and the values of other keys read in the same round trip (None for a
        missing one): a turn needs another flag at the same moment."""
        keys = [redis_keys.window(user_id), redis_keys.quota(user_id), *others]
        end_raw, used_raw, *values = await self.redis.mget(keys)
        if end_raw is None:
            await self._restore_from_mirror(user_id, conversation)
            end_raw, used_raw, *values = await self.redis.mget(keys)
        # The key expires with the window, on Redis's clock; the end it holds is compared as
        # well, so that a caller whose clock runs ahead (a sweep deciding for a later moment,
        # a test) does not see a window that will be closed by then.
        if end_raw is None or int(end_raw) / 1000 <= unix_now():
            return WindowState(False, None, 0, 0), values
        used = int(used_raw or 0)
        ends_at = int(end_raw) / 1000
        left = max(0, self.settings.reply_quota - used)
        return WindowState(True, ends_at, used, left), values
