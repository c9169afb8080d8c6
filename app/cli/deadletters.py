from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from app.cli._runtime import settings_for_cli
from app.core.clock import utc_now
from app.db.models import DeadLetterStatus
from app.db.repositories.conversations import DeadLetterRepository, OutboxRepository
from app.db.session import create_engine, create_session_factory, transaction
from app.services.messaging import transitions
from app.worker import task_names
from app.worker.celery_app import create_celery
from app.worker.task_names import EVENTS_QUEUE, SENDS_QUEUE

app = typer.Typer(no_args_is_help=True, help="Events and replies that could not be handled.")


@app.command("list")
def list_command(
    all_: bool = typer.Option(False, "--all", help="include ones already retried"),
) -> None:
    """Show parked events and replies, newest first."""
    settings = settings_for_cli()

    async def _main() -> None:
        engine = create_engine(settings)
        try:
            async with transaction(create_session_factory(engine)) as session:
                letters = await DeadLetterRepository(session).list(include_retried=all_)
        finally:
            await engine.dispose()
        if not letters:
            typer.echo("no dead letters")
        for letter in letters:
            typer.echo(
                f"#{letter.id} {letter.status:<7} {letter.kind:<12} "
                f"{letter.created_at:%Y-%m-%d %H:%M} attempts={letter.attempts} "
                f"event={letter.event_id or '-'} conversation={letter.conversation_id or '-'}\n"
                f"    {letter.error[:300]}"
            )

    asyncio.run(_main())


@app.command("retry")
def retry_command(
    letter_ids: Annotated[list[int], typer.Argument(help="dead letter ids")],
) -> None:
    """Queue parked events or replies again (a reply whose outcome was unknown is resent)."""
    settings = settings_for_cli()
    celery = create_celery(settings)

    async def _main() -> list[str]:
        engine = create_engine(settings)
        done: list[str] = []
        try:
            async with transaction(create_session_factory(engine)) as session:
                letters = DeadLetterRepository(session)
                outbox = OutboxRepository(session)
                for letter_id in letter_ids:
                    letter = await letters.get_for_update(letter_id)
                    if letter is None or letter.status != "parked":
                        done.append(f"#{letter_id}: not found or already retried")
                        continue
                    if letter.kind == "event":
                        celery.send_task(
                            task_names.PROCESS_EVENT,
                            args=[letter.payload["body"], utc_now().timestamp()],
                            queue=EVENTS_QUEUE,
                        )
                    else:
                        entry = await outbox.get_for_update(int(letter.payload["outbox_id"]))
                        if entry is None:
                            done.append(f"#{letter_id}: its outbox row is gone")
                            continue
                        transitions.requeue_by_hand(entry)
                        await session.flush()
                        celery.send_task(
                            task_names.DELIVER_OUTBOX, args=[entry.id], queue=SENDS_QUEUE
                        )
                    letter.status = DeadLetterStatus.RETRIED
                    letter.retried_at = utc_now()
                    done.append(f"#{letter_id}: queued again")
        finally:
            await engine.dispose()
        return done

    for line in asyncio.run(_main()):
        typer.echo(line)
