"""`python -m app.cli converse FILE...`: play conversation scenarios through the real bot.

stdout is the report (one line per failed turn, then `N passed, M failed`); progress notes
and diagnostics go to stderr so the report stays machine-readable.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from app.core.config import PROJECT_ROOT, Settings, get_settings
from app.core.logging import configure_logging
from app.scenarios.checks import quote
from app.scenarios.model import Scenario, ScenarioError, load_scenario
from app.scenarios.pipeline import PipelineError, ScenarioPipeline, ShopData
from app.scenarios.runner import DEFAULT_TURN_SECONDS, ScenarioRunner, TurnReport
from app.services.shop.catalog_io import (
    CATALOG_COLUMNS,
    ORDER_COLUMNS,
    CatalogRow,
    ImportFailed,
    OrderRow,
    parse_rows,
    read_csv,
)

REFERENCE_DATA = PROJECT_ROOT.parent / "shared" / "data"


@dataclass
class _Tally:
    passed: int = 0
    failed: int = 0

    def line(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


def converse(
    files: Annotated[list[Path], typer.Argument(help="scenario YAML files", show_default=False)],
    catalog: Annotated[
        Path, typer.Option(help="catalogue CSV imported before every file")
    ] = REFERENCE_DATA / "catalog.csv",
    orders: Annotated[
        Path, typer.Option(help="orders CSV imported before every file")
    ] = REFERENCE_DATA / "orders.csv",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="print every turn and its replies")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="seconds a turn may take before it fails")
    ] = DEFAULT_TURN_SECONDS,
    log_dir: Annotated[
        Path | None, typer.Option(help="keep the API, worker and sandbox logs in this folder")
    ] = None,
) -> None:
    """Play scenario files through the real pipeline against a freshly imported shop.

    Prints one line per failed turn, then `N passed, M failed`; a bad file is one failure.

    The bot runs as the app and account TIKTOK_CLIENT_KEY and TIKTOK_BUSINESS_ID name in
    the environment (default philia-dev-client and philia-dev-business, whatever .env
    says): the ids a `raw` turn's body uses for "ours".

    Exit status: 0 if every turn passed, 1 if any failed, 2 if the pipeline could not run.
    """
    settings = get_settings()
    _logs_to_stderr(settings)
    shop = _read_shop(catalog, orders)
    loaded: list[tuple[str, Scenario | ScenarioError]] = []
    for path in files:
        try:
            loaded.append((str(path), load_scenario(path)))
        except ScenarioError as error:
            loaded.append((str(path), error))
    tally = _Tally()
    try:
        fatal = asyncio.run(_play_all(tally, settings, shop, loaded, verbose, timeout, log_dir))
    except (asyncio.CancelledError, KeyboardInterrupt):
        typer.echo(tally.line())
        typer.echo("converse: interrupted", err=True)
        raise typer.Exit(130) from None
    typer.echo(tally.line())
    if fatal:
        raise typer.Exit(2)
    raise typer.Exit(0 if tally.failed == 0 else 1)


def _logs_to_stderr(settings: Settings) -> None:
    # The runner imports the shop in-process; its log lines must not mix with the report.
    configure_logging(settings)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    logging.getLogger().setLevel(logging.WARNING)


def _read_shop(catalog: Path, orders: Path) -> ShopData:
    """Read and validate both files before minutes are spent starting the pipeline."""
    try:
        catalog_text = read_csv(catalog)
        parse_rows(catalog_text, CATALOG_COLUMNS, CatalogRow, "sku")
    except ImportFailed as error:
        typer.echo(f"converse: catalogue {catalog}: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        orders_text = read_csv(orders)
        parse_rows(orders_text, ORDER_COLUMNS, OrderRow, "order_number")
    except ImportFailed as error:
        typer.echo(f"converse: orders {orders}: {error}", err=True)
        raise typer.Exit(2) from None
    return ShopData(catalog, orders, catalog_text, orders_text)


def _cancel_on_signals() -> None:
    """Ctrl-C or SIGTERM cancel the run, so that the pipeline's cleanup still runs: its
    processes live in sessions of their own and would otherwise outlive us, and the scratch
    database would stay behind."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def stop() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            # A second signal must not cut the cleanup short.
            loop.add_signal_handler(signum, lambda: None)
        typer.echo("converse: stopping...", err=True)
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)


async def _play_all(
    tally: _Tally,
    settings: Settings,
    shop: ShopData,
    loaded: list[tuple[str, Scenario | ScenarioError]],
    verbose: bool,
    turn_seconds: float,
    log_dir: Path | None,
) -> bool:
    """Play every file; True if the pipeline failed and the run stopped early."""
    _cancel_on_signals()

    def on_turn(report: TurnReport) -> None:
        if report.passed:
            tally.passed += 1
        else:
            tally.failed += 1
            typer.echo(f"{report.label} turn {report.number}: {'; '.join(report.problems)}")
        if verbose:
            _echo_details(report)

    if not any(isinstance(item, Scenario) for _, item in loaded):
        for label, item in loaded:
            tally.failed += 1
            typer.echo(f"{label}: invalid scenario file: {item}")
        return False
    started = time.monotonic()
    pipeline = ScenarioPipeline(settings, shop, log_dir=log_dir)
    try:
        async with pipeline:
            ready = time.monotonic()
            typer.echo(f"converse: pipeline ready in {ready - started:.1f} s", err=True)
            runner = ScenarioRunner(pipeline, turn_seconds=turn_seconds)
            for label, item in loaded:
                if isinstance(item, ScenarioError):
                    tally.failed += 1
                    typer.echo(f"{label}: invalid scenario file: {item}")
                    continue
                if verbose:
                    typer.echo(f"== {label}: {item.name}")
                await runner.run(label, item, on_turn)
            typer.echo(
                f"converse: {len(loaded)} file(s) played in {time.monotonic() - ready:.1f} s",
                err=True,
            )
    except PipelineError as error:
        typer.echo(f"converse: {error}", err=True)
        _echo_log_tails(pipeline, log_dir)
        return True
    finally:
        for note in pipeline.notes:
            typer.echo(f"converse: note: {note}", err=True)
    return False


def _echo_details(report: TurnReport) -> None:
    if report.passed:
        typer.echo(f"{report.label} turn {report.number}: ok")
    copies = f" (delivered {report.turn.duplicate} times)" if report.turn.duplicate > 1 else ""
    typer.echo(f"    {report.customer} {report.turn.describe()}{copies}")
    seen = report.observation
    if seen is None:
        typer.echo(f"    no outcome after {report.seconds:.2f} s")
        return
    count = len(seen.replies)
    typer.echo(
        f"    intent {seen.intent or 'none'}, {count} repl{'y' if count == 1 else 'ies'}"
        f" in {report.seconds:.2f} s"
    )
    statuses = ", ".join("no answer" if s is None else str(s) for s in seen.statuses)
    letters = len(seen.dead_letters)
    typer.echo(
        f"    webhook {statuses or 'not posted'}, mode {seen.mode or 'none'},"
        f" {letters} dead letter{'' if letters == 1 else 's'}"
    )
    for letter in seen.dead_letters:
        typer.echo(f"    ! {quote(letter, limit=300)}")
    for message in seen.replies:
        shown = quote(message.text or "", limit=1000) if message.message_type == "TEXT" else ""
        typer.echo(f"    < {message.message_type} {shown}".rstrip())


def _echo_log_tails(pipeline: ScenarioPipeline, log_dir: Path | None) -> None:
    if log_dir is not None:
        typer.echo(f"converse: the processes' logs are in {log_dir}", err=True)
        return
    for name, lines in pipeline.failure_logs.items():
        typer.echo(f"----- {name} (last {len(lines)} lines) -----", err=True)
        for line in lines:
            typer.echo(line, err=True)
