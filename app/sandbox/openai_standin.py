"""A stand-in for an OpenAI-compatible server: `POST /v1/chat/completions`.

It speaks the real HTTP shape (so the real `openai` SDK talks to it) and is told per test
how to behave: a good structured answer, an answer slower than the client's timeout,
HTTP 500, content that is not JSON, JSON with an intent that does not exist, or JSON of
the wrong shape. Every request body is recorded for assertions.

The path is served with and without the `/v1` prefix, since an OpenAI `base_url` may or
may not include it.
"""

from __future__ import annotations

import asyncio
import json
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
