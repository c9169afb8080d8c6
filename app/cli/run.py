from __future__ import annotations

import asyncio
import signal
import time
from types import FrameType

import typer

from app.core.config import get_settings
from app.db.session import create_engine, create_session_factory, transaction
from app.sandbox.stack import Stack
from app.services.shop.demo import load_demo_shop


def run(
    port: int = typer.Option(8000, help="API port"),
    demo: bool = typer.Option(True, help="load the demo shop"),
    concurrency: int = typer.Option(2, help="worker processes"),
) -> None:
    """Run the whole bot in the foreground until Ctrl-C."""
    settings = get_settings()
    started = time.monotonic()
    stack = Stack(
        settings, settings.data_dir / "run", api_port=port, worker_concurrency=concurrency
    )

    def _stop(signum: int, frame: FrameType | None) -> None:
        # Once. A second signal (uv forwards the one it got; a process manager signals the
        # whole group) would otherwise interrupt the shutdown itself and leave the bot's
        # processes and embedded services running without us.
        _ignore_stop_signals()
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    try:
        typer.echo("philia: starting PostgreSQL and Redis (embedded where no URL is set)...")
        stack.start_services()
        if demo:
            summaries = asyncio.run(_load_demo(stack.env["DATABASE_URL"]))
            typer.echo(f"philia: demo shop loaded: catalogue {summaries[0]}, orders {summaries[1]}")
        stack.start_processes()
        elapsed = time.monotonic() - started
        typer.echo(
            "\n".join(
                [
                    f"Simulator  {stack.api_url}/simulator",
                    "",
                    f"philia is running (ready in {elapsed:.1f} s)",
                    f"  API          {stack.api_url}  (health {stack.api_url}/readyz)",
                    f"  webhook      {stack.api_url}/webhook/tiktok",
                    f"  API docs     {stack.api_url}/docs",
                    f"  staff inbox  {stack.api_url}/inbox   metrics {stack.api_url}/metrics",
                    f"  connect      {stack.api_url}/connect/tiktok  (staff: python -m app.cli "
                    "staff create EMAIL --name NAME, with the URLs below)",
                    f"  TikTok       {stack.sandbox_url or settings.tiktok_api_url}"
                    + ("  (local stand-in)" if stack.sandbox_url else ""),
                    f"  PostgreSQL   {stack.env['DATABASE_URL']}",
                    f"  Redis        {stack.env['REDIS_URL']}",
                    "Press Ctrl-C to stop.",
                ]
            )
        )
        while all(process.poll() is None for process in stack.processes.values()):
            time.sleep(0.5)
        dead = [name for name, process in stack.processes.items() if process.poll() is not None]
        typer.echo(f"philia: {', '.join(dead)} stopped unexpectedly; shutting down", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("\nphilia: stopping...")
    finally:
        _ignore_stop_signals()  # also when a process died and we stop on our own
        stack.stop()


def _ignore_stop_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


async def _load_demo(database_url: str) -> tuple[object, object]:
    settings = get_settings()
    engine = create_engine(settings, database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            return await load_demo_shop(session)
    finally:
        await engine.dispose()
