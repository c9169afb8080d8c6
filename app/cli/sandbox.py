"""`python -m app.cli sandbox`: the local TikTok Business API stand-in, in the foreground."""

from __future__ import annotations

import typer

from app.core.config import get_settings
from app.core.logging import configure_logging
from app.sandbox.server import serve_foreground
from app.sandbox.tiktok import SandboxConfig, create_sandbox_app


def sandbox(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8900, help="port to listen on"),
    webhook_url: str | None = typer.Option(
        None, help="the bot's webhook; default PUBLIC_BASE_URL + /webhook/tiktok"
    ),
    echo_sends: bool = typer.Option(False, help="post im_send_msg echoes of API sends"),
    rate_limit: int | None = typer.Option(
        None, help="answer 40100 beyond this many calls per second"
    ),
    welcome_message: str | None = typer.Option(
        None, help="start every new chat with this TikTok welcome message (its echo)"
    ),
) -> None:
    """Serve the TikTok sandbox with this environment's client key, secret and tokens.

    Point the bot at it with TIKTOK_API_BASE=http://HOST:PORT; steer it under /_sandbox/.
    """
    settings = get_settings()
    configure_logging(settings)
    overrides: dict[str, object] = {
        "echo_sends": echo_sends,
        "rate_limit_per_second": rate_limit,
        "welcome_message": welcome_message,
    }
    if webhook_url is not None:
        overrides["webhook_url"] = webhook_url
    config = SandboxConfig.from_settings(settings, **overrides)
    typer.echo(
        f"philia: TikTok sandbox on http://{host}:{port} "
        f"(API version any, webhook {config.webhook_url}, control /_sandbox/docs)"
    )
    serve_foreground(create_sandbox_app(config), host=host, port=port)
