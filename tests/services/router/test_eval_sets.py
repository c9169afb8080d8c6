"""The shared evaluation sets (never trained on): the router's targets."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from app.core.config import get_settings
from app.services.router.evaluate import evaluate, read_labelled
from app.services.router.models import RouteResult
from app.services.router.router import HybridRouter


def _eval_file(shared_dir: Path, name: str) -> Path:
    path = shared_dir / "eval" / name
    if not path.exists():
        pytest.skip(f"{path} is not there")
    return path


def test_router_dev_set(shared_dir: Path, offline_router: HybridRouter) -> None:
    report = evaluate(
        offline_router.route_offline, read_labelled(_eval_file(shared_dir, "router_dev.jsonl"))
    )
    assert report.accuracy >= 0.99, report.format()
    assert report.entity_f1 >= 0.98, report.format()


def test_clinc150_shop_set(shared_dir: Path, offline_router: HybridRouter) -> None:
    report = evaluate(
        offline_router.route_offline, read_labelled(_eval_file(shared_dir, "clinc150_shop.jsonl"))
    )
    assert report.accuracy >= 0.96, report.format(show_mistakes=False)


def test_the_llm_layer_on_the_dev_set_with_a_live_key(shared_dir: Path) -> None:
    """With OPENAI_API_KEY in the environment, the whole router (LLM first) is scored on
    the dev set; without one (CI, this machine) there is nothing to score."""
    if not os.environ.get("OPENAI_API_KEY"):
        pytest.skip("no OPENAI_API_KEY: the LLM layer is scored only against a live key")
    rows = read_labelled(_eval_file(shared_dir, "router_dev.jsonl"))
    router = HybridRouter(get_settings())

    async def route_all() -> dict[str, RouteResult]:
        return {row.text: await router.route(row.text) for row in rows}

    answers = asyncio.run(route_all())
    report = evaluate(lambda text: answers[text], rows)
    assert report.accuracy >= 0.95, report.format()
