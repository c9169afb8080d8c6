"""Structured logs: one JSON object per line in production, readable lines in development.

Logs leave the machine; a token in a log line is a leaked token. Every line goes through
two guards before it is rendered:

- by key: a field named like a secret (`access_token`, `Authorization`, `password`...) is
  replaced, at any depth of nested dicts and lists;
- by value: every string in the line (the message, field values, the formatted traceback)
  loses the configured secrets (the SecretStr settings, the passwords inside the database
  and Redis URLs, the staff webhook URL, in their plain, percent-encoded and JSON-escaped
  forms), any `scheme://user:password@` password, `Bearer` credentials, and the value of
  `key=value` / `"key": "value"` pairs whose key names a secret. Exception messages and
  reprs (an SDK error quoting the API key, a settings repr with the database URL, a
  callback URL with `?access_token=`) are where secrets really leak, not tidy fields.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import quote, quote_plus, unquote, urlsplit

import structlog
from pydantic import SecretStr
from structlog.typing import EventDict

from app.core.config import Settings

REDACTED = "[redacted]"

_SECRET_KEYS = (
    "secret",
    "token",
    "password",
    "passwd",
    "authorization",
    "api_key",
    "apikey",
    "signature",
    "cookie",
    "credential",
)
# Shorter configured values are not scrubbed by value: "dev" would also eat "development".
_MIN_SECRET_CHARS = 8
# Settings that are plain strings but are secrets themselves (the URL is the credential).
_SECRET_URL_SETTINGS = ("staff_webhook_url",)

_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/?#@\s]*):([^@/?#\s]+)@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# `access_token=abc`, `'refresh_token': 'abc'`, `\"api_key\": \"abc\"`, `password: abc`.
_KEY_VALUE = re.compile(
    r"(?i)(?<![\w-])([\w-]{0,40}?(?:token|secret|passw(?:or)?d|api[_-]?key|apikey|authorization)"
    r"\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"(?!(?:(?:bearer|basic)\s+)?\[redacted\]|SecretStr\(|\*{3})"
    r"((?:bearer\s+|basic\s+)?[^\s\"'&,;)}\]\\]+)"
)

# structlog's own entries: the exception (rendered and scrubbed later) and the record.
_UNTOUCHED_KEYS = frozenset({"exc_info", "_record", "_from_structlog"})

_known_secrets: tuple[str, ...] = ()


def _variants(value: str) -> Iterable[str]:
    yield value
    yield quote(value, safe="")
    yield quote_plus(value, safe="")
    yield json.dumps(value)[1:-1]


def _url_password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """Every configured secret value worth scrubbing, in every form it may be printed in,
    longest first (so a secret containing another is replaced whole)."""
    values: set[str] = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values.add(value.get_secret_value())
        elif isinstance(value, str):
            if name in _SECRET_URL_SETTINGS:
                values.add(value)
            password = _url_password(value)
            if password is not None:
                values.add(password)
    forms = {
        form
        for value in values
        if len(value.strip()) >= _MIN_SECRET_CHARS
        for form in _variants(value)
    }
    return tuple(sorted(forms, key=len, reverse=True))


def scrub(text: str) -> str:
    """`text` without the configured secrets and anything that looks like a credential."""
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    return _KEY_VALUE.sub(rf"\1{REDACTED}", text)


def _is_secret_key(key: object) -> bool:
    lowered = str(key).lower()
    return any(marker in lowered for marker in _SECRET_KEYS)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {
            key: REDACTED if _is_secret_key(key) else _clean(item) for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item) for item in value]
    # Whatever the renderer would print (repr), cleaned the same way.
    return scrub(repr(value))


def _redact_secrets(_: Any, __: str, event_dict: EventDict) -> EventDict:
    for key in list(event_dict):
        if key in _UNTOUCHED_KEYS:
            continue
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _clean(event_dict[key])
    return event_dict


class _LineHandler(logging.StreamHandler[TextIO]):
    def handleError(self, record: logging.LogRecord) -> None:
        # logging's own report is a plain-text traceback on stderr that prints the record's
        # arguments: unscrubbed, and outside the JSON. Say only that a record was lost.
        error = sys.exc_info()[1]
        line = json.dumps(
            {
                "event": "log_record_unwritable",
                "level": "error",
                "logger": record.name,
                "error": type(error).__name__,
            }
        )
        with contextlib.suppress(Exception):  # the stream itself failed: nowhere to say it
            self.stream.write(line + self.terminator)
            self.flush()


def json_logs(settings: Settings) -> bool:
    return settings.log_json if settings.log_json is not None else not settings.is_development


def _route_all_records_to(handler: logging.Handler) -> None:
    """`handler` on the root logger, and every other logger's records propagating to it.

    Libraries set up loggers of their own that print plain text and do not propagate:
    uvicorn from its dictConfig, before it imports app.main; Celery its task logger."""
    logging.getLogger().handlers[:] = [handler]
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):  # not a PlaceHolder
            logger.handlers[:] = []
            logger.propagate = True
    # A logger a library takes out of propagation later, with no handler (billiard's, the
    # moment it is first asked for), falls back to lastResort: plain text on stderr.
    logging.lastResort = handler
    logging.captureWarnings(True)


def configure_logging(settings: Settings, level: int | str | None = None) -> None:
    """One handler, one format, one scrubber for every record of the process.

    `level` overrides the settings' (a Celery command line's --loglevel)."""
    global _known_secrets
    _known_secrets = secrets_of(settings)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_logs(settings)
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            # First: a line under the level costs a level check, not the scrubbing (regular
            # expressions over every value) and stamping of a line nobody will read.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            # Again after the traceback is text: exception messages carry secrets too.
            _redact_secrets,
            renderer,
        ],
    )
    # sys.__stdout__: Celery pool processes replace sys.stdout with a proxy that logs back
    # into the root logger, which would swallow every line.
    handler = _LineHandler(sys.__stdout__ or sys.stdout)
    handler.setFormatter(formatter)
    _route_all_records_to(handler)
    logging.getLogger().setLevel(level or settings.log_level.upper())
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
