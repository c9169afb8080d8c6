"""FastAPI runs a plain `def` dependency or endpoint in its thread pool: a thread hop per
request. The webhook's acknowledgement time is measured in fractions of a millisecond, so
every dependency and endpoint of the app is a coroutine (none of them blocks)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.core.config import Settings, get_settings
from app.main import create_app


def _calls(dependant: Dependant) -> Iterator[object]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # include_router keeps the router
        if included is not None:
            yield from _api_routes(included.routes)


def _thread_pool_calls(app: FastAPI) -> list[str]:
    offenders: list[str] = []
    for route in _api_routes(app.routes):
        for call in [route.endpoint, *_calls(route.dependant)]:
            # A class instance as a dependency runs its __call__.
            target = call if inspect.isfunction(call) else type(call).__call__
            if not inspect.iscoroutinefunction(target):
                offenders.append(f"{route.path}: {getattr(call, '__qualname__', call)}")
    return offenders


def test_no_route_hops_to_a_thread() -> None:
    settings = Settings(**{**get_settings().model_dump(), "bench_endpoints": True})
    app = create_app(settings)
    assert len(list(_api_routes(app.routes))) > 20
    assert _thread_pool_calls(app) == []


def plain_settings() -> str:
    return "settings"


async def endpoint(value: Annotated[str, Depends(plain_settings)]) -> str:
    return value


def plain_endpoint() -> str:
    return "ok"


def test_the_check_finds_a_plain_function() -> None:
    app = FastAPI()
    app.add_api_route("/a", endpoint)
    app.add_api_route("/b", plain_endpoint)
    assert _thread_pool_calls(app) == [
        "/a: plain_settings",
        "/b: plain_endpoint",
    ]
