"""JSON nested hundreds of levels deep: refused by the webhook before it is queued, and
parked once by the worker if it reaches the queue some other way, never a RecursionError.

A signed event nested 600 levels deep used to be acknowledged, then crash the worker on
every attempt (the recursive walks after the parse overflow the stack) until it was
parked. Brackets inside JSON strings are text, not nesting: a customer may well send a
thousand `[`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import DeadLetter
from app.services.tiktok.webhook import (
    MAX_JSON_DEPTH,
    InvalidEnvelope,
    TooDeeplyNested,
    WebhookEnvelope,
    nested_deeper_than,
    parse_content,
    parse_envelope,
)
from app.worker import runtime as runtime_module
from tests.api.test_webhook import SECRET, queued, running, settings_for
from tests.conftest import TestServices
from tests.factories import Envelope, content_of, encode, signed, text_message, with_content


def genuine() -> Envelope:
    return text_message(user_id="user-deep", conversation_id="conv-deep")


def nested(depth: int) -> bytes:
    """A JSON value `depth` levels deep (orjson refuses to write one this deep)."""
    innermost = b"[1]" if depth % 2 else b"1"
    return b'[{"a":' * (depth // 2) + innermost + b"}]" * (depth // 2)


def body_with(extra: bytes, content: str | None = None) -> bytes:
    """A genuine envelope with one more field, `extra`, which nests one level below it."""
    body = genuine() if content is None else with_content(genuine(), content)
    return encode(body)[:-1] + b',"extra":' + extra + b"}"


def content_with(extra: bytes) -> str:
    fields = orjson.dumps(content_of(genuine()))
    return (fields[:-1] + b',"extra":' + extra + b"}").decode()


def true_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(true_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(true_depth, value.values()), default=0)
    return 0


def test_the_helpers_nest_as_they_claim() -> None:
    for depth in (0, 1, 2, 31, 32, 33, 200):
        assert true_depth(orjson.loads(nested(depth))) == depth
    assert true_depth(orjson.loads(body_with(nested(5)))) == 6
    assert true_depth(orjson.loads(content_with(nested(5)))) == 6


# --- the webhook ---------------------------------------------------------------------------


@pytest.fixture
async def bot(
    services: TestServices, redis_client: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(settings_for(services)) as client:
        yield client


async def post(bot: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await bot.post("/webhook/tiktok", content=body, headers=signed(body, SECRET).headers)


async def test_a_body_nested_600_deep_is_refused_before_the_queue(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    body = body_with(b"[" * 600 + b"]" * 600)
    response = await post(bot, body)
    assert response.status_code == 400
    assert response.json()["detail"] == f"body is nested deeper than {MAX_JSON_DEPTH} levels"
    assert await queued(redis_client) == 0


async def test_nesting_inside_content_counts_too(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    # The envelope is two levels deep: all the depth is inside the `content` string.
    for extra in (b"[" * 600 + b"]" * 600, nested(MAX_JSON_DEPTH)):
        body = body_with(b"1", content=content_with(extra))
        assert true_depth(orjson.loads(body)) == 1
        response = await post(bot, body)
        assert response.status_code == 400
        assert response.json()["detail"] == f"content is nested deeper than {MAX_JSON_DEPTH} levels"
    assert await queued(redis_client) == 0


async def test_the_limit_is_exact(bot: httpx.AsyncClient, redis_client: aioredis.Redis) -> None:
    at_limit = body_with(nested(MAX_JSON_DEPTH - 1))
    assert true_depth(orjson.loads(at_limit)) == MAX_JSON_DEPTH
    assert (await post(bot, at_limit)).status_code == 200
    over = body_with(nested(MAX_JSON_DEPTH))
    assert (await post(bot, over)).status_code == 400
    assert await queued(redis_client) == 1


async def test_a_real_event_with_some_nesting_is_queued(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    body = encode(genuine())
    assert (await post(bot, body)).status_code == 200
    # TikTok adding a nested field or two must not start refusing events.
    deeper = body_with(b'{"a":{"b":[{"c":[1,2]}]}}', content=content_with(b'{"d":[[{"e":1}]]}'))
    assert (await post(bot, deeper)).status_code == 200
    assert await queued(redis_client) == 2


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 1000, id="thousand-open-brackets"),
        pytest.param("{" * 500 + "]" * 500, id="braces-and-closers"),
        pytest.param('\\"[' * 300 + "\\", id="escaped-quotes-and-backslashes"),
        pytest.param('"' + "[" * 400 + '"', id="quoted-brackets"),
    ],
)
async def test_brackets_in_a_message_are_text_not_nesting(
    bot: httpx.AsyncClient, redis_client: aioredis.Redis, text: str
) -> None:
    body = encode(text_message(text))
    assert nested_deeper_than(body) is False
    response = await post(bot, body)
    assert response.status_code == 200, response.text
    assert await queued(redis_client) == 1
    # and the worker reads the same text back
    assert parse_content(parse_envelope(body)).text is not None
    assert parse_content(parse_envelope(body)).text.body == text  # type: ignore[union-attr]


# --- the worker's parse --------------------------------------------------------------------


def test_the_worker_parse_refuses_it_with_a_typed_error() -> None:
    with pytest.raises(TooDeeplyNested, match="body is nested deeper"):
        parse_envelope(body_with(b"[" * 600 + b"]" * 600))
    deep_content = WebhookEnvelope.model_validate(
        with_content(genuine(), content_with(b"[" * 600 + b"]" * 600))
    )
    with pytest.raises(TooDeeplyNested, match="content is nested deeper"):
        parse_content(deep_content)
    # What the worker catches to park an event at once instead of retrying it.
    assert issubclass(TooDeeplyNested, InvalidEnvelope)


@pytest.fixture
def fresh_runtime(services: TestServices) -> Iterator[None]:
    runtime_module.shutdown_runtime()
    yield
    runtime_module.shutdown_runtime()


async def dead_letters(engine: AsyncEngine) -> list[DeadLetter]:
    async with AsyncSession(engine) as session:
        return list((await session.scalars(select(DeadLetter))).all())


async def test_a_deep_event_in_the_queue_is_parked_once_not_crashed_on(
    fresh_runtime: None, committed_db: AsyncEngine
) -> None:
    from app.worker.tasks import process_event

    body = body_with(b"[" * 600 + b"]" * 600).decode()
    # The task as the worker runs it, in this thread: a RecursionError would surface here.
    result = await _in_thread(lambda: process_event.apply(args=(body, time.time())))
    assert result.successful(), result.traceback
    assert result.get() == "dead_lettered"
    (letter,) = await dead_letters(committed_db)
    assert letter.kind == "event"
    assert letter.error == f"body is nested deeper than {MAX_JSON_DEPTH} levels"
    assert letter.attempts == 1
    assert letter.payload == {"body": body}


async def _in_thread(call: Any) -> Any:
    # The task drives its own event loop (run_async): it cannot run inside this one.
    import asyncio

    return await asyncio.to_thread(call)


# --- the scanner itself ----------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(alphabet='[]{}"\\ax\u00e9\U0001f600', max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\k', max_size=4), children, max_size=3)
    ),
    max_leaves=40,
)


@settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(value=json_values, limit=st.integers(min_value=0, max_value=8))
def test_the_scan_agrees_with_the_parsed_depth(value: Any, limit: int) -> None:
    document = orjson.dumps(value)
    expected = true_depth(value) > limit
    assert nested_deeper_than(document, limit) is expected
    assert nested_deeper_than(document.decode(), limit) is expected


def test_the_scan_is_linear_on_a_megabyte() -> None:
    cases = {
        b"[" * (1 << 20): True,  # the flood
        b"[1]," * (1 << 18): False,  # wide, not deep
        b'["' + b"[" * (1 << 20) + b'"]': False,  # one long string of brackets
        b'["' + b'\\"[\\\\' * (1 << 18) + b'"]': False,  # escapes all the way
        # deep and wide at once, with no long run of `[` to give the depth away
        (b"[[]," * 33 + b"]" * 33 + b",") * (1 << 12): True,
        (b"[[]," * 30 + b"1" + b"]" * 30 + b",") * (1 << 12): False,
    }
    for document, deep in cases.items():
        started = time.perf_counter()
        assert nested_deeper_than(document, MAX_JSON_DEPTH) is deep
        assert time.perf_counter() - started < 0.5
