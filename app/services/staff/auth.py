"""Staff authentication: argon2 passwords, server-side sessions in Redis, throttled logins.

Sessions live in Redis rather than in signed cookies so that logging out, disabling an
account or an idle timeout takes effect at once on the server: a stolen cookie stops
working the moment the session is gone. Redis keeps only a SHA-256 of each session
token, so a copy of Redis does not hand out working cookies.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass
from functools import cached_property

import orjson
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import redis_keys
from app.core.clock import unix_now
from app.core.config import Settings
from app.core.logging import get_logger
from app.core.throttle import AttemptCounter
from app.db.models import StaffUser
from app.db.repositories.staff import StaffRepository
from app.db.session import SessionFactory, transaction

log = get_logger(__name__)

MIN_PASSWORD_CHARS = 10
# argon2 hashes anything, but a megabyte "password" is only a way to burn our CPU.
MAX_PASSWORD_CHARS = 1024
_EMAIL = re.compile(r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


class InvalidStaffInput(ValueError):
    """An email or password that cannot be used for an account."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


def validate_email(email: str) -> str:
    normalized = normalize_email(email)
    if len(normalized) > 255 or not _EMAIL.fullmatch(normalized):
        raise InvalidStaffInput(f"'{email}' is not an email address")
    return normalized


def validate_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidStaffInput(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidStaffInput(f"the password may have at most {MAX_PASSWORD_CHARS} characters")
    return password


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class Passwords:
    """argon2id with the library's current recommended parameters."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()

    @cached_property
    def _dummy_hash(self) -> str:
        # Verified against when the email is unknown, so that answer costs the same
        # argon2 work as a wrong password and timing does not reveal who has an account.
        return self.hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def _verify(self, stored_hash: str | None, password: str) -> bool:
        if len(password) > MAX_PASSWORD_CHARS:
            return False
        try:
            self.hasher.verify(stored_hash or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return stored_hash is not None

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        # argon2 takes tens of milliseconds of CPU and releases the GIL: off the event loop.
        return await asyncio.to_thread(self._verify, stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True


@dataclass(frozen=True)
class StaffSession:
    staff_id: int
    csrf_token: str
    created_at: float


class SessionStore:
    """Random tokens mapped to a staff id and a per-session CSRF token.

    The idle timeout slides with every request; a session also ends after an absolute
    lifetime, whatever its activity, so a token cannot be kept alive forever.
    """

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.idle_seconds = max(1, int(settings.staff_session_idle_hours * 3600))
        self.max_seconds = max(1, int(settings.staff_session_max_hours * 3600))

    async def create(self, staff_id: int) -> tuple[str, StaffSession]:
        token = secrets.token_urlsafe(32)
        session = StaffSession(staff_id, secrets.token_urlsafe(32), unix_now())
        key = redis_keys.staff_session(token)
        value = orjson.dumps(
            {"staff_id": staff_id, "csrf": session.csrf_token, "created_at": session.created_at}
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, value, ex=min(self.idle_seconds, self.max_seconds))
            pipe.sadd(redis_keys.staff_sessions_of(staff_id), key)
            pipe.expire(redis_keys.staff_sessions_of(staff_id), self.max_seconds)
            await pipe.execute()
        return token, session

    async def get(self, token: str | None) -> StaffSession | None:
        if token is None or not _TOKEN.fullmatch(token):
            return None
        key = redis_keys.staff_session(token)
        raw = await self.redis.getex(key, ex=self.idle_seconds)
        if raw is None:
            return None
        data = orjson.loads(raw)
        session = StaffSession(int(data["staff_id"]), str(data["csrf"]), float(data["created_at"]))
        if unix_now() - session.created_at > self.max_seconds:
            await self.redis.delete(key)
            return None
        return session

    async def delete(self, token: str | None) -> None:
        if token is not None and _TOKEN.fullmatch(token):
            await self.redis.delete(redis_keys.staff_session(token))

    async def revoke_all(self, staff_id: int) -> int:
        """End every session of one account (disabled, password changed)."""
        keys = [
            key.decode() if isinstance(key, bytes) else str(key)
            for key in await self.redis.smembers(redis_keys.staff_sessions_of(staff_id))  # type: ignore[misc]
        ]
        ended = int(await self.redis.delete(*keys)) if keys else 0
        await self.redis.delete(redis_keys.staff_sessions_of(staff_id))
        return ended


class LoginThrottle:
    """Failed logins counted at three scopes, each locking until its count expires (even a
    correct password is refused while a scope is locked):

    - one email from one address (STAFF_LOGIN_MAX_FAILURES, 5): a guesser locks out only
      itself, so knowing a colleague's email is not enough to lock them out of the shop;
    - one address, any emails (STAFF_LOGIN_MAX_FAILURES_PER_IP, 20): an address sweeping
      accounts;
    - one email from any addresses (STAFF_LOGIN_MAX_FAILURES_PER_ACCOUNT, 50): guessing
      spread over many addresses. Reaching it takes ten or more addresses, which is the
      price of locking the account at all; below it each address has its own five.

    The address is the connecting peer, or the client a trusted proxy names
    (FORWARDED_ALLOW_IPS): never a header the client chose itself.
    """

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.max_per_email_and_ip = settings.staff_login_max_failures
        self.max_per_ip = settings.staff_login_max_failures_per_ip
        self.max_per_account = settings.staff_login_max_failures_per_account
        self.lockout_seconds = settings.staff_login_lockout_minutes * 60
        # Counted before the password is checked, given back if it succeeds.
        self._attempts = AttemptCounter(redis, self.lockout_seconds)

    async def begin(self, email: str, ip: str) -> int:
        """Count an attempt as failed until it succeeds; the seconds to wait if locked."""
        return await self._attempts.begin(
            {
                redis_keys.login_fails_for_email_at(email, ip): self.max_per_email_and_ip,
                redis_keys.login_fails_from(ip): self.max_per_ip,
                redis_keys.login_fails_for_email(email): self.max_per_account,
            }
        )

    async def succeeded(self, email: str, ip: str) -> None:
        # This person at this address starts afresh; the wider counts only get this attempt
        # back, so one good login does not wipe the count of someone guessing elsewhere.
        await self.redis.delete(redis_keys.login_fails_for_email_at(email, ip))
        await self._attempts.give_back(redis_keys.login_fails_from(ip))
        await self._attempts.give_back(redis_keys.login_fails_for_email(email))


@dataclass(frozen=True)
class LoggedIn:
    staff: StaffUser
    token: str
    session: StaffSession


@dataclass(frozen=True)
class LockedOut:
    retry_after: int

    @property
    def minutes(self) -> int:
        return max(1, -(-self.retry_after // 60))


@dataclass(frozen=True)
class BadCredentials:
    pass


LoginResult = LoggedIn | LockedOut | BadCredentials


@dataclass(frozen=True)
class SignedIn:
    """The staff member behind a request, with the session's CSRF token."""

    staff_id: int
    email: str
    display_name: str
    csrf_token: str
    token: str


class StaffAuth:
    def __init__(
        self,
        session_factory: SessionFactory,
        redis: aioredis.Redis,
        settings: Settings,
        passwords: Passwords,
    ) -> None:
        self.session_factory = session_factory
        self.passwords = passwords
        self.sessions = SessionStore(redis, settings)
        self.throttle = LoginThrottle(redis, settings)

    async def login(self, email: str, password: str, ip: str) -> LoginResult:
        email = normalize_email(email)
        wait = await self.throttle.begin(email, ip)
        if wait:
            log.info("staff_login_locked", ip=ip, retry_after=wait)
            return LockedOut(wait)
        async with self.session_factory() as session:
            staff = await StaffRepository(session).get_by_email(email)
        # Unknown emails still pay for one argon2 verification (against a dummy hash),
        # and it runs with no database connection held.
        ok = await self.passwords.verify(staff.password_hash if staff else None, password)
        if staff is None or not ok or not staff.is_active:
            log.info("staff_login_failed", ip=ip)
            return BadCredentials()
        async with transaction(self.session_factory) as session:
            repository = StaffRepository(session)
            if self.passwords.needs_rehash(staff.password_hash):
                # Parameters were raised since this hash was made: upgrade it while we
                # hold the plain password, the only moment we can.
                await repository.set_password_hash(staff.id, self.passwords.hash(password))
                log.info("staff_password_rehashed", staff_id=staff.id)
            await repository.record_login(staff.id)
        await self.throttle.succeeded(email, ip)
        token, staff_session = await self.sessions.create(staff.id)
        log.info("staff_logged_in", staff_id=staff.id, ip=ip)
        return LoggedIn(staff, token, staff_session)

    async def signed_in(self, token: str | None) -> SignedIn | None:
        """The active staff member a session cookie belongs to, or None."""
        staff_session = await self.sessions.get(token)
        if staff_session is None or token is None:
            return None
        # Read the account on every request so that disabling it locks the person out
        # at once, not when their session happens to expire.
        async with self.session_factory() as session:
            staff = await StaffRepository(session).get(staff_session.staff_id)
        if staff is None or not staff.is_active:
            await self.sessions.delete(token)
            return None
        return SignedIn(
            staff_id=staff.id,
            email=staff.email,
            display_name=staff.display_name,
            csrf_token=staff_session.csrf_token,
            token=token,
        )

    async def logout(self, token: str | None) -> None:
        await self.sessions.delete(token)


async def create_account(
    session: AsyncSession, passwords: Passwords, email: str, name: str, password: str
) -> StaffUser:
    email = validate_email(email)
    name = name.strip()
    if not name or len(name) > 120:
        raise InvalidStaffInput("the name must have 1 to 120 characters")
    repository = StaffRepository(session)
    if await repository.get_by_email(email) is not None:
        raise InvalidStaffInput(f"{email} already has an account")
    return await repository.create(email, name, passwords.hash(validate_new_password(password)))


async def find_account(session: AsyncSession, email: str) -> StaffUser:
    staff = await StaffRepository(session).get_by_email(normalize_email(email))
    if staff is None:
        raise InvalidStaffInput(f"no account for {normalize_email(email)}")
    return staff
