from __future__ import annotations

import secrets
import subprocess
import sys
from decimal import Decimal

import pytest
from pydantic import ValidationError

from app.core.config import (
    MIN_SECRET_KEY_CHARS,
    PROJECT_ROOT,
    Settings,
    weak_secret_problem,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+asyncpg://u:p@h:5432/d"),
        ("postgresql://u:p@h/d", "postgresql+asyncpg://u:p@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
    ],
)
def test_database_urls_are_normalised(raw: str, expected: str) -> None:
    assert Settings(database_url=raw).database_url == expected


@pytest.mark.parametrize("raw", ["redis://h:6379/0", "rediss://u:p@h:6380/1"])
def test_redis_urls_are_accepted(raw: str) -> None:
    assert Settings(redis_url=raw).redis_url == raw


def test_bad_urls_are_refused() -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(database_url="mysql://h/d")
    with pytest.raises(ValidationError, match="REDIS_URL"):
        Settings(redis_url="http://h")


def test_queued_echoes_must_outwait_a_lost_echo_task() -> None:
    """An echo task lost with its worker is back one visibility timeout and a sweep after
    it was accepted: its record must hold the resend at least that long."""
    assert Settings(broker_visibility_timeout_seconds=300).queued_echo_wait_seconds == 3600
    with pytest.raises(ValidationError, match="QUEUED_ECHO_WAIT_SECONDS"):
        Settings(broker_visibility_timeout_seconds=1800, outbox_sweep_seconds=15)
    with pytest.raises(ValidationError, match="QUEUED_ECHO_WAIT_SECONDS"):
        Settings(queued_echo_wait_seconds=30, broker_visibility_timeout_seconds=10)


def test_size_chart_reads_from_a_string() -> None:
    chart = Settings(size_chart_pit_to_pit_in="17,19,20.5,22,23.5").size_chart_pit_to_pit_in
    assert chart == [Decimal("17"), Decimal("19"), Decimal("20.5"), Decimal("22"), Decimal("23.5")]
    with pytest.raises(ValidationError):
        Settings(size_chart_pit_to_pit_in="20,19,21,22,23")


PRODUCTION = {
    "ENVIRONMENT": "production",
    "DATABASE_URL": "postgresql://u:p@db/philia",
    "REDIS_URL": "redis://cache:6379/0",
    "TIKTOK_CLIENT_KEY": "awx123",
    "TIKTOK_CLIENT_SECRET": "Zq8vL2mN4pR7sT1wX5yB",
    "TIKTOK_BUSINESS_ID": "biz-42",
    "TIKTOK_ACCESS_TOKEN": "act.9fK2mQ7xL4vN8pR3sT6wY1zB",
    "TIKTOK_REFRESH_TOKEN": "rft.3hJ8kM2nP5qR9tV4wX7yZ1aC",
    "SECRET_KEY": "k3Jd9QmZ2vLx8PnR4tWy7BcF1gHs6NaE0uYo",
}


def _start_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from app.core.config import get_settings; get_settings()"],
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_starts_with_real_secrets() -> None:
    assert _start_with(PRODUCTION).returncode == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TIKTOK_CLIENT_SECRET", "changeme"), ("SECRET_KEY", ""), ("TIKTOK_ACCESS_TOKEN", "dev")],
)
def test_production_refuses_placeholder_secrets_in_one_line(variable: str, value: str) -> None:
    result = _start_with({**PRODUCTION, variable: value})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0]


def test_production_refuses_a_missing_database_url() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "DATABASE_URL"}
    result = _start_with(env)
    assert result.returncode == 1 and "DATABASE_URL" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("TIKTOK_CLIENT_SECRET", "1", "too short"),
        ("SECRET_KEY", "a", "too short"),
        ("SECRET_KEY", "Zq8vL2mN4pR7sT1wX5yB", "too short"),  # strong, but under 32
        ("SECRET_KEY", "ab" * 24, "too repetitive"),
        ("TIKTOK_REFRESH_TOKEN", "x" * 40, "too repetitive"),
        ("METRICS_TOKEN", "metrics", "too short"),
    ],
)
def test_production_refuses_weak_secrets(variable: str, value: str, problem: str) -> None:
    result = _start_with({**PRODUCTION, variable: value})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and problem in lines[0]


TO_BE_CONNECTED = {
    k: v
    for k, v in PRODUCTION.items()
    if k not in ("TIKTOK_BUSINESS_ID", "TIKTOK_ACCESS_TOKEN", "TIKTOK_REFRESH_TOKEN")
}


def test_production_starts_without_an_account_to_connect_it_later() -> None:
    # A new shop deploys with the app's key and secret only, then connects its account.
    assert _start_with(TO_BE_CONNECTED).returncode == 0
    settings = Settings(**{k.lower(): v for k, v in TO_BE_CONNECTED.items()})
    assert settings.tiktok_hand_tokens is None
    assert settings.tiktok_configured_business_id is None


def test_hand_put_tokens_and_business_id_are_used_when_given() -> None:
    settings = Settings(**{k.lower(): v for k, v in PRODUCTION.items()})
    assert settings.tiktok_hand_tokens == (
        PRODUCTION["TIKTOK_ACCESS_TOKEN"],
        PRODUCTION["TIKTOK_REFRESH_TOKEN"],
    )
    assert settings.tiktok_configured_business_id == "biz-42"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"TIKTOK_ACCESS_TOKEN": "act.9fK2mQ7xL4vN8pR3sT6wY1zB"}, "TIKTOK_REFRESH_TOKEN"),
        ({"TIKTOK_BUSINESS_ID": "philia-dev-business"}, "TIKTOK_BUSINESS_ID"),
        ({"TIKTOK_BUSINESS_ID": ""}, "TIKTOK_BUSINESS_ID"),
    ],
)
def test_production_refuses_half_an_account(extra: dict[str, str], named: str) -> None:
    result = _start_with({**TO_BE_CONNECTED, **extra})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0]


def test_weak_secret_rules_pass_random_tokens() -> None:
    for _ in range(200):
        assert weak_secret_problem(secrets.token_urlsafe(32), MIN_SECRET_KEY_CHARS) is None
        assert weak_secret_problem(secrets.token_hex(16), MIN_SECRET_KEY_CHARS) is None
