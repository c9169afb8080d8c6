from __future__ import annotations

import asyncio

import typer

from app.cli._runtime import settings_for_cli
from app.db.migrate import upgrade_to_head, wait_for_database

app = typer.Typer(no_args_is_help=True, help="Database maintenance.")


@app.command("migrate")
def migrate_command(
    wait: float = typer.Option(60.0, help="seconds to wait for the database to answer"),
) -> None:
    """The prestart step: wait for PostgreSQL, then apply every migration."""
    settings = settings_for_cli()
    assert settings.database_url is not None
    asyncio.run(wait_for_database(settings.database_url, wait))
    upgrade_to_head(settings.database_url)
    typer.echo("database migrated to head")


@app.command("check")
def check_command() -> None:
    """Fail if the models and the migrations disagree (`alembic check`), on a scratch
    database built from the migrations alone, so the shop's database is never touched."""
    from alembic import command

    from app.db.migrate import alembic_config, create_scratch_database, drop_database

    settings = settings_for_cli()
    assert settings.database_url is not None
    scratch = asyncio.run(create_scratch_database(settings.database_url, "philia_check"))
    try:
        upgrade_to_head(scratch)
        command.check(alembic_config(scratch))
    finally:
        asyncio.run(drop_database(scratch))
    typer.echo("models and migrations agree")
