"""The project's own conversation scenarios (tests/scenarios/*.yaml), played through the
real pipeline by `python -m app.cli converse`, as the held-out scenarios will be."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.core.config import PROJECT_ROOT

SCENARIOS = sorted((PROJECT_ROOT / "tests" / "scenarios").glob("*.yaml"))
RUN_SECONDS = 240


@pytest.mark.e2e
def test_own_scenarios_pass_through_the_pipeline() -> None:
    assert len(SCENARIOS) >= 3
    if not (PROJECT_ROOT.parent / "shared" / "data" / "catalog.csv").exists():
        pytest.skip("the scenarios play against the reference shop in ../shared")
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "converse", *map(str, SCENARIOS)],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )
    report = f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, report
    assert " 0 failed" in result.stdout, report
