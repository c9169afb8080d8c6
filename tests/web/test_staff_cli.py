"""`python -m app.cli staff ...` as the owner runs it: a subprocess and its exit code."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typer.testing import CliRunner, Result

from app.cli.main import cli as cli_app
from app.core.config import PROJECT_ROOT
from app.db.models import StaffUser
from tests.web.conftest import add_staff, login

if TYPE_CHECKING:
    from tests.conftest import TestServices

PASSWORD = "a long cli password"


def cli(
    services: TestServices, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "staff", *args],
        cwd=PROJECT_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_create_list_log_in_and_disable(
    services: TestServices, committed_db: AsyncEngine, web: httpx.AsyncClient
) -> None:
    created = cli(
        services, "create", "Rae@Philia.test", "--name", "Rae", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "staff account created: rae@philia.test (Rae)" in created.stdout
    async with AsyncSession(committed_db) as session:
        staff = await session.scalar(select(StaffUser).where(StaffUser.email == "rae@philia.test"))
    assert staff is not None
    assert staff.password_hash.startswith("$argon2id$")
    assert PASSWORD not in staff.password_hash

    listed = await asyncio.to_thread(run, "list")
    assert "rae@philia.test\tRae\tactive" in listed.output

    assert (await login(web, "rae@philia.test", PASSWORD)).status_code == 303
    assert (await web.get("/inbox")).status_code == 200

    disabled = cli(services, "disable", "rae@philia.test")
    assert disabled.returncode == 0, disabled.stderr
    assert "1 session(s) ended" in disabled.stdout
    assert "\tdisabled\t" in (await asyncio.to_thread(run, "list")).output
    # The open session is gone, and the password no longer opens a new one.
    assert (await web.get("/inbox")).status_code == 303
    assert (await login(web, "rae@philia.test", PASSWORD)).status_code == 401

    assert (await asyncio.to_thread(run, "enable", "rae@philia.test")).exit_code == 0
    assert (await login(web, "rae@philia.test", PASSWORD)).status_code == 303


def run(*args: str, stdin: str | None = None) -> Result:
    """The same command group in-process (each subprocess pays seconds of imports)."""
    return CliRunner().invoke(cli_app, ["staff", *args], input=stdin)


def test_the_password_is_asked_twice(committed_db: AsyncEngine) -> None:
    mismatch = run("create", "lou@philia.test", "--name", "Lou",
                   stdin=f"{PASSWORD}\nsomething else!\n{PASSWORD}\n{PASSWORD}\n")  # fmt: skip
    assert mismatch.exit_code == 0, mismatch.output
    assert "do not match" in mismatch.output
    assert "staff account created: lou@philia.test (Lou)" in mismatch.output


def test_bad_input_is_refused_with_one_line(committed_db: AsyncEngine) -> None:
    short = run("create", "sam@philia.test", "--name", "Sam", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1
    assert "at least 10 characters" in short.output
    email = run("create", "not-an-email", "--name", "Sam", "--password-stdin", stdin=PASSWORD)
    assert email.exit_code == 1 and "is not an email address" in email.output
    assert run("create", "sam@philia.test", "--name", "Sam", "--password-stdin",
               stdin=PASSWORD).exit_code == 0  # fmt: skip
    again = run("create", "SAM@philia.test", "--name", "Sam", "--password-stdin", stdin=PASSWORD)
    assert again.exit_code == 1 and "already has an account" in again.output
    missing = run("disable", "nobody@philia.test")
    assert missing.exit_code == 1 and "no account for nobody@philia.test" in missing.output


async def test_set_password_replaces_it_and_ends_sessions(
    committed_db: AsyncEngine, web: httpx.AsyncClient
) -> None:
    await add_staff(committed_db, "kim@philia.test", PASSWORD, name="Kim")
    assert (await login(web, "kim@philia.test", PASSWORD)).status_code == 303
    # The command runs its own event loop: off this test's loop, in a thread.
    changed = await asyncio.to_thread(
        run, "set-password", "kim@philia.test", "--password-stdin", stdin="a brand new one\n"
    )
    assert changed.exit_code == 0, changed.output
    assert "1 session(s) ended" in changed.output
    assert (await web.get("/inbox")).status_code == 303
    assert (await login(web, "kim@philia.test", PASSWORD)).status_code == 401
    assert (await login(web, "kim@philia.test", "a brand new one")).status_code == 303
