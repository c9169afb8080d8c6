"""`python -m app.cli <group> <command>`: one command group per concern.

A run imports only the group it is asked for: the brain's groups load the router's model
libraries (seconds of imports), which `tiktok status` or `staff create` have no use for.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

# name -> (module, attribute): a Typer app (a group) or a function (one command).
COMMANDS: dict[str, tuple[str, str]] = {
    "catalog": ("app.cli.catalog", "app"),
    "orders": ("app.cli.orders", "app"),
    "faq": ("app.cli.faq", "app"),
    "db": ("app.cli.db", "app"),
    "deadletters": ("app.cli.deadletters", "app"),
    "staff": ("app.cli.staff", "app"),
    "tiktok": ("app.cli.tiktok", "app"),
    "run": ("app.cli.run", "run"),
    "serve": ("app.cli.serve", "serve"),
    "sandbox": ("app.cli.sandbox", "sandbox"),
    "route": ("app.cli.route", "app"),
    "converse": ("app.cli.converse", "converse"),
}


def build(only: str | None = None) -> typer.Typer:
    """The CLI with every group, or with `only` that one when it names a group."""
    root = typer.Typer(
        no_args_is_help=True, add_completion=False, help="Philia, the TikTok DM bot."
    )
    for name in [only] if only in COMMANDS else list(COMMANDS):
        module_name, attribute = COMMANDS[name]
        target: Any = getattr(importlib.import_module(module_name), attribute)
        if isinstance(target, typer.Typer):
            root.add_typer(target, name=name)
        else:
            root.command(name)(target)
    if only in COMMANDS and len(root.registered_commands) == 1:
        # A lone command would become the whole CLI (`app.cli run` would not parse "run").
        @root.callback()
        def _root() -> None:
            """Philia, the TikTok DM bot."""

    return root


def main() -> None:
    build(sys.argv[1] if len(sys.argv) > 1 else None)()


def __getattr__(name: str) -> typer.Typer:
    # `cli`, the whole CLI, for tests that invoke it in-process: built when asked for.
    if name == "cli":
        return build()
    raise AttributeError(name)
