"""The shared evaluation sets (never trained on): the router's targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.router.evaluate import evaluate, read_labelled
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
    assert report.accuracy >= 0.95, report.format()
    assert report.entity_f1 >= 0.95, report.format()


def test_clinc150_shop_set(shared_dir: Path, offline_router: HybridRouter) -> None:
    report = evaluate(
        offline_router.route_offline, read_labelled(_eval_file(shared_dir, "clinc150_shop.jsonl"))
    )
    assert report.accuracy >= 0.90, report.format(show_mistakes=False)
