"""The whole bot as processes: embedded services when no URLs are given, migrations,
the TikTok stand-in when no real token is configured, the API, the worker and beat.

`make run`, the scenario runner, the end-to-end tests and the benchmarks all start the
bot through this one class, so they exercise the same wiring as production.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import redis

from app.core.config import PROJECT_ROOT, Settings, normalize_database_url
from app.core.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServices
from app.db.migrate import upgrade_to_head
from app.worker import task_names
from app.worker.celery_app import create_celery
from app.worker.task_names import EVENTS_QUEUE, MAINTENANCE_QUEUE, SENDS_QUEUE


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            response = httpx.get(url, timeout=1.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s ({last})")


def uses_sandbox(settings: Settings) -> bool:
    token = settings.tiktok_access_token.get_secret_value()
    return token in ("", "dev") or token.startswith("philia-dev")


@dataclass
class Stack:
    settings: Settings
    data_dir: Path
    api_port: int = 8000
    sandbox_port: int | None = None
    worker_concurrency: int = 2
    with_beat: bool = True
    # False: start_processes leaves the worker out (the bench starts it after measuring
    # ingress alone); start_worker starts one at any time.
    with_worker: bool = True
    log_dir: Path | None = None  # None: children write to this terminal
    extra_env: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    embedded: EmbeddedServices | None = None
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def sandbox_url(self) -> str | None:
        return None if self.sandbox_port is None else f"http://127.0.0.1:{self.sandbox_port}"

    def start_services(self) -> None:
        self.env = {**os.environ, **self.extra_env}
        need_db = not self.env.get("DATABASE_URL")
        need_redis = not self.env.get("REDIS_URL")
        if need_db or need_redis:
            self.embedded = EmbeddedServices(self.data_dir / "services")
            self.embedded.start(need_postgres=need_db, need_redis=need_redis)
            self.embedded.export_environment(self.env)
        self.env["DATABASE_URL"] = normalize_database_url(self.env["DATABASE_URL"])
        upgrade_to_head(self.env["DATABASE_URL"])

    def start_processes(self) -> None:
        if self.sandbox_port is None and uses_sandbox(self.settings):
            self.sandbox_port = free_port()
        if self.sandbox_port is not None:
            self.env["TIKTOK_API_BASE"] = f"http://127.0.0.1:{self.sandbox_port}"
            self.env["SANDBOX_URL"] = f"http://127.0.0.1:{self.sandbox_port}"  # the simulator
            # The shop's CDN is out of reach too: photos come from the sandbox's mirror.
            self.env.setdefault(
                "MEDIA_MIRROR_URL", f"http://127.0.0.1:{self.sandbox_port}/_sandbox/media"
            )
            # Photo URLs must be on an allowed host even through the mirror: these are the
            # demo shop's (app/demo) and the reference shop's (../shared/data). Whoever set
            # their own (environment or .env) keeps exactly theirs.
            if not self.env.get("MEDIA_ALLOWED_HOSTS") and not self.settings.media_allowed_hosts:
                self.env["MEDIA_ALLOWED_HOSTS"] = (
                    "demo.philiathrifts.example,cdn.philiathrifts.example"
                )
            self._spawn(
                "sandbox",
                [
                    "-m",
                    "app.cli",
                    "sandbox",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.sandbox_port),
                    "--webhook-url",
                    f"{self.api_url}/webhook/tiktok",
                    "--echo-sends",  # as TikTok does: every send comes back as im_send_msg
                ],
            )
        self._spawn(
            "api",
            [
                "-m",
                "app.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
            ],
        )
        if self.with_worker:
            self.start_worker()
        if self.with_beat:
            self._spawn(
                "beat",
                [
                    "-m",
                    "celery",
                    "-A",
                    "app.worker.celery_app:celery_app",
                    "--quiet",  # its banner is plain text, printed before our logging
                    "beat",
                    "--loglevel=WARNING",
                    "--schedule",
                    str(self.data_dir / "celerybeat-schedule"),
                ],
            )
        if self.sandbox_url is not None:
            wait_for_http(f"{self.sandbox_url}/_sandbox/health", 30, self.processes["sandbox"])
        wait_for_http(f"{self.api_url}/readyz", 60, self.processes["api"])
        if self.with_worker:
            self.wait_for_worker()

    def wait_for_worker(self, timeout: float = 120) -> None:
        """Until the worker runs a task, a DM would wait behind its start-up (seconds on a
        fresh install, where it compiles and loads the router's libraries): the stack is
        ready when one task went through the queue and back."""
        key = f"philia:stack:worker-ready:{uuid.uuid4().hex}"
        celery = create_celery(
            self.settings.model_copy(update={"redis_url": self.env["REDIS_URL"]})
        )
        celery.send_task(task_names.NOOP, args=[key], queue=EVENTS_QUEUE)
        client = redis.Redis.from_url(self.env["REDIS_URL"])
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if client.get(key) is not None:
                    client.delete(key)
                    return
                worker = self.processes.get("worker")
                if worker is not None and worker.poll() is not None:
                    raise RuntimeError(f"the worker exited with code {worker.returncode}")
                time.sleep(0.1)
        finally:
            client.close()
        raise TimeoutError(f"the worker ran no task within {timeout:.0f} s")

    def start_worker(self, name: str = "worker") -> subprocess.Popen[bytes]:
        queues = ",".join((EVENTS_QUEUE, SENDS_QUEUE, MAINTENANCE_QUEUE))
        return self._spawn(
            name,
            [
                "-m",
                "celery",
                "-A",
                "app.worker.celery_app:celery_app",
                "worker",
                f"--loglevel={self.env.get('LOG_LEVEL') or self.settings.log_level}",
                "-Q",
                queues,
                "--concurrency",
                str(self.worker_concurrency),
                "--hostname",
                f"{name}-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
        )

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        output: IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{name}.log").open("ab")
            self._logs.append(output)
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def restart_redis(self, downtime_seconds: float) -> None:
        self._embedded_service("redis").restart(downtime_seconds)

    def restart_postgres(self, downtime_seconds: float) -> None:
        self._embedded_service("postgres").restart(downtime_seconds)

    def _embedded_service(self, name: str) -> EmbeddedRedis | EmbeddedPostgres:
        service = getattr(self.embedded, name, None) if self.embedded is not None else None
        if service is None:
            raise RuntimeError(f"{name} is not embedded in this stack: it cannot be restarted")
        assert isinstance(service, EmbeddedRedis | EmbeddedPostgres)
        return service

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill a process and its children (a Celery worker's pool) at once."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for name, process in self.processes.items():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(name)
        self.processes.clear()
        for log_file in self._logs:
            log_file.close()
        self._logs.clear()
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None
