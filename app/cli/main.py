"""`python -m app.cli <group> <command>`: one command group per concern."""

from __future__ import annotations

import typer

from app.cli import catalog, db, deadletters, faq, orders, run, sandbox, serve, staff, tiktok
from app.cli import route as route_cli
from app.cli.converse import converse

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Philia, the TikTok DM bot.")
cli.add_typer(catalog.app, name="catalog")
cli.add_typer(orders.app, name="orders")
cli.add_typer(faq.app, name="faq")
cli.add_typer(db.app, name="db")
cli.add_typer(deadletters.app, name="deadletters")
cli.add_typer(staff.app, name="staff")
cli.add_typer(tiktok.app, name="tiktok")
cli.command("run")(run.run)
cli.command("serve")(serve.serve)
cli.command("sandbox")(sandbox.sandbox)
cli.add_typer(route_cli.app, name="route")
cli.command("converse")(converse)
