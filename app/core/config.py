"""One place for every setting, read from the environment and `.env`.

Shop policies live here next to the infrastructure URLs so the owner can change
them without touching code. Production refuses to start with a missing or
placeholder secret: a bot that silently runs unsigned or on demo keys is worse
than one that does not start.
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "placeholder", "xxx", "todo", "dev"}
)
# Production secrets must be long and varied enough that guessing is hopeless: a short or
# repetitive value ("1", "a", "aaaa...") is as good as none. Shannon entropy per character
# of the value itself: a random hex or base64 token scores 3.5-5 (rarely under 3), a
# repeated word far less.
MIN_SECRET_ENTROPY_BITS_PER_CHAR = 2.5
MIN_SECRET_CHARS = 16
MIN_SECRET_KEY_CHARS = 32
# TikTok's own media hosts: customer-facing item photos may come from there as well as from
# the shop's configured hosts (MEDIA_ALLOWED_HOSTS).
TIKTOK_MEDIA_HOST_SUFFIXES = (
    "tiktokcdn.com",
    "tiktokcdn-us.com",
    "tiktokcdn-eu.com",
    "ibyteimg.com",
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def normalize_database_url(url: str) -> str:
    """Accept Railway/Heroku style URLs and pin the asyncpg driver."""
    for prefix in (
        "postgres://",
        "postgresql://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("postgresql+asyncpg://"):
        return url
    raise ValueError("DATABASE_URL must be a postgres:// or postgresql:// URL")


def normalize_redis_url(url: str) -> str:
    if url.startswith(("redis://", "rediss://", "unix://")):
        return url
    raise ValueError("REDIS_URL must be a redis://, rediss:// or unix:// URL")


def secret_entropy_bits_per_char(value: str) -> float:
    if not value:
        return 0.0
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def weak_secret_problem(value: str | None, min_chars: int) -> str | None:
    """Why `value` is not fit to guard production, or None when it is."""
    if value is None or value.strip().lower() in PLACEHOLDER_SECRETS:
        return "is missing or a placeholder"
    if value.startswith("philia-dev-"):
        return "is a development placeholder"
    if len(value) < min_chars:
        return f"is too short (at least {min_chars} characters)"
    if secret_entropy_bits_per_char(value) < MIN_SECRET_ENTROPY_BITS_PER_CHAR:
        return "is too repetitive to be a secret (use a random value)"
    return None


def _parse_csv_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip().lower() for part in value.split(",") if part.strip()]
    return value


def _parse_size_chart(value: Any) -> Any:
    if isinstance(value, str):
        return [Decimal(part.strip()) for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=PROJECT_ROOT / ".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON outside development
    data_dir: Path = PROJECT_ROOT / ".data"

    # Infrastructure: None means "start an embedded PostgreSQL / Redis".
    database_url: str | None = None
    redis_url: str | None = None
    database_pool_size: int = 5

    # TikTok Business Messaging
    tiktok_client_key: str = "philia-dev-client"
    tiktok_client_secret: SecretStr = SecretStr("dev")
    tiktok_business_id: str = "philia-dev-business"
    tiktok_access_token: SecretStr = SecretStr("dev")
    tiktok_refresh_token: SecretStr = SecretStr("dev")
    tiktok_api_base: str = "https://business-api.tiktok.com"
    tiktok_api_version: str = "v1.3"
    tiktok_http_timeout_seconds: float = 10.0
    signature_tolerance_seconds: int = 300
    webhook_max_body_bytes: int = 1024 * 1024
    webhook_enqueue_timeout_seconds: float = 1.0
    window_hours: int = 48
    reply_quota: int = 10
    max_text_chars: int = 6000
    send_rate_per_second: int = 10
    allow_links: bool = True
    images_enabled: bool = True
    # Fetch item photos through this mirror instead of their own host (`{mirror}/{host}/{path}`);
    # for machines that cannot reach the shop's CDN. Unset in production.
    media_mirror_url: str | None = None
    idempotency_ttl_hours: int = 96
    max_event_attempts: int = 5
    max_send_attempts: int = 6
    # A send left `sending` this long by a dead worker is looked into by the sweeper.
    send_unknown_grace_seconds: int = 60
    # TikTok echoes every message the API accepted (im_send_msg). A send still unconfirmed
    # this long after its call (no echo, no recorded answer) never reached TikTok and is
    # sent again; None: park it as unknown for a person instead (never resent).
    resend_unconfirmed_after_seconds: float | None = 300.0
    # Nor while an echo of its conversation waits for a worker (it may be this send's), at
    # most this long after the echo arrived: a lost echo task stops holding the resend.
    queued_echo_wait_seconds: int = 3600

    # Celery
    # Tasks a worker process reserves ahead: the webhook's events come in batches of up to
    # `EVENT_BATCH` (app/worker/tasks.py), and a batch fills only from what is reserved.
    worker_prefetch_multiplier: int = 8
    task_time_limit_seconds: int = 120
    broker_visibility_timeout_seconds: int = 300
    outbox_sweep_seconds: float = 15.0
    retry_backoff_base_seconds: float = 1.0
    retry_backoff_cap_seconds: float = 60.0
    # 40064 is TikTok's "too fast" restriction: back off from a larger base.
    too_fast_backoff_seconds: float = 15.0
    # 40064 also means "the customer's DM settings block the shop", which no wait cures: a
    # reply refused with it on this attempt (attempts of any failure count) is parked in the
    # dead letters instead of retried, so it never loops. MAX_SEND_ATTEMPTS still caps it.
    too_fast_max_attempts: int = Field(default=3, ge=1)

    # OpenAI (any compatible server)
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o"
    openai_base_url: str | None = None
    openai_timeout_seconds: float = Field(default=8.0, gt=0, le=8.0)
    openai_max_retries: int = 1
    llm_breaker_failures: int = 3
    llm_breaker_reset_seconds: int = 60

    # Shop policy
    shop_name: str = "Philia Thrifts"
    hold_hours: int = 24
    max_holds_per_customer: int = 3
    checkout_text: str = (
        "To pay, reply with your email and we'll send a secure checkout link, "
        "or pay at checkout on our TikTok Shop."
    )
    offer_policy_text: str = (
        "Our prices are already set low for one-of-a-kind pieces, so we don't take offers, "
        "but bundles of 3+ pieces get free shipping."
    )
    size_chart_pit_to_pit_in: Annotated[list[Decimal], NoDecode] = Field(
        default_factory=lambda: [Decimal(v) for v in ("18", "19.5", "21", "22.5", "24")]
    )
    new_drops_count: int = 5
    human_inactivity_timeout_hours: int = 24

    # What the shop says unasked. Each kind can be switched off; reminders and drop alerts
    # also wait out the quiet hours (shop time, [start, end), equal hours: none) and reach a
    # customer at most once per PROACTIVE_MIN_GAP_HOURS. A hold's reminder goes out this long
    # before it lapses.
    hold_reminders: bool = True
    hold_reminder_lead_hours: float = Field(default=3.0, gt=0)
    sale_confirmations: bool = True
    drop_alerts: bool = True
    shop_timezone: str = "UTC"
    quiet_hours_start: int = Field(default=21, ge=0, le=23)
    quiet_hours_end: int = Field(default=9, ge=0, le=23)
    proactive_min_gap_hours: float = Field(default=24.0, ge=0)
    # Order numbers a customer may ask about that are not theirs (real or made up) within
    # the window; beyond that, no number is looked up and a person takes the conversation.
    order_lookup_max_misses: int = Field(default=5, ge=1)
    order_lookup_window_minutes: int = Field(default=60, ge=1)
    burst_gap_seconds: float = 2.0
    staff_webhook_url: str | None = None

    # Hosts item photos may be fetched from besides TikTok's CDN (comma-separated; a leading
    # dot or none: the host and its subdomains). Empty: only TikTok's. Never a private address.
    media_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Web
    # Adds /_bench/bare (reads the body, answers 200): the benchmark's baseline endpoint.
    bench_endpoints: bool = False
    # Signs and encrypts what the app keeps (the TikTok tokens at rest). Production needs
    # 32+ random characters: `python -c "import secrets; print(secrets.token_urlsafe(48))"`.
    secret_key: SecretStr = SecretStr("dev")
    public_base_url: str = "http://127.0.0.1:8000"
    # The proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated IPs
    # or CIDRs, "*" for any). Empty: none, the peer address is the client. Anyone else's
    # forwarding headers are ignored, so a client cannot choose its own address.
    forwarded_allow_ips: str = ""
    # /metrics wants `Authorization: Bearer <token>` when set; in production without it,
    # /metrics does not exist (404).
    metrics_token: SecretStr | None = None

    # Staff inbox and admin (app.web): server-side sessions in Redis, throttled logins.
    staff_session_idle_hours: float = Field(default=12, gt=0)
    staff_session_max_hours: float = Field(default=7 * 24, gt=0)
    # Lockout policy (SECURITY.md): per email from one address, per address, per email
    # from all addresses together.
    staff_login_max_failures: int = Field(default=5, ge=1)
    staff_login_max_failures_per_ip: int = Field(default=20, ge=1)  # offices share one IP
    staff_login_max_failures_per_account: int = Field(default=50, ge=1)
    staff_login_lockout_minutes: int = Field(default=15, ge=1)

    # Customer simulator (/simulator): public, so off in production unless asked for
    # (None: on in development and test). It plays customers through the TikTok sandbox at
    # SANDBOX_URL (`make run` sets it), else at TIKTOK_API_BASE when that is not TikTok.
    simulator_enabled: bool | None = None
    sandbox_url: str | None = None

    @field_validator("shop_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, like Europe/London)"
            ) from error
        return value

    @field_validator("media_allowed_hosts", mode="before")
    @classmethod
    def _media_hosts(cls, value: Any) -> Any:
        return _parse_csv_list(value)

    @field_validator("size_chart_pit_to_pit_in", mode="before")
    @classmethod
    def _size_chart(cls, value: Any) -> Any:
        return _parse_size_chart(value)

    @field_validator("size_chart_pit_to_pit_in")
    @classmethod
    def _size_chart_shape(cls, value: list[Decimal]) -> list[Decimal]:
        if len(value) != 5 or value != sorted(value):
            raise ValueError("needs 5 ascending pit-to-pit bounds (XS|S|M|L|XL|XXL)")
        return value

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            return normalize_database_url(value.strip())
        return None if value in ("", None) else value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            return normalize_redis_url(value.strip())
        return None if value in ("", None) else value

    @model_validator(mode="after")
    def _queued_echoes_outwait_a_lost_task(self) -> Settings:
        # A lost echo task is back in the queue one visibility timeout and a sweep after it
        # was accepted (app/worker/accepted.py); its record must still hold the resend then.
        floor = 2 * self.broker_visibility_timeout_seconds + self.outbox_sweep_seconds
        if self.queued_echo_wait_seconds <= floor:
            raise ValueError(
                "QUEUED_ECHO_WAIT_SECONDS must exceed twice BROKER_VISIBILITY_TIMEOUT_SECONDS "
                f"plus OUTBOX_SWEEP_SECONDS ({floor:g} s)"
            )
        return self

    @model_validator(mode="after")
    def _refuse_weak_secrets_in_production(self) -> Settings:
        if self.environment is not Environment.PRODUCTION:
            return self
        for name, value in (("DATABASE_URL", self.database_url), ("REDIS_URL", self.redis_url)):
            if not value:
                raise ValueError(f"{name} is missing; set it for production")
        if self.tiktok_client_key.startswith("philia-dev-") or not self.tiktok_client_key:
            raise ValueError("TIKTOK_CLIENT_KEY is missing or a placeholder; set it for production")
        # TIKTOK_BUSINESS_ID and the two tokens may be left unset: connecting the account
        # (the "Connect TikTok" page or `app.cli tiktok connect`) records them. Set, they
        # must be real.
        given = self.model_fields_set
        if "tiktok_business_id" in given and (
            self.tiktok_business_id.startswith("philia-dev-") or not self.tiktok_business_id
        ):
            raise ValueError(
                "TIKTOK_BUSINESS_ID is empty or a placeholder; set the account's open_id "
                "or leave it unset and connect the account"
            )
        hand_tokens = {"tiktok_access_token", "tiktok_refresh_token"} & given
        if len(hand_tokens) == 1:
            raise ValueError(
                "set both TIKTOK_ACCESS_TOKEN and TIKTOK_REFRESH_TOKEN, or neither "
                "(and connect the account)"
            )
        secrets: list[tuple[str, SecretStr | None, int]] = [
            ("TIKTOK_CLIENT_SECRET", self.tiktok_client_secret, MIN_SECRET_CHARS),
            ("SECRET_KEY", self.secret_key, MIN_SECRET_KEY_CHARS),
        ]
        if hand_tokens:
            secrets += [
                ("TIKTOK_ACCESS_TOKEN", self.tiktok_access_token, MIN_SECRET_CHARS),
                ("TIKTOK_REFRESH_TOKEN", self.tiktok_refresh_token, MIN_SECRET_CHARS),
            ]
        if self.metrics_token is not None:
            secrets.append(("METRICS_TOKEN", self.metrics_token, MIN_SECRET_KEY_CHARS))
        for name, secret, min_chars in secrets:
            problem = weak_secret_problem(
                secret.get_secret_value() if secret is not None else None, min_chars
            )
            if problem is not None:
                raise ValueError(f"{name} {problem}; set a strong value for production")
        return self

    @property
    def is_development(self) -> bool:
        return self.environment is Environment.DEVELOPMENT

    @property
    def simulator_on(self) -> bool:
        if self.simulator_enabled is not None:
            return self.simulator_enabled
        return self.environment is not Environment.PRODUCTION

    @property
    def simulator_sandbox_url(self) -> str | None:
        """Where the simulator finds the TikTok sandbox; None when there is none."""
        if self.sandbox_url and self.sandbox_url.strip():
            return self.sandbox_url.strip().rstrip("/")
        host = urlsplit(self.tiktok_api_base).hostname or ""
        if host == "tiktok.com" or host.endswith(".tiktok.com"):
            return None
        return self.tiktok_api_base.rstrip("/")

    @property
    def media_host_suffixes(self) -> tuple[str, ...]:
        """Host suffixes item photos may come from: TikTok's CDN and the shop's own."""
        return (*TIKTOK_MEDIA_HOST_SUFFIXES, *(h.lstrip(".") for h in self.media_allowed_hosts))

    @property
    def tiktok_api_url(self) -> str:
        return f"{self.tiktok_api_base.rstrip('/')}/open_api/{self.tiktok_api_version}"

    @property
    def tiktok_authorize_url(self) -> str:
        """Where the shop owner authorises the app (tiktok-api.md, "Connecting an account")."""
        return f"{self.tiktok_api_base.rstrip('/')}/portal/auth"

    @property
    def tiktok_hand_tokens(self) -> tuple[str, str] | None:
        """Tokens put in the environment by hand, which seed the stored pair on first use.
        None in production when none were given: the shop connects through OAuth."""
        if self.environment is Environment.PRODUCTION and not (
            {"tiktok_access_token", "tiktok_refresh_token"} <= self.model_fields_set
        ):
            return None
        return (
            self.tiktok_access_token.get_secret_value(),
            self.tiktok_refresh_token.get_secret_value(),
        )

    @property
    def tiktok_configured_business_id(self) -> str | None:
        """TIKTOK_BUSINESS_ID as configured; None in production when it was left unset (the
        connected account's open_id is then the business id)."""
        if (
            self.environment is Environment.PRODUCTION
            and "tiktok_business_id" not in self.model_fields_set
        ):
            return None
        return self.tiktok_business_id


def _first_error_line(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]).upper()
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; a bad configuration exits with one line naming it."""
    try:
        return Settings()
    except ValidationError as error:
        raise SystemExit(f"philia: configuration error: {_first_error_line(error)}") from None
