"""`python -m app.cli route`: the router contract on stdin/stdout, and its evaluation.

    echo '{"text": "is PT-0142 still available?"}' | python -m app.cli route
    python -m app.cli route eval ../shared/eval/router_dev.jsonl

No database and no network are needed: without an OpenAI key (or with --offline) the
local router answers. stdout carries only the JSON Lines; logs go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from pydantic import BaseModel, ConfigDict, ValidationError

from app.core.config import get_settings
from app.core.logging import configure_logging

if TYPE_CHECKING:
    from app.services.router.router import HybridRouter

app = typer.Typer(
    no_args_is_help=False,
    invoke_without_command=True,
    help='Route DMs: JSON Lines {"text": ...} on stdin, one result line each on stdout.',
)


class RouteInput(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    text: str


def _logs_to_stderr() -> None:
    # stdout is the contract's JSON Lines; a log line there would corrupt it.
    configure_logging(get_settings())
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


def _make_router(offline: bool) -> HybridRouter:
    # Imported here: scikit-learn takes seconds to import, and every other CLI command
    # (which imports this module to register it) would pay for it.
    from app.services.router.router import HybridRouter

    settings = get_settings()
    if offline:
        settings = settings.model_copy(update={"openai_api_key": None})
    router = HybridRouter(settings)
    router.warm_up()
    return router


def _parse_line(line: str) -> RouteInput | str:
    """The input of one line, or the error message to write in its place."""
    try:
        return RouteInput.model_validate_json(line)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"invalid input line: {where + ': ' if where else ''}{first['msg']}"


async def _route_lines(router: HybridRouter, lines: TextIO, out: TextIO, offline: bool) -> int:
    errors = 0
    for raw in lines:
        line = raw.rstrip("\r\n")
        parsed = _parse_line(line)
        result: dict[str, Any]
        if isinstance(parsed, str):
            errors += 1
            result = {"error": parsed}
        else:
            try:
                routed = (
                    router.route_offline(parsed.text)
                    if offline
                    else await router.route(parsed.text)
                )
                result = routed.contract_dict()
            except Exception as error:  # one bad message must not end the stream
                errors += 1
                result = {"error": f"routing failed: {type(error).__name__}"}
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
        out.flush()
    return errors


@app.callback()
def route(
    ctx: typer.Context,
    offline: Annotated[
        bool, typer.Option("--offline", help="never call the LLM, even with a key configured")
    ] = False,
) -> None:
    """Read {"text": ...} lines from stdin; write {"intent", "entities", "source"} lines."""
    if ctx.invoked_subcommand is not None:
        return
    _logs_to_stderr()
    router = _make_router(offline)
    use_offline = offline or not router.llm.configured
    asyncio.run(_route_lines(router, sys.stdin, sys.stdout, use_offline))


@app.command("eval")
def eval_command(
    file: Annotated[Path, typer.Argument(help="labelled JSON Lines: text, intent, entities")],
    online: Annotated[
        bool, typer.Option("--online", help="use the LLM when a key is configured")
    ] = False,
    mistakes: Annotated[bool, typer.Option(help="list the misrouted messages")] = True,
) -> None:
    """Accuracy, per-intent precision/recall, entity F1 and the confusion matrix."""
    _logs_to_stderr()
    try:
        from app.services.router.evaluate import evaluate, read_labelled

        rows = read_labelled(file)
    except (OSError, ValueError) as error:
        typer.echo(f"route eval: {error}", err=True)
        raise typer.Exit(2) from None
    router = _make_router(offline=not online)
    if online and router.llm.configured:

        async def route_all() -> dict[str, Any]:
            return {row.text: await router.route(row.text) for row in rows}

        answers = asyncio.run(route_all())
        report = evaluate(lambda text: answers[text], rows)
    else:
        report = evaluate(router.route_offline, rows)
    typer.echo(report.format(show_mistakes=mistakes))
