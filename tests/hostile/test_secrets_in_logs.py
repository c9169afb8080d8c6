"""Secrets never appear in the logs: the tests read what the process actually wrote.

The app is configured with distinctive secret values, driven through the paths that log
(webhooks with good and bad signatures, staff logins, a TikTok token refresh against the
sandbox, a failing LLM call, a failing staff notification, a dead broker, settings errors,
an exception whose message holds the settings), at DEBUG, and the captured stdout/stderr
is searched for every secret in every obvious encoding. The logs must also hold the
events those paths produce, so the test cannot pass by logging nothing.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings, get_settings
from app.core.logging import configure_logging, get_logger
from app.db.models import Conversation
from app.db.session import create_engine, create_session_factory
from app.sandbox.control import SandboxControl
from app.sandbox.server import BackgroundServer, free_port, start_tiktok_sandbox
from app.services.router.llm import LLMRouter, LLMUnavailable
from app.services.staff.notify import StaffNotifier
from app.services.tiktok.client import TikTokClient
from app.services.tiktok.tokens import DbTokenStore
from app.services.tiktok.transport import build_http_client
from tests.factories import Envelope, signed, text_message
from tests.web.conftest import add_staff, login, running, web_settings

if TYPE_CHECKING:
    from tests.conftest import TestServices

SECRETS = {
    "tiktok_client_secret": "tcs-CLIENT-SECRET-2f9c1e7a",
    "tiktok_access_token": "act.ACCESS-TOKEN-4b1d9e",
    "tiktok_refresh_token": "rft.REFRESH-TOKEN-77aa3c",
    "openai_api_key": "sk-OPENAI-KEY-5e0c9d1b",
    "secret_key": "SESSION-SECRET-KEY-0d3f8b",
}
# Characters that must be percent-encoded in a URL, so the encoded form is checked too.
DB_PASSWORD = "db-P@ss:w/rd-91c2"
REDIS_PASSWORD = "redis-PASS-WORD-6a1f"
STAFF_PASSWORD = "staff-PASSWORD-c4a7e1"
WRONG_PASSWORD = "staff-PASSWORD-c4a7e2"  # a near miss is as secret as the password
HOOK_SECRET = "HOOK-SECRET-8d2e5b"  # the path of an incoming-webhook URL is its credential
STAFF_EMAIL = "logs@philia.test"
log = get_logger("tests.hostile.secrets")


def encodings(value: str) -> set[str]:
    return {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        base64.b64encode(value.encode()).decode().rstrip("="),
    }


def leaked(text: str, secrets: set[str]) -> list[str]:
    return sorted(form for value in secrets for form in encodings(value) if form in text)


def log_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def events(lines: list[dict[str, Any]]) -> set[str]:
    return {str(line.get("event")) for line in lines}


def with_password(url: str, password: str) -> tuple[str, str]:
    """The URL with `password` in it, and the password the URL then holds (a server that
    needs one already has it in the URL; trust authentication ignores an extra one)."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or "postgres"
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), password


def echo_app() -> FastAPI:
    """An OpenAI-compatible server that quotes the key it refused (some do, in full) and
    answers 404 to everything else (a staff webhook URL that has been revoked)."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def refuse(request: Request) -> JSONResponse:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        error = {
            "message": f"Incorrect API key provided: {key}.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
        return JSONResponse({"error": error}, status_code=401)

    return app


@pytest.fixture(scope="module")
def echo_server() -> Iterator[BackgroundServer]:
    server = BackgroundServer(echo_app()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secret_sandbox() -> Iterator[BackgroundServer]:
    server = start_tiktok_sandbox(Settings(**SECRETS), webhook_url=None)  # type: ignore[arg-type]
    yield server
    server.stop()


@pytest.fixture
def secret_settings(
    services: TestServices, echo_server: BackgroundServer, secret_sandbox: BackgroundServer
) -> Settings:
    database_url, _ = with_password(services.database_url, DB_PASSWORD)
    return web_settings(
        services,
        **SECRETS,
        database_url=database_url,
        log_level="DEBUG",
        log_json=True,
        tiktok_api_base=secret_sandbox.url,
        openai_base_url=f"{echo_server.url}/v1",
        openai_max_retries=0,
        staff_webhook_url=f"{echo_server.url}/hooks/T0PHILIA/{HOOK_SECRET}",
        webhook_enqueue_timeout_seconds=0.5,
    )


@pytest.fixture
async def sandbox_control(secret_sandbox: BackgroundServer) -> AsyncIterator[SandboxControl]:
    async with SandboxControl(secret_sandbox.url) as control:
        await control.reset()
        yield control


def envelope() -> Envelope:
    return text_message(
        "hi", message_id="msg-logs-1", user_id="user-logs", conversation_id="conv-logs"
    )


async def test_no_secret_reaches_the_logs(
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    secret_settings: Settings,
    sandbox_control: SandboxControl,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
) -> None:
    settings = secret_settings
    capfd.readouterr()
    secrets = {*SECRETS.values(), DB_PASSWORD, STAFF_PASSWORD, WRONG_PASSWORD, HOOK_SECRET}

    await add_staff(committed_db, STAFF_EMAIL, STAFF_PASSWORD)
    async with running(settings) as client:
        body, signature = signed(envelope(), SECRETS["tiktok_client_secret"])
        good = await client.post("/webhook/tiktok", content=body, headers=signature)
        assert good.status_code == 200
        forged = await client.post(
            "/webhook/tiktok", content=body, headers=signed(body, "not-the-secret").headers
        )
        assert forged.status_code == 401
        assert (await login(client, STAFF_EMAIL, WRONG_PASSWORD)).status_code == 401
        assert (await login(client, STAFF_EMAIL, STAFF_PASSWORD)).status_code == 303
        # The database is reached with the password in its URL.
        assert (await client.get("/readyz")).status_code == 200

    # A token refresh through the real client: TikTok refuses the access token, the client
    # refreshes (client secret + refresh token out, a rotated pair back) and resends.
    engine = create_engine(settings)
    tiktok_http = build_http_client(settings)
    http = httpx.AsyncClient()
    redis: aioredis.Redis = aioredis.Redis.from_url(settings.redis_url or "")
    try:
        store = DbTokenStore.from_settings(create_session_factory(engine), settings)
        tiktok = TikTokClient(settings, tiktok_http, redis, store)
        await sandbox_control.expire_access_token()
        await tiktok.send_text("conv-logs", "Still available!")
        rotated = await sandbox_control.tokens()
        secrets |= {rotated.access_token, rotated.refresh_token}
        assert rotated.access_token != SECRETS["tiktok_access_token"]

        with pytest.raises(LLMUnavailable):
            await LLMRouter(settings).route("is PT-0001 still available?")

        conversation = Conversation(id=7, tiktok_conversation_id="conv-logs")
        await StaffNotifier(settings, http)(conversation, "asked for a person")
    finally:
        await tiktok_http.close()
        await http.aclose()
        await redis.aclose()
        await engine.dispose()

    try:
        raise RuntimeError(f"cannot start with {settings!r}")
    except RuntimeError:
        log.exception("startup_failed")
    log.info("settings_dump", settings=settings.model_dump())

    with pytest.raises(ValidationError) as invalid:
        Settings(database_url=f"mysql://philia:{quote(DB_PASSWORD, safe='')}@db/philia")
    log.error("settings_invalid", error=str(invalid.value))
    with monkeypatch.context() as env:
        env.setenv("DATABASE_URL", f"mysql://philia:{quote(DB_PASSWORD, safe='')}@db/philia")
        get_settings.cache_clear()
        with pytest.raises(SystemExit) as exited:
            get_settings()
    get_settings.cache_clear()
    # What the process prints on its way out, as a deploy log would show it.
    print(exited.value.code, file=sys.stderr)

    # The broker is down (its URL has a password): the webhook answers 503 and says so.
    dead_broker = settings.model_copy(
        update={"redis_url": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"}
    )
    secrets.add(REDIS_PASSWORD)
    async with running(dead_broker) as client:
        body, signature = signed(envelope(), SECRETS["tiktok_client_secret"])
        refused = await client.post("/webhook/tiktok", content=body, headers=signature)
        assert refused.status_code == 503

    captured = capfd.readouterr()
    text = captured.out + captured.err
    lines = log_lines(captured.out)
    assert len(lines) > 20, captured.out[-2000:]
    expected = {
        "api_started",
        "webhook_rejected",
        "staff_login_failed",
        "staff_logged_in",
        "tiktok_token_rejected",
        "tiktok_token_refreshed",
        "tiktok_message_sent",
        "llm_router_failed",
        "staff_notified",
        "staff_notify_failed",
        "startup_failed",
        "settings_dump",
        "settings_invalid",
        "enqueue_failed",
        "request_failed",
    }
    assert expected <= events(lines), expected - events(lines)
    assert leaked(text, secrets) == []
    # The secrets were really there to leak: the lines that carried them say so.
    by_event = {line["event"]: line for line in lines}
    assert "Incorrect API key provided: [redacted]" in by_event["llm_router_failed"]["error"]
    assert "[redacted]" in by_event["staff_notify_failed"]["error"]
    assert "[redacted]" in by_event["startup_failed"]["exception"]
    assert "RuntimeError: cannot start with" in by_event["startup_failed"]["exception"]
    assert "[redacted]" in by_event["settings_invalid"]["error"]
    assert "DATABASE_URL" in str(exited.value.code)


# -- the redaction itself ------------------------------------------------------------------


@pytest.fixture
def json_logs(capfd: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    configure_logging(
        Settings(
            log_json=True,
            log_level="INFO",
            openai_api_key="sk-CONFIGURED-KEY-1234",
            database_url="postgresql://philia:CONFIGURED-DB-PW@db.internal/philia",
        )
    )
    capfd.readouterr()
    yield capfd
    configure_logging(get_settings())


def only_line(capfd: pytest.CaptureFixture[str]) -> dict[str, Any]:
    [line] = log_lines(capfd.readouterr().out)
    return line


def test_fields_named_like_secrets_are_redacted_at_any_depth(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    log.info(
        "outgoing_call",
        access_token="FIELD-ACCESS-1",
        Authorization="Bearer FIELD-BEARER-2",
        password="FIELD-PASSWORD-3",
        api_key="FIELD-API-KEY-4",
        request={
            "headers": {"Access-Token": "NESTED-TOKEN-5", "Accept": "application/json"},
            "json": [{"client_secret": "NESTED-SECRET-6", "refresh_token": "NESTED-RT-7"}],
        },
        conversation_id="conv-kept",
    )
    line = only_line(json_logs)
    for key in ("access_token", "Authorization", "password", "api_key"):
        assert line[key] == "[redacted]"
    assert line["request"]["headers"] == {
        "Access-Token": "[redacted]",
        "Accept": "application/json",
    }
    assert line["request"]["json"] == [
        {"client_secret": "[redacted]", "refresh_token": "[redacted]"}
    ]
    assert line["conversation_id"] == "conv-kept"
    assert "FIELD-" not in json.dumps(line) and "NESTED-" not in json.dumps(line)


def test_credentials_inside_text_are_redacted(json_logs: pytest.CaptureFixture[str]) -> None:
    log.warning(
        "callback failed for https://shop.example/cb?access_token=QS-TOKEN-123&state=kept",
        url="postgresql://philia:URL-PASSWORD-9@db.example/philia",
        error="401 from upstream: Authorization: Bearer BEARER-abcdef123456",
        answer=str({"refresh_token": "DICT-REFRESH-1", "expires_in": 86400}),
        body='{"client_secret": "JSON-SECRET-2", "grant_type": "refresh_token"}',
        form="email=ana%40philia.test&password=FORM-PASSWORD-3",
    )
    line = only_line(json_logs)
    rendered = json.dumps(line)
    for value in (
        "QS-TOKEN-123",
        "URL-PASSWORD-9",
        "BEARER-abcdef123456",
        "DICT-REFRESH-1",
        "JSON-SECRET-2",
        "FORM-PASSWORD-3",
    ):
        assert value not in rendered
    # Only the credential goes: what is needed to debug stays.
    assert line["event"].endswith("?access_token=[redacted]&state=kept")
    assert line["url"] == "postgresql://philia:[redacted]@db.example/philia"
    assert "'expires_in': 86400" in line["answer"]
    assert '"grant_type": "refresh_token"' in line["body"]
    assert line["form"].startswith("email=ana%40philia.test&")


def test_configured_secrets_are_scrubbed_from_exceptions(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    try:
        # No key=value shape to recognise: only knowing the configured values catches these.
        raise ValueError("upstream said sk-CONFIGURED-KEY-1234 is wrong for CONFIGURED-DB-PW")
    except ValueError:
        log.exception("call_failed")
    line = only_line(json_logs)
    assert "ValueError: upstream said [redacted] is wrong for [redacted]" in line["exception"]


def test_foreign_loggers_are_redacted_too(json_logs: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("some.library").warning(
        "cannot reach redis://:LIB-REDIS-PW-1@cache:6379/0 with key %s", "sk-CONFIGURED-KEY-1234"
    )
    line = only_line(json_logs)
    assert line["event"] == "cannot reach redis://:[redacted]@cache:6379/0 with key [redacted]"


def test_short_default_values_are_not_scrubbed_from_ordinary_words(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # The development defaults ("dev") are not secrets worth eating "development" for.
    configure_logging(Settings(log_json=True, log_level="INFO"))
    capfd.readouterr()
    try:
        log.info("mode", environment="development", note="a dev machine")
        line = only_line(capfd)
    finally:
        configure_logging(get_settings())
    assert (line["environment"], line["note"]) == ("development", "a dev machine")


def test_the_leak_check_sees_encoded_forms() -> None:
    # The end-to-end test is only as good as this search.
    url = f"postgresql://philia:{quote(DB_PASSWORD, safe='')}@db/philia"
    assert leaked(url, {DB_PASSWORD}) == ["db-P%40ss%3Aw%2Frd-91c2"]
    assert leaked(json.dumps({"k": 'say "hi" ' + HOOK_SECRET}), {HOOK_SECRET}) == [HOOK_SECRET]
    assert leaked("nothing here", {DB_PASSWORD}) == []
