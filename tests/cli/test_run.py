"""`python -m app.cli run` (what `make run` starts): the whole bot in the foreground, and
nothing it started left behind when it is told to stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import psutil

from app.core.config import PROJECT_ROOT
from app.sandbox.stack import free_port
from tests.conftest import TestServices


def _wait_for_line(stream: IO[str], wanted: str, seconds: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if wanted in line:
            return seen
    raise AssertionError(f"no line with {wanted!r} in:\n{''.join(seen)}")


def test_a_second_signal_during_the_shutdown_leaves_nothing_running(
    services: TestServices, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "DATA_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "app.cli", "run", "--port", str(free_port())]
    run = subprocess.Popen(
        [*command, "--no-demo", "--concurrency", "1"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started: list[psutil.Process] = []
    try:
        assert run.stdout is not None
        _wait_for_line(run.stdout, "philia is running", 90)
        started = psutil.Process(run.pid).children(recursive=True)
        assert len(started) >= 3  # the API, the worker, the TikTok stand-in (and more)

        run.send_signal(signal.SIGTERM)
        _wait_for_line(run.stdout, "philia: stopping", 30)
        # The shutdown is under way: the second signal lands in it, as when uv forwards the
        # one it got or a process manager signals the whole group.
        run.send_signal(signal.SIGTERM)
        # Not read to its end: a process left running would hold it open.
        assert run.wait(timeout=60) == 0
        _, still_running = psutil.wait_procs(started, timeout=30)
        assert still_running == []
    finally:
        if run.poll() is None:
            run.kill()
        for process in started:
            if process.is_running():
                process.kill()
        if run.stdout is not None:
            run.stdout.close()
