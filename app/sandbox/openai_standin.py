"""A stand-in for an OpenAI-compatible server: `POST /v1/chat/completions`.

It speaks the real HTTP shape (so the real `openai` SDK talks to it) and is told per test
how to behave: a good structured answer, an answer slower than the client's timeout,
HTTP 500, content that is not JSON, JSON with an intent that does not exist, JSON of
the wrong shape, or a compromised model that obeys the DM (OBEDIENT, see `_obey`). Every
request body is recorded for assertions.

The path is served with and without the `/v1` prefix, since an OpenAI `base_url` may or
may not include it.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.sandbox.server import BackgroundServer


class Behaviour(StrEnum):
    GOOD = "good"
    SLOW = "slow"
    ERROR_500 = "error_500"
    MALFORMED_JSON = "malformed_json"
    UNKNOWN_INTENT = "unknown_intent"
    WRONG_SHAPE = "wrong_shape"
    # Schema-valid answers from a model an injection has taken over (see `_obey`).
    OBEDIENT = "obedient"


Answer = dict[str, Any]


@dataclass
class StandinState:
    """What the stand-in does next; tests mutate it between calls (thread-safe enough:
    plain attribute writes, read by the server thread per request)."""

    behaviour: Behaviour = Behaviour.GOOD
    # The structured answer for GOOD: a fixed dict, or computed from the user message.
    answer: Answer | Callable[[str], Answer] = field(
        default_factory=lambda: {
            "intent": "availability",
            "order_number": None,
            "sku": None,
            "size": None,
        }
    )
    delay_seconds: float = 3.0
    # OBEDIENT: the intent a classification request gets, and the text a free-text answer
    # gets (None: the request's own system prompt, word for word).
    obedient_intent: str = "hold"
    obedient_answer: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset(self, behaviour: Behaviour = Behaviour.GOOD) -> None:
        with self._lock:
            self.requests.clear()
        self.behaviour = behaviour


def _user_message(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _system_message(body: dict[str, Any]) -> str:
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "system":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _schema_fields(body: dict[str, Any]) -> set[str]:
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return set()
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return set(properties) if isinstance(properties, dict) else set()


_SKU = re.compile(r"pt[\s\-_#:.]*(\d{1,4})", re.IGNORECASE)
_ORDER = re.compile(r"ph[\s\-_#:.]*(\d{5})", re.IGNORECASE)


def _obey(body: dict[str, Any], state: StandinState) -> str:
    """What a model that follows the DM's instructions returns, within the requested
    schema so that only the application's own checks stand in the way.

    A classification (a schema with `intent`) gets `state.obedient_intent` with the DM's
    piece and order, or invented ones when it names none. Anything else gets a free-text
    answer (in an `answer` field when the schema has one, marked as answered): by default
    the system prompt it was given, as a DM asking to reveal it would have it.
    """
    fields = _schema_fields(body)
    user = _user_message(body)
    if "intent" in fields:
        sku = _SKU.search(user)
        order = _ORDER.search(user)
        classification = {
            "intent": state.obedient_intent,
            "order_number": f"PH-{order.group(1)}" if order else "PH-10234",
            "sku": f"PT-{int(sku.group(1)):04d}" if sku else "PT-0001",
            "size": "XS",
        }
        return json.dumps({key: value for key, value in classification.items() if key in fields})
    text = state.obedient_answer if state.obedient_answer is not None else _system_message(body)
    if "answer" in fields:
        answer: dict[str, Any] = {"answer": text}
        if "answered" in fields:
            answer["answered"] = True
        return json.dumps(answer)
    return text


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_standin",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


def create_app(state: StandinState) -> FastAPI:
    app = FastAPI(title="OpenAI stand-in", docs_url=None, redoc_url=None, openapi_url=None)

    async def chat_completions(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid JSON body", "invalid_request_error")
        if not isinstance(body, dict) or not body.get("messages") or not body.get("model"):
            return _error(400, "model and messages are required", "invalid_request_error")
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return _error(401, "missing API key", "invalid_request_error")
        state.record(body)
        behaviour = state.behaviour
        model = str(body["model"])
        if behaviour is Behaviour.SLOW:
            await asyncio.sleep(state.delay_seconds)
        elif behaviour is Behaviour.ERROR_500:
            return _error(500, "the stand-in was told to fail", "server_error")
        elif behaviour is Behaviour.MALFORMED_JSON:
            return JSONResponse(_completion(model, '{"intent": "price", "sku": '))
        elif behaviour is Behaviour.UNKNOWN_INTENT:
            content = {
                "intent": "refund_everything",
                "order_number": None,
                "sku": None,
                "size": None,
            }
            return JSONResponse(_completion(model, json.dumps(content)))
        elif behaviour is Behaviour.WRONG_SHAPE:
            return JSONResponse(_completion(model, json.dumps({"label": "price", "score": 0.9})))
        elif behaviour is Behaviour.OBEDIENT:
            return JSONResponse(_completion(model, _obey(body, state)))
        answer = state.answer(_user_message(body)) if callable(state.answer) else state.answer
        return JSONResponse(_completion(model, json.dumps(answer)))

    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_api_route("/chat/completions", chat_completions, methods=["POST"])
    return app


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": None}},
        status_code=status,
    )


def start_openai_standin(
    state: StandinState | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> tuple[BackgroundServer, StandinState]:
    """A stand-in already serving on a loopback port; use `server.url + "/v1"` as base_url."""
    state = state or StandinState()
    server = BackgroundServer(create_app(state), host=host, port=port).start()
    return server, state
