"""Running a stand-in (or any small ASGI app) under uvicorn on a loopback port: in a
background thread for tests, or in the foreground for the CLI."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from app.core.config import Settings
from app.sandbox.tiktok import SandboxConfig, create_sandbox_app


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago. Prefer `BackgroundServer(port=0)`, which keeps
    the socket it binds and cannot lose a race for the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class BackgroundServer:
    """uvicorn serving `app` from a daemon thread with its own event loop.

    The socket is bound before the thread starts, so `port=0` picks a free port without a
    race and `url` is known as soon as `start()` returns.
    """

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        # log_config=None: a server inside a test process must not reconfigure its logging.
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"uvicorn-{port or self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started serving")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_tiktok_sandbox(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 0, **overrides: Any
) -> BackgroundServer:
    """A TikTok sandbox matching `settings` (keys, business id, tokens), already serving."""
    config = SandboxConfig.from_settings(settings, **overrides)
    return BackgroundServer(create_sandbox_app(config), host=host, port=port).start()


def serve_foreground(app: Any, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM), uvicorn handling the signals."""
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
