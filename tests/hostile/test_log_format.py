"""Every line the API and the worker write is a JSON record that went through the scrubber:
their own lines and uvicorn's and Celery's, tracebacks, warnings and stray prints.

Real processes, started as production starts them: uvicorn's command line (which gives its
loggers plain-text handlers of its own before it imports the app) and Celery's worker
command. A secret is configured, and the failing code puts it into its exception, its
warning, its log line and a print. The output is read as the processes wrote it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import PROJECT_ROOT, Settings, get_settings
from app.core.logging import configure_logging, get_logger
from app.worker.celery_app import create_celery
from app.worker.task_names import EVENTS_QUEUE
from tests.conftest import TestServices

SECRET = "sk-test-secret-value-123456"
# The forms a leak would take: plain, and escaped inside a JSON string.
SECRET_FORMS = (SECRET, json.dumps(SECRET)[1:-1])


# The API as `python -m uvicorn app.main:app` runs it (uvicorn's logging set up first, the
# app imported after), plus a route that fails unexpectedly with the secret in its error.
API = """
import sys, warnings
import uvicorn

def failing_api():
    from app.core.config import get_settings
    from app.main import create_app

    app = create_app()
    key = get_settings().openai_api_key.get_secret_value()

    @app.get("/boom")
    async def boom():
        warnings.warn(f"key {key} expires soon", UserWarning, stacklevel=1)
        raise RuntimeError(f"upstream refused key {key}")

    return app

sys.argv[0] = "uvicorn"
uvicorn.main()
"""

# The worker as `celery -A app.worker.celery_app:celery_app worker` runs it, plus a task
# that logs through a Celery task logger, warns, prints, and fails, each with the secret.
WORKER = """
import sys, warnings
from celery.utils.log import get_task_logger
from app.worker.celery_app import celery_app

task_log = get_task_logger("tests.log_format")

@celery_app.task(name="tests.log_format.explode")
def explode(secret):
    task_log.error("refusing key %s", secret)
    warnings.warn(f"key {secret} expires soon", UserWarning, stacklevel=1)
    print(f"stray print of key {secret}")
    raise RuntimeError(f"upstream refused key {secret}")

celery_app.worker_main(sys.argv[1:])
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def process(args: list[str], output: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python <args>` with the test's services and a secret, stdout and stderr into
    `output`; stopped with SIGTERM (as a deployment stops it) and waited for."""
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "LOG_JSON": "true",
        "LOG_LEVEL": "INFO",
        "OPENAI_API_KEY": SECRET,
    }
    with output.open("wb") as sink:
        child = subprocess.Popen(
            [sys.executable, *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield child
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def wait_until(done: Callable[[], bool], child: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while not done():
        if child.poll() is not None:
            raise AssertionError(f"the process exited ({child.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within 30 s")
        time.sleep(0.1)


def records(output: Path) -> list[dict[str, Any]]:
    """Every non-empty line, each of which must be a JSON object, none holding the secret."""
    text = output.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "the process wrote nothing"
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not not_json, "lines that are not JSON records:\n" + "\n".join(not_json[:20])
    assert not [form for form in SECRET_FORMS if form in text], "the secret reached the output"
    return [json.loads(line) for line in lines]


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def find(lines: list[dict[str, Any]], logger: str, event: str) -> dict[str, Any]:
    matches = [r for r in lines if r.get("logger") == logger and event in str(r.get("event"))]
    assert matches, f"no {logger} record containing {event!r} among {len(lines)} lines"
    return matches[0]


def test_the_api_under_uvicorn_writes_only_scrubbed_json(
    services: TestServices, tmp_path: Path
) -> None:
    port = free_port()
    output = tmp_path / "api.log"
    command = ["-c", API, "__main__:failing_api", "--factory", "--host", "127.0.0.1"]
    with process([*command, "--port", str(port)], output) as api:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            return False

        wait_until(up, api, "answer on /healthz")
        response = httpx.get(f"{base}/boom", timeout=5)
        assert response.status_code == 500
        assert SECRET not in response.text
    lines = records(output)
    # uvicorn's own loggers, routed through the one handler, from start to shutdown
    find(lines, "uvicorn.error", "Application startup complete")
    find(lines, "uvicorn.error", "Finished server process")
    crash = find(lines, "uvicorn.error", "Exception in ASGI application")
    assert crash["level"] == "error"
    assert "RuntimeError: upstream refused key [redacted]" in crash["exception"]
    warning = find(lines, "py.warnings", "expires soon")
    assert "key [redacted] expires soon" in warning["event"]


def test_the_celery_worker_writes_only_scrubbed_json(
    services: TestServices, tmp_path: Path
) -> None:
    output = tmp_path / "worker.log"
    command = [
        *("-c", WORKER, "worker", "--loglevel=INFO"),
        *("-Q", EVENTS_QUEUE, "--concurrency", "1", "--hostname", f"log-format-{os.getpid()}@%h"),
        *("--without-gossip", "--without-mingle"),
    ]
    settings = Settings(**{**get_settings().model_dump(), "redis_url": services.redis_url})
    sender = create_celery(settings)
    with contextlib.closing(sender), process(command, output) as worker:
        wait_until(lambda: "ready." in output.read_text(), worker, "worker ready")
        sender.send_task("tests.log_format.explode", args=[SECRET], queue=EVENTS_QUEUE)
        # One of ours whose SQL error quotes its bound parameter: the id is the secret.
        sender.send_task("philia.drain_conversation", args=[SECRET], queue=EVENTS_QUEUE)
        wait_until(
            lambda: output.read_text().count("raised unexpected") >= 2, worker, "both failures"
        )
    lines = records(output)
    find(lines, "app.worker.celery_app", "worker_starting")  # the banner, as one record
    find(lines, "celery.apps.worker", "ready.")
    find(lines, "celery.apps.worker", "Warm shutdown")
    task_line = find(lines, "tests.log_format", "refusing key")
    assert task_line["event"] == "refusing key [redacted]"
    assert (
        find(lines, "celery.redirected", "stray print")["event"] == "stray print of key [redacted]"
    )
    find(lines, "py.warnings", "key [redacted] expires soon")
    crash = find(lines, "celery.app.trace", "tests.log_format.explode")
    assert "RuntimeError: upstream refused key [redacted]" in crash["exception"]
    sql = find(lines, "celery.app.trace", "philia.drain_conversation")
    assert "[parameters: ('[redacted]',)]" in sql["exception"]


# --- configure_logging in this process ---------------------------------------------------


@pytest.fixture
def restored_logging(services: TestServices) -> Iterator[None]:
    yield
    configure_logging(get_settings())


def test_handlers_libraries_added_are_removed_and_their_records_reach_the_root(
    restored_logging: None, capfd: pytest.CaptureFixture[str]
) -> None:
    stray = logging.StreamHandler(sys.stderr)
    for name in ("uvicorn.error", "celery.task", "some.library"):
        logging.getLogger(name).addHandler(stray)
        logging.getLogger(name).propagate = False
    settings = Settings(
        **{**get_settings().model_dump(), "log_json": True, "openai_api_key": SECRET}
    )
    configure_logging(settings)
    capfd.readouterr()
    for name in ("uvicorn.error", "celery.task", "some.library"):
        logging.getLogger(name).error("from %s with %s", name, SECRET)
    out, err = capfd.readouterr()
    assert err == ""
    lines = [json.loads(line) for line in out.splitlines()]
    assert {line["logger"] for line in lines} == {
        "uvicorn.error",
        "celery.task",
        "some.library",
    }
    assert SECRET not in out and "[redacted]" in out


def test_a_record_that_cannot_be_formatted_is_reported_without_its_arguments(
    restored_logging: None, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(**{**get_settings().model_dump(), "log_json": True}))
    capfd.readouterr()
    # logging's default would print a traceback and the arguments, unscrubbed, to stderr.
    logging.getLogger("careless").error("%d items", f"password={SECRET}")
    out, err = capfd.readouterr()
    assert err == ""
    [line] = [json.loads(text) for text in out.splitlines()]
    assert line == {
        "event": "log_record_unwritable",
        "level": "error",
        "logger": "careless",
        "error": "TypeError",
    }


def test_a_logger_left_without_handlers_or_propagation_still_writes_json(
    restored_logging: None, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(**{**get_settings().model_dump(), "log_json": True}))
    # What billiard does to its logger the first time it is asked for one.
    late = logging.getLogger("late.library")
    late.propagate = False
    capfd.readouterr()
    late.error("from a late library")
    out, err = capfd.readouterr()
    assert err == ""
    assert json.loads(out)["event"] == "from a late library"


def test_a_line_under_the_level_is_dropped_before_it_is_scrubbed(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Scrubbing runs regular expressions over every value of a line: a line nobody reads
    (info at LOG_LEVEL=warning, the hot path's usual case) must not pay for it."""
    rendered: list[str] = []

    class Spy:
        def __repr__(self) -> str:  # the scrubber renders unknown values with repr()
            rendered.append("repr")
            return "spy"

    configure_logging(get_settings().model_copy(update={"log_json": True, "log_level": "WARNING"}))
    try:
        logger = logging.getLogger("tests.level")  # a structlog line and a stdlib one
        get_logger("tests.level").info("below_the_level", value=Spy())
        logger.info("below the level too: %r", Spy())
        assert rendered == []
        get_logger("tests.level").warning("at_the_level", value=Spy())
        assert rendered == ["repr"]
        lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line]
        assert [line["event"] for line in lines] == ["at_the_level"]
    finally:
        configure_logging(get_settings())
