from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli._runtime import run_in_transaction
from app.services.shop.catalog_io import ImportFailed, read_csv
from app.services.shop.faq import import_faq

app = typer.Typer(no_args_is_help=True, help="Import the shop's FAQ (CSV).")


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="FAQ CSV: topic,question,answer,keywords")],
) -> None:
    """Create or update FAQ entries by topic; a bad row imports nothing."""
    try:
        text = read_csv(file)
        summary = run_in_transaction(lambda session: import_faq(session, text))
    except ImportFailed as error:
        typer.echo(f"faq import failed: {file}: {error}; nothing was imported", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"faq imported from {file}: {summary}")
