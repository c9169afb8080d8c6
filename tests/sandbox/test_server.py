"""Running the sandbox: in a thread for tests, and from the CLI in the foreground."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.sandbox.server import BackgroundServer, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_background_server_serves_on_a_free_port_and_stops() -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    with BackgroundServer(app) as server:
        assert server.port > 0
        assert httpx.get(server.url + "/ping").json() == {"pong": "yes"}

    try:
        httpx.get(server.url + "/ping", timeout=1.0)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the server still answers after stop()")


def test_cli_runs_the_sandbox_in_the_foreground() -> None:
    port = free_port()
    environment = {**os.environ, "ENVIRONMENT": "development", "LOG_JSON": "true"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "sandbox",
            "--port",
            str(port),
            "--webhook-url",
            "http://127.0.0.1:9/webhook/tiktok",
        ],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                config = httpx.get(f"http://127.0.0.1:{port}/_sandbox/config", timeout=1.0)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "sandbox CLI did not come up"
                time.sleep(0.1)
        assert config.json()["webhook_url"] == "http://127.0.0.1:9/webhook/tiktok"
    finally:
        process.terminate()
        process.wait(timeout=10)
