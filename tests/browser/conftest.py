"""Browser tests: Debian's chromium driven by Playwright (async API: pytest-asyncio runs
the tests on an event loop, where Playwright's sync API refuses to work) against the real
stack of tests/e2e (API, worker, sandbox processes), with the demo shop and one staff
account loaded. Screenshots of every step land in test-artifacts/browser/."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.core.config import PROJECT_ROOT
from app.sandbox.stack import Stack
from app.services.shop.demo import load_demo_shop
from app.services.staff.auth import Passwords, create_account
from tests.e2e.conftest import sandbox, stack  # noqa: F401  (the e2e stack, reused)
from tests.web.conftest import CHEAP_HASHER, EMAIL, PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Playwright's own browser download cannot work here: Debian's package is the browser.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (/usr/bin/chromium; apt-get install chromium)",
)


@pytest.fixture(scope="module")
def shop(stack: Stack) -> Stack:  # noqa: F811
    """The demo catalogue (items with photos and videos) and a staff account."""

    async def _load() -> None:
        engine = create_async_engine(stack.env["DATABASE_URL"])
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                async with session.begin():
                    await load_demo_shop(session)
                async with session.begin():
                    # Cheap argon2 parameters: the API verifies with those stored in the hash.
                    await create_account(session, Passwords(CHEAP_HASHER), EMAIL, "Ana", PASSWORD)
        finally:
            await engine.dispose()

    asyncio.run(_load())
    return stack


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    opened = await context.new_page()
    opened.set_default_timeout(20_000)
    try:
        yield opened
    finally:
        await context.close()


class Shots:
    """Numbered screenshots of one test's steps."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name
        self.step = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    async def take(self, label: str) -> Path:
        self.step += 1
        path = ARTIFACTS / f"{self.name}-{self.step:02d}-{label}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


def record_problems(page: Page) -> list[str]:
    """Console errors, CSP violations and script errors the page reports from now on."""
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(f"{message.text} at {message.location['url']}")
            if message.type == "error" or "Content Security Policy" in message.text
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


async def log_in(page: Page, api_url: str) -> None:
    await page.goto(f"{api_url}/login")
    await page.fill('input[name="email"]', EMAIL)
    await page.fill('input[name="password"]', PASSWORD)
    await page.click('button:has-text("Log in")')
    await page.wait_for_url(re.compile(r"/inbox$"))
