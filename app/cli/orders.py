from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli._runtime import run_in_transaction
from app.services.shop.catalog_io import ImportFailed, import_orders, read_csv

app = typer.Typer(no_args_is_help=True, help="Import orders (CSV).")


@app.command("import")
def import_command(file: Annotated[Path, typer.Argument(help="orders CSV")]) -> None:
    """Create or update orders from a CSV; a bad row imports nothing."""
    try:
        text = read_csv(file)
        summary = run_in_transaction(lambda session: import_orders(session, text))
    except ImportFailed as error:
        typer.echo(f"orders import failed: {file}: {error}; nothing was imported", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"orders imported from {file}: {summary}")
