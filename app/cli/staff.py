"""`python -m app.cli staff ...`: the accounts that log in to the inbox and the admin."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import redis.asyncio as aioredis
import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli._runtime import run_in_transaction, settings_for_cli
from app.db.models import StaffUser
from app.db.repositories.staff import StaffRepository
from app.services.staff.auth import (
    InvalidStaffInput,
    Passwords,
    SessionStore,
    create_account,
    find_account,
    validate_new_password,
)

app = typer.Typer(no_args_is_help=True, help="Staff accounts for the inbox and the admin.")

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="read the password from the first line of standard input"
    ),
]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return validate_new_password(password)
    except InvalidStaffInput as error:
        typer.echo(f"staff: {error}", err=True)
        raise typer.Exit(1) from None


def _fail(error: InvalidStaffInput) -> typer.Exit:
    typer.echo(f"staff: {error}", err=True)
    return typer.Exit(1)


def _end_sessions(staff_id: int) -> str:
    """Log the account out everywhere. The web checks the account on every request, so
    this is tidiness rather than the lock itself: a Redis that is down is not fatal."""
    settings = settings_for_cli()
    if settings.redis_url is None:
        return "sessions end on their next request"

    async def _revoke() -> int:
        client = aioredis.Redis.from_url(settings.redis_url or "", socket_connect_timeout=2.0)
        try:
            return await SessionStore(client, settings).revoke_all(staff_id)
        finally:
            await client.aclose()

    try:
        ended = asyncio.run(_revoke())
    except (aioredis.RedisError, OSError):
        return "Redis unreachable: sessions end on their next request"
    return f"{ended} session(s) ended"


@app.command("create")
def create(
    email: Annotated[str, typer.Argument(help="login email")],
    name: Annotated[str, typer.Option("--name", help="name shown to other staff")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Create an account; the password is asked twice (or read from stdin)."""
    password = _read_password(password_stdin)

    async def work(session: AsyncSession) -> StaffUser:
        return await create_account(session, Passwords(), email, name, password)

    try:
        staff = run_in_transaction(work)
    except InvalidStaffInput as error:
        raise _fail(error) from None
    typer.echo(f"staff account created: {staff.email} ({staff.display_name})")


@app.command("list")
def list_accounts() -> None:
    """Every account, active or not."""

    async def work(session: AsyncSession) -> list[StaffUser]:
        return list(await StaffRepository(session).all())

    accounts = run_in_transaction(work)
    if not accounts:
        typer.echo("no staff accounts yet: python -m app.cli staff create EMAIL --name NAME")
        return
    for staff in accounts:
        state = "active" if staff.is_active else "disabled"
        last = staff.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if staff.last_login_at else "-"
        typer.echo(f"{staff.email}\t{staff.display_name}\t{state}\tlast login {last}")


def _set_active(email: str, active: bool) -> StaffUser:
    async def work(session: AsyncSession) -> StaffUser:
        staff = await find_account(session, email)
        staff.is_active = active
        return staff

    try:
        return run_in_transaction(work)
    except InvalidStaffInput as error:
        raise _fail(error) from None


@app.command("disable")
def disable(email: Annotated[str, typer.Argument(help="login email")]) -> None:
    """Lock an account out at once (its history stays)."""
    staff = _set_active(email, False)
    typer.echo(f"staff account disabled: {staff.email}; {_end_sessions(staff.id)}")


@app.command("enable")
def enable(email: Annotated[str, typer.Argument(help="login email")]) -> None:
    """Let a disabled account log in again."""
    staff = _set_active(email, True)
    typer.echo(f"staff account enabled: {staff.email}")


@app.command("set-password")
def set_password(
    email: Annotated[str, typer.Argument(help="login email")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Replace a password and end the account's sessions."""
    password = _read_password(password_stdin)

    async def work(session: AsyncSession) -> StaffUser:
        staff = await find_account(session, email)
        staff.password_hash = Passwords().hash(password)
        return staff

    try:
        staff = run_in_transaction(work)
    except InvalidStaffInput as error:
        raise _fail(error) from None
    typer.echo(f"password changed: {staff.email}; {_end_sessions(staff.id)}")
