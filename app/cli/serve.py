"""`python -m app.cli serve`: the API as every launch file runs it.

One command instead of a uvicorn line copied into the Dockerfile, compose and Railway, so
the two things a line would get wrong live in the settings: which proxies' forwarding
headers are believed (FORWARDED_ALLOW_IPS, none by default, so a client cannot pick its own
address for the login lock and the audit log) and the logging (uvicorn's loggers go through
our JSON handler and secret scrubber, never its own plain-text ones).
"""

from __future__ import annotations

import os

import typer
import uvicorn

from app.core.config import get_settings


def trusted_proxies(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def serve(
    host: str = typer.Option("0.0.0.0", help="address to listen on"),  # noqa: S104 - a container's port
    port: int = typer.Option(
        lambda: int(os.environ.get("PORT") or 8000), help="port (default: $PORT, else 8000)"
    ),
    access_log: bool = typer.Option(False, help="log every request"),
) -> None:
    """Run the API (uvicorn) with the trusted proxies and logging from the settings."""
    settings = get_settings()
    proxies = trusted_proxies(settings.forwarded_allow_ips)
    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        # Without a trusted proxy the forwarding headers are not read at all.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        # app.main configures logging; uvicorn's dictConfig would add its own handlers.
        log_config=None,
        access_log=access_log,
        server_header=False,
    )
