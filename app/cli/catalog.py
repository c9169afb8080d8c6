from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli._runtime import run_in_transaction
from app.services.shop.catalog_io import ImportFailed, export_catalog, import_catalog, read_csv

app = typer.Typer(no_args_is_help=True, help="Import and export the catalogue (CSV).")


@app.command("import")
def import_command(file: Annotated[Path, typer.Argument(help="catalogue CSV")]) -> None:
    """Create or update items from a catalogue CSV; a bad row imports nothing."""
    try:
        text = read_csv(file)
        summary = run_in_transaction(lambda session: import_catalog(session, text))
    except ImportFailed as error:
        typer.echo(f"catalog import failed: {file}: {error}; nothing was imported", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"catalog imported from {file}: {summary}")


@app.command("export")
def export_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file; stdout if absent")
    ] = None,
) -> None:
    """Write the catalogue in the import format."""
    text = run_in_transaction(export_catalog)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"catalog exported to {output}", err=True)
