from __future__ import annotations

from pathlib import Path
from typing import Annotated

import redis.asyncio as aioredis
import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli._runtime import run_with_shop
from app.core.clock import utc_now
from app.core.config import Settings
from app.services.shop import policy_for, record_sales
from app.services.shop.catalog_io import ImportFailed, ImportSummary, import_orders, read_csv

app = typer.Typer(no_args_is_help=True, help="Import orders (CSV).")


@app.command("import")
def import_command(file: Annotated[Path, typer.Argument(help="orders CSV")]) -> None:
    """Create or update orders from a CSV; a bad row imports nothing. Pieces on the orders
    become sold, holds on them sales; what their customers are told is sent by the worker."""

    async def work(session: AsyncSession, settings: Settings, redis: aioredis.Redis) -> str:
        summary: ImportSummary = await import_orders(session, text)
        # Same transaction: an import that fails sells nothing. The messages are left
        # pending in the outbox, where the worker's sweeper finds them.
        sales = await record_sales(session, settings, policy_for(settings, redis), utc_now())
        return f"{summary}; {sales.sold} pieces marked sold ({sales.converted} from holds)"

    try:
        text = read_csv(file)
        said = run_with_shop(work)
    except ImportFailed as error:
        typer.echo(f"orders import failed: {file}: {error}; nothing was imported", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"orders imported from {file}: {said}")
