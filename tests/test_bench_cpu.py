"""The bench's CPU accounting per process (`bench.__main__.cpu_by_process`): what a DM costs
each process is read from these, so they must find the right processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from bench.__main__ import _service_pids, cpu_by_process

# Busy for a while, then idle until killed: CPU that must show up under its own name.
_BURN = (
    "import time\n"
    "end = time.process_time() + 0.3\n"
    "while time.process_time() < end: pass\n"
    "time.sleep(60)\n"
)
# A parent that stays idle and a child (as Celery's pool) that burns CPU.
_PARENT_OF_BURNER = (
    "import subprocess, sys, time\n"
    f"child = subprocess.Popen([sys.executable, '-c', {_BURN!r}])\n"
    "time.sleep(60)\n"
)


@dataclass
class _Processes:
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


@pytest.fixture
def stack() -> Iterator[_Processes]:
    processes = _Processes(
        {
            "api": subprocess.Popen([sys.executable, "-c", _BURN]),
            "worker": subprocess.Popen([sys.executable, "-c", _PARENT_OF_BURNER]),
        }
    )
    yield processes
    for process in processes.processes.values():
        process.kill()
        process.wait()


def test_postgresql_and_redis_are_found_by_their_process_names() -> None:
    # The test suite runs against real servers: the machine's or embedded ones.
    found = _service_pids()
    assert found["postgresql"], "no postgres process found"
    assert found["redis"], "no redis-server process found"


def test_each_process_is_charged_its_own_cpu(stack: _Processes) -> None:
    before = cpu_by_process(stack)  # type: ignore[arg-type]  # only .processes is read

    def spent_since() -> dict[str, float]:
        after = cpu_by_process(stack)  # type: ignore[arg-type]
        return {name: after[name] - before[name] for name in after}

    # Until both burners have spent (most of) their 0.3 s, however busy the machine.
    deadline = time.monotonic() + 60
    spent = spent_since()
    while (spent["api"] < 0.25 or spent["worker's pool"] < 0.25) and time.monotonic() < deadline:
        time.sleep(0.1)
        spent = spent_since()
    assert set(spent) >= {
        "api",
        "worker's consumer",
        "worker's pool",
        "postgresql",
        "redis",
        "load generator (bench)",
        "rest of the machine",
    }
    assert "worker" not in spent  # split into its consumer and its pool
    # The child burns, its parent sleeps: the pool is charged, not the consumer.
    assert spent["worker's pool"] >= 0.25
    assert spent["worker's consumer"] < spent["worker's pool"] / 2  # its start-up at most
    assert spent["api"] >= 0.25
