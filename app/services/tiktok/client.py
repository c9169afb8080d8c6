"""The bot's only way out to TikTok: send text and images, check capabilities, keep the
access token fresh, and stay under the app's request rate shared by every worker process.

One `TikTokClient` per process. It makes one attempt per call (plus one retry after a token
refresh): retrying with backoff is the caller's job, because only the caller (a Celery task
with an outbox) knows whether a retry could send a message twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from typing import TypeVar

import aiohttp
import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.exceptions import LockError, RedisError

from app.core import redis_keys
from app.core.clock import utc_now
from app.core.config import Settings
from app.core.logging import get_logger
from app.db.session import SessionFactory
from app.services.tiktok.account import AccountIdentity, BusinessAccount, ConfiguredAccount
from app.services.tiktok.api import (
    CONVERSATION_TYPE_SINGLE,
    IMAGE_SEND,
    CapabilitiesData,
    ImagePayload,
    MediaUploadData,
    MessageType,
    RefreshTokenRequest,
    SendData,
    SendMessageRequest,
    TextPayload,
    TokenData,
)
from app.services.tiktok.errors import (
    TikTokAuthError,
    TikTokCode,
    TikTokError,
    TikTokPermanentError,
    TikTokRequestInvalid,
    TikTokTransientError,
    TransientKind,
)
from app.services.tiktok.text import text_length
from app.services.tiktok.tokens import (
    AccessTokenCache,
    CachedAccessToken,
    DbTokenStore,
    TikTokNotConnected,
    TokenPair,
    TokenStore,
    refresh_lock,
)
from app.services.tiktok.transport import TikTokTransport, Upload, data_as

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

SEND_PATH = "/business/message/send/"
MEDIA_UPLOAD_PATH = "/business/message/media/upload/"
CAPABILITIES_PATH = "/business/message/capabilities/get/"
REFRESH_TOKEN_PATH = "/tt_user/oauth2/refresh_token/"

# A rotated pair that could not be written to PostgreSQL waits here until it can: the old
# refresh token is already dead, so this copy is the only way back in without the shop owner.

MAX_IMAGE_BYTES = 3 * 1024 * 1024
_IMAGE_SIGNATURES = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
}


_CLAIM_SLOT = """
-- KEYS[1]: the slots (a sorted set: holder -> when its slot frees, ms on Redis's clock);
-- ARGV[1]: holder id; ARGV[2]: in-flight lease (ms); ARGV[3]: slots in all.
-- Take a free slot; otherwise say how long until the soonest one frees.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
    local lease = tonumber(ARGV[2])
    redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
    -- No holder outlives its lease, so neither does the set once no one uses it.
    redis.call('PEXPIRE', KEYS[1], lease)
    return {1, 0}
end
local soonest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(soonest[2]) - now}
"""

_RELEASE_SLOT = """
-- KEYS[1]: the slots; ARGV[1]: holder id; ARGV[2]: hold after completion (ms).
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    return 0
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local hold = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', now + hold, ARGV[1])
if redis.call('PTTL', KEYS[1]) < hold then
    redis.call('PEXPIRE', KEYS[1], hold)
end
return 1
"""


class SendRateLimiter:
    """TikTok's per-app request rate (N per second), shared by every process through Redis.

    N slots; a call takes a free slot before it goes out and, when its answer is back,
    leaves the slot blocked for one more second. Two calls that use the same slot therefore
    reach TikTok more than a second apart *whenever* TikTok looks at them (anywhere between
    our send and its answer), so no one-second interval at TikTok can hold more than N.

    Why not a rate limiter that stamps each call when it is admitted (the moving window of
    `limits`, which was the first version): it bounds when calls leave, not when they
    arrive. A garbage-collector pause or a slow TLS handshake between admission and the
    wire (120 ms measured in this test suite) delays some calls of one second until the
    next, and TikTok then sees 14-20 calls in one second and answers 40100. A fixed window
    is worse still: N calls at the end of one window and N at the start of the next are 2N
    within milliseconds. The price of the lease is that a slot is busy for the call's
    latency plus a second, so throughput is N / (1 + latency): 8.7 per second at N=10 and
    150 ms. Plenty for a shop's DMs, and cheaper than 40100s and their retries.

    Every business API call takes a slot (sends, uploads, capability checks); the OAuth
    refresh does not, since it runs under the refresh lock and must not wait behind sends.

    Slots are members of one sorted set, scored with when they free on Redis's clock (TIME
    inside the scripts), so the workers' clocks do not matter. A worker that dies mid-call
    frees its slot after `lease_seconds`.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        per_second: int,
        *,
        key: str = redis_keys.TIKTOK_SEND_RATE,
        lease_seconds: float = 120.0,
        max_poll_seconds: float = 0.05,
        max_wait_seconds: float = 60.0,
    ) -> None:
        if per_second < 1:
            raise ValueError("per_second must be >= 1")
        # One sorted set of holders rather than a key per slot: a claim costs the same at
        # 10 slots as at 1,000, and Redis Cluster keeps it in one hash slot.
        self._key = key
        self._capacity = per_second
        self._claim = redis.register_script(_CLAIM_SLOT)
        self._release = redis.register_script(_RELEASE_SLOT)
        self._lease_ms = int(lease_seconds * 1000)
        self._max_poll = max_poll_seconds
        self._max_wait = max_wait_seconds

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a free slot, hold it for the call inside, then for one more second."""
        holder = uuid.uuid4().hex
        try:
            await self._acquire(holder)
        except RedisError as error:
            raise _local_outage(error) from error
        try:
            yield
        finally:
            # Runs for failed calls too: a call that may have reached TikTok counts.
            try:
                await self._release(keys=[self._key], args=[holder, 1000])
            except RedisError as error:
                # The lease then runs out by itself, later than needed but never sooner.
                log.warning("tiktok_rate_slot_release_failed", error=str(error))

    async def _acquire(self, holder: str) -> None:
        deadline = time.monotonic() + self._max_wait
        while True:
            taken, wait_ms = await self._claim(
                keys=[self._key], args=[holder, self._lease_ms, self._capacity]
            )
            if int(taken):
                return
            # Sleep until the soonest blocked slot frees, but poll at least every
            # max_poll: in-flight slots (long lease) free the moment their call returns.
            # The jitter keeps waiting workers from all retrying at the same instant.
            pause = min(max(int(wait_ms), 0) / 1000, self._max_poll)
            pause += random.uniform(0.0, self._max_poll / 5)
            if time.monotonic() + pause > deadline:
                # Give the worker back rather than hold it: the task retries later.
                raise TikTokTransientError(
                    None,
                    "waited too long for the shared send rate",
                    kind=TransientKind.RATE_LIMITED,
                )
            await asyncio.sleep(pause)


class TikTokClient:
    @classmethod
    def with_stored_tokens(
        cls,
        settings: Settings,
        http: aiohttp.ClientSession,
        redis: aioredis.Redis,
        session_factory: SessionFactory,
    ) -> TikTokClient:
        """The production client: the OAuth pair kept (encrypted) in PostgreSQL, the
        business id of the connected account."""
        return cls(
            settings,
            http,
            redis,
            DbTokenStore.from_settings(session_factory, settings),
            account=BusinessAccount(settings, redis, session_factory),
        )

    def __init__(
        self,
        settings: Settings,
        http: aiohttp.ClientSession,
        redis: aioredis.Redis,
        token_store: TokenStore,
        *,
        account: AccountIdentity | None = None,
        rate_limiter: SendRateLimiter | None = None,
        capability_ttl: timedelta = timedelta(hours=6),
        refresh_ahead: timedelta = timedelta(minutes=10),
    ) -> None:
        self._settings = settings
        self._http = http
        self._redis = redis
        self._store = token_store
        self._account = account or ConfiguredAccount(settings, redis)
        self._token_cache = AccessTokenCache(redis)
        self._limiter = rate_limiter or SendRateLimiter(redis, settings.send_rate_per_second)
        self._transport = TikTokTransport(settings, http)
        self._capability_ttl = capability_ttl
        self._refresh_ahead = refresh_ahead

    # -- messages ------------------------------------------------------------------------

    async def send_text(self, conversation_id: str, text: str) -> str:
        """Send one text message; returns TikTok's message id."""
        if not text.strip():
            raise TikTokRequestInvalid("text message is empty")
        if text_length(text) > self._settings.max_text_chars:
            raise TikTokRequestInvalid(
                f"text message longer than {self._settings.max_text_chars} characters; split it"
            )
        business_id, token = await self._business_id_and_token()
        return await self._send(
            SendMessageRequest(
                business_id=business_id,
                recipient=conversation_id,
                message_type=MessageType.TEXT,
                text=TextPayload(body=text),
            ),
            token,
        )

    async def send_image(self, conversation_id: str, media_id: str) -> str:
        """Send an uploaded image (see `upload_image`); returns TikTok's message id."""
        if not media_id:
            raise TikTokRequestInvalid("media id is empty")
        business_id, token = await self._business_id_and_token()
        return await self._send(
            SendMessageRequest(
                business_id=business_id,
                recipient=conversation_id,
                message_type=MessageType.IMAGE,
                image=ImagePayload(media_id=media_id),
            ),
            token,
        )

    async def upload_image(self, content: bytes, filename: str, content_type: str) -> str:
        """Upload a JPG or PNG of at most 3 MB; returns the media id (valid about 30 days)."""
        signatures = _IMAGE_SIGNATURES.get(content_type.lower())
        if signatures is None:
            raise TikTokRequestInvalid(f"TikTok takes JPG or PNG images, not {content_type}")
        if not content.startswith(signatures):
            raise TikTokRequestInvalid(f"file content is not {content_type}")
        if len(content) > MAX_IMAGE_BYTES:
            raise TikTokRequestInvalid(f"image is {len(content)} bytes; TikTok takes up to 3 MB")
        data = await self._call(
            "POST",
            MEDIA_UPLOAD_PATH,
            MediaUploadData,
            data={"business_id": await self.business_id(), "media_type": "IMAGE"},
            files={"file": (filename, content, content_type.lower())},
        )
        return data.media_id

    async def can_send_images(self, conversation_id: str) -> bool:
        """Whether an image may be sent in this conversation. Any doubt (images switched off,
        TikTok unreachable) answers False: the reply then goes out as text, which always works."""
        if not self._settings.images_enabled:
            return False
        key = redis_keys.tiktok_image_capability(conversation_id)
        cached = await self._redis.get(key)
        if cached is not None:
            return cached in (b"1", "1")
        try:
            data = await self._call(
                "GET",
                CAPABILITIES_PATH,
                CapabilitiesData,
                params={
                    "business_id": await self.business_id(),
                    "conversation_id": conversation_id,
                    # Direct messages are one-to-one conversations; a production client
                    # always says so (tiktok-api.md, "Send: details").
                    "conversation_type": CONVERSATION_TYPE_SINGLE,
                    # TikTok's GET endpoints take lists as JSON-encoded strings.
                    "capability_types": json.dumps([IMAGE_SEND]),
                },
            )
        except TikTokError as error:
            # Not cached: the next reply asks again instead of going without images for hours.
            log.warning(
                "tiktok_capabilities_unavailable",
                conversation_id=conversation_id,
                error=str(error),
            )
            return False
        allowed = data.allows(IMAGE_SEND)
        await self._redis.set(key, "1" if allowed else "0", ex=self._capability_ttl)
        return allowed

    async def business_id(self) -> str:
        business_id = await self._account.business_id()
        if business_id is None:
            raise TikTokNotConnected()
        return business_id

    async def _business_id_and_token(self) -> tuple[str, str]:
        """What a send names and carries, read from Redis in one round trip (a send is the
        call of every reply). Nothing was sent if this fails."""
        with _no_message_sent_yet():
            business_id, cached = await self._account.business_id_with(self._token_cache.key)
            token = await self._usable_token(await self._token_cache.parsed(cached))
        if business_id is None:
            raise TikTokNotConnected()
        return business_id, token

    # -- tokens --------------------------------------------------------------------------

    async def access_token(self) -> str:
        """The current access token, refreshed first when it expires within `refresh_ahead`."""
        return await self._usable_token(await self._token_cache.get())

    async def _usable_token(self, cached: CachedAccessToken | None) -> str:
        """`cached` (None: not in Redis), loaded, or refreshed first when it expires within
        `refresh_ahead`."""
        if cached is None:
            cached = await self._token_cache.set(await self._store.load())
        if not self._due_for_refresh(cached.expires_at):
            return cached.access_token
        try:
            return await self.refresh_access_token(rejected=None)
        except TikTokError as error:
            if cached.expires_at is not None and cached.expires_at > utc_now():
                # Still valid for a few minutes: keep sending, the next call tries again.
                log.warning("tiktok_token_refresh_ahead_failed", error=str(error))
                return cached.access_token
            raise

    async def refresh_access_token(self, *, rejected: str | None) -> str:
        """Refresh under a Redis lock so that concurrent workers refresh once.

        `rejected` is the token TikTok just refused (None for a refresh ahead of expiry).
        Whoever gets the lock second finds a different, fresh token in the database and
        uses it instead of refreshing again, which with rotating refresh tokens would
        invalidate the pair the first worker just obtained.
        """
        lock = refresh_lock(self._redis, self._settings)
        if not await lock.acquire():
            raise TikTokTransientError(
                None,
                "another worker is refreshing the token",
                kind=TransientKind.TOKEN_REFRESH_BUSY,
            )
        try:
            current = await self._latest_tokens()
            renewed_by_other = rejected is not None and current.access_token != rejected
            if (rejected is None or renewed_by_other) and not self._due_for_refresh(
                current.access_expires_at
            ):
                await self._token_cache.set(current)
                return current.access_token
            fresh = await self._request_refresh(current.refresh_token)
            await self._persist(fresh)
            await self._token_cache.set(fresh)
            log.info(
                "tiktok_token_refreshed",
                access_expires_at=fresh.access_expires_at,
                refresh_rotated=fresh.refresh_token != current.refresh_token,
                after_rejection=rejected is not None,
            )
            return fresh.access_token
        finally:
            try:
                await lock.release()
            except LockError:
                log.warning("tiktok_token_refresh_lock_expired_while_held")

    def _due_for_refresh(self, expires_at: datetime | None) -> bool:
        # Unknown expiry (a token pasted into the environment): use it until TikTok says no.
        return expires_at is not None and expires_at - utc_now() < self._refresh_ahead

    async def _latest_tokens(self) -> TokenPair:
        raw = await self._redis.get(redis_keys.TIKTOK_UNSAVED_TOKENS)
        if raw is None:
            return await self._store.load()
        unsaved = TokenPair.model_validate_json(raw)
        await self._store.save(unsaved)
        await self._redis.delete(redis_keys.TIKTOK_UNSAVED_TOKENS)
        log.info("tiktok_unsaved_tokens_persisted")
        return unsaved

    async def _persist(self, fresh: TokenPair) -> None:
        try:
            await self._store.save(fresh)
        except Exception:
            # The refresh already happened at TikTok; keep the pair where the next refresh
            # (under the same lock) will find it, and carry on with the new access token.
            await self._redis.set(redis_keys.TIKTOK_UNSAVED_TOKENS, fresh.model_dump_json())
            log.exception("tiktok_rotated_tokens_not_persisted")

    async def _request_refresh(self, refresh_token: str) -> TokenPair:
        body = RefreshTokenRequest(
            client_id=self._settings.tiktok_client_key,
            client_secret=self._settings.tiktok_client_secret.get_secret_value(),
            refresh_token=refresh_token,
        )
        answer = await self._transport.exchange(
            "POST", REFRESH_TOKEN_PATH, token=None, json=body.model_dump(mode="json")
        )
        envelope = answer.envelope
        error = answer.refusal()
        if error is not None:
            if isinstance(error, TikTokPermanentError):
                raise TikTokAuthError(
                    envelope.code,
                    f"token refresh refused: {envelope.message}",
                    envelope.request_id,
                    http_status=answer.status,
                )
            raise error
        data = data_as(TokenData, envelope)
        now = utc_now()
        return TokenPair(
            access_token=data.access_token,
            access_expires_at=now + timedelta(seconds=data.expires_in),
            refresh_token=data.refresh_token,
            refresh_expires_at=now + timedelta(seconds=data.refresh_token_expires_in),
        )

    # -- transport -----------------------------------------------------------------------

    async def _send(self, request: SendMessageRequest, token: str) -> str:
        if not request.recipient:
            raise TikTokRequestInvalid("conversation id is empty")
        data = await self._call(
            "POST",
            SEND_PATH,
            SendData,
            json=request.model_dump(mode="json", exclude_none=True),
            token=token,
        )
        message_id = data.sent_message_id
        log.info(
            "tiktok_message_sent",
            conversation_id=request.recipient,
            message_type=request.message_type.value,
            message_id=message_id,
        )
        return message_id

    async def _call(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        json: object | None = None,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, Upload] | None = None,
        token: str | None = None,
    ) -> M:
        """`token`: the access token, when the caller read it already."""
        if token is None:
            with _no_message_sent_yet():
                token = await self.access_token()
        async with self._limiter.slot():
            answer = await self._transport.exchange(
                method, path, token=token, json=json, params=params, data=data, files=files
            )
        if answer.envelope.code == TikTokCode.INVALID_TOKEN:
            log.info("tiktok_token_rejected", path=path, request_id=answer.envelope.request_id)
            with _no_message_sent_yet():
                token = await self.refresh_access_token(rejected=token)
            async with self._limiter.slot():
                answer = await self._transport.exchange(
                    method, path, token=token, json=json, params=params, data=data, files=files
                )
        envelope = answer.envelope
        error = answer.refusal()
        if error is not None:
            log.warning(
                "tiktok_api_error",
                path=path,
                code=envelope.code,
                http_status=answer.status,
                tiktok_message=envelope.message,
                request_id=envelope.request_id,
                transient=isinstance(error, TikTokTransientError),
            )
            raise error
        return data_as(model, envelope)


@contextmanager
def _no_message_sent_yet() -> Iterator[None]:
    """Token work before a call: whatever fails there (a refresh that timed out after
    reaching TikTok included), the message itself was not sent, so nobody must wait for
    its echo."""
    try:
        yield
    except TikTokTransientError as error:
        error.maybe_delivered = False
        raise
    except RedisError as error:
        raise _local_outage(error) from error


def _local_outage(error: RedisError) -> TikTokTransientError:
    """Redis failed before a call went out: a transient failure that sent nothing, so the
    delivery puts its reply back in line instead of leaving it to look in flight."""
    return TikTokTransientError(
        None, f"Redis failed before the call: {error!r}", kind=TransientKind.LOCAL_OUTAGE
    )
