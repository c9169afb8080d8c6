"""Guessing staff passwords over HTTP is throttled, and the lock ends when it should.

tests/web/test_auth.py already proves the basics: five wrong passwords lock an email even
for the right password (429, the message, Retry-After) while a colleague still gets in;
an IP guessing at many emails is locked; a parallel burst gets no more than the limit.
Here: a long run of guesses (the lock holds and is not extended by guessing on), the
ways an attacker would try to step around it (spelling the email differently, a forged
X-Forwarded-For), and the lock running out (its Redis key's TTL cut short, no sleeping).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core import redis_keys
from tests.web.conftest import EMAIL, add_staff, login, running, web_settings

if TYPE_CHECKING:
    from tests.conftest import TestServices

WRONG = "not the password"
COLLEAGUE = "bo@philia.test"
LOCK_SECONDS = 15 * 60
# httpx's ASGI transport presents every request as coming from this address.
CLIENT_IP = "127.0.0.1"


def email_key(email: str) -> str:
    return redis_keys.login_fails_for_email(email)


def pair_key(email: str, ip: str = CLIENT_IP) -> str:
    """The lock of one email at one address: the one five wrong passwords close."""
    return redis_keys.login_fails_for_email_at(email, ip)


def ip_key(ip: str = CLIENT_IP) -> str:
    return redis_keys.login_fails_from(ip)


async def end_lock_now(redis: aioredis.Redis, key: str) -> None:
    """What 15 minutes would do: the count's TTL runs out."""
    assert await redis.ttl(key) > 0, f"{key} is not a running lock"
    await redis.pexpire(key, 1)
    while await redis.exists(key):
        pass


def locked(response: httpx.Response) -> bool:
    return (
        response.status_code == 429
        and "Too many failed logins" in response.text
        and int(response.headers["retry-after"]) > 0
    )


@pytest.fixture
async def accounts(committed_db: AsyncEngine) -> None:
    await add_staff(committed_db)
    await add_staff(committed_db, COLLEAGUE, name="Bo")


@pytest.fixture
async def client(
    services: TestServices,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    accounts: None,
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(web_settings(services)) as web:
        yield web


async def test_fifty_guesses_lock_the_email_and_guessing_on_does_not_extend_it(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    statuses = [(await login(client, password=f"{WRONG} {n}")).status_code for n in range(50)]
    assert statuses == [401] * 5 + [429] * 45

    right = await login(client)
    assert locked(right)
    assert "try again in 15 minutes" in right.text
    assert "philia_staff" not in client.cookies
    # Only the five checked guesses counted: 45 more while locked neither added to the
    # count nor restarted the clock.
    assert int(await redis_client.get(pair_key(EMAIL))) == 5
    assert LOCK_SECONDS - 60 < await redis_client.ttl(pair_key(EMAIL)) <= LOCK_SECONDS
    assert LOCK_SECONDS - 60 < int(right.headers["retry-after"]) <= LOCK_SECONDS

    # The same address, another account: the IP has spent 5 of its 20.
    assert int(await redis_client.get(ip_key())) == 5
    assert (await login(client, email=COLLEAGUE)).status_code == 303


async def test_the_email_lock_ends_with_its_window(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    for _ in range(5):
        assert (await login(client, password=WRONG)).status_code == 401
    assert locked(await login(client))

    # Near the end of the window the answer says how little is left.
    await redis_client.expire(pair_key(EMAIL), 42)
    almost = await login(client)
    assert locked(almost)
    assert 0 < int(almost.headers["retry-after"]) <= 42
    assert "try again in 1 minute." in almost.text

    await end_lock_now(redis_client, pair_key(EMAIL))
    assert (await login(client)).status_code == 303
    # A fresh start: a new run of guesses gets its own five before the next lock.
    client.cookies.clear()
    statuses = [(await login(client, password=WRONG)).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


async def test_spelling_the_email_differently_counts_against_the_same_lock(
    client: httpx.AsyncClient,
) -> None:
    spellings = [
        "ANA@philia.test",
        " ana@philia.test",
        "Ana@Philia.Test ",
        "ana@PHILIA.TEST",
        EMAIL,
    ]
    for spelling in spellings:
        assert (await login(client, email=spelling, password=WRONG)).status_code == 401
    for spelling in spellings:
        assert locked(await login(client, email=spelling))


async def test_an_ip_lock_ends_with_its_window_and_ignores_forwarded_headers(
    services: TestServices,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    accounts: None,
) -> None:
    settings = web_settings(services, staff_login_max_failures_per_ip=3)
    async with running(settings) as client:
        for n, guess in enumerate(("a@philia.test", "b@philia.test", "c@philia.test")):
            # A header anyone can send must not make each guess look like a new address.
            client.headers["X-Forwarded-For"] = f"203.0.113.{n}"
            client.headers["X-Real-IP"] = f"198.51.100.{n}"
            assert (await login(client, email=guess)).status_code == 401
        client.headers["X-Forwarded-For"] = "192.0.2.99"
        # Every account is closed to this address now, the right password included.
        assert locked(await login(client))
        assert locked(await login(client, email=COLLEAGUE))

        await end_lock_now(redis_client, ip_key())
        assert (await login(client)).status_code == 303


async def test_a_stranger_guessing_an_email_does_not_lock_its_owner_out(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis, accounts: None
) -> None:
    settings = web_settings(services)
    async with running(settings, client_address="203.0.113.7") as stranger:
        statuses = [(await login(stranger, password=WRONG)).status_code for _ in range(8)]
        assert statuses == [401] * 5 + [429] * 3
    # Knowing the address of a colleague is not enough to keep them out of the shop.
    async with running(settings, client_address="192.0.2.10") as owner:
        assert (await login(owner)).status_code == 303


async def test_guessing_spread_over_many_addresses_locks_the_account_everywhere(
    services: TestServices, committed_db: AsyncEngine, redis_client: aioredis.Redis, accounts: None
) -> None:
    settings = web_settings(services, staff_login_max_failures_per_account=12)
    statuses = []
    for n in range(4):
        async with running(settings, client_address=f"198.51.100.{n}") as guesser:
            statuses += [(await login(guesser, password=WRONG)).status_code for _ in range(3)]
    assert statuses == [401] * 12
    async with running(settings, client_address="192.0.2.10") as owner:
        assert locked(await login(owner))
        # Other accounts are untouched by one account's lock.
        assert (await login(owner, email=COLLEAGUE)).status_code == 303
        await end_lock_now(redis_client, email_key(EMAIL))
        owner.cookies.clear()
        assert (await login(owner)).status_code == 303
