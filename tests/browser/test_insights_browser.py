"""/insights in a real browser over a seeded month (bench/traffic.py): the charts draw under
the page's content security policy, the date filter and a CSV link work. The screenshot is
the one the README shows (docs/insights.png is refreshed from test-artifacts by hand)."""

from __future__ import annotations

import asyncio
import re
from datetime import date

import pytest
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import create_async_engine

from app.sandbox.stack import Stack
from bench.traffic import month_of_traffic, write
from tests.browser.conftest import ARTIFACTS, Shots, log_in, needs_chromium, record_problems

pytestmark = [pytest.mark.e2e, needs_chromium]

FIRST = date(2026, 10, 1)


@pytest.fixture(scope="module")
def seeded(shop: Stack) -> Stack:
    async def _seed() -> None:
        engine = create_async_engine(shop.env["DATABASE_URL"])
        try:
            await write(engine, month_of_traffic(FIRST, days=30, per_day=60, seed=11))
        finally:
            await engine.dispose()

    asyncio.run(_seed())
    return shop


async def test_the_shop_reads_its_month_at_a_glance(seeded: Stack, page: Page) -> None:
    problems = record_problems(page)
    shots = Shots(page, "insights")
    await log_in(page, seeded.api_url)

    await page.click('nav a:has-text("Insights")')
    await page.wait_for_url(re.compile(r"/insights$"))
    await page.fill('input[name="from"]', "2026-10-01")
    await page.fill('input[name="to"]', "2026-10-30")
    await page.click('form.period button[type="submit"]')
    await page.wait_for_url(re.compile(r"from=2026-10-01&to=2026-10-30"))
    dms = int(await page.locator("#kpi-dms").inner_text())
    assert dms > 1000
    charts = page.locator("svg.chart")
    assert await charts.count() == 5
    for index in range(await charts.count()):
        box = await charts.nth(index).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 50
    bars = page.locator("#volume svg.chart").first.locator("rect")
    assert await bars.count() > 30  # a column per day, stacked by intent
    await expect(page.locator("#table-funnel")).to_contain_text("asked about a piece")
    await shots.take("month")
    # The top of the page, as the README shows it.
    await page.screenshot(
        path=str(ARTIFACTS / "insights-readme.png"),
        clip={"x": 0, "y": 0, "width": 1100, "height": 1180},
    )

    async with page.expect_download() as download:
        await page.locator("#table-funnel a.export").click()
    saved = await download.value
    assert saved.suggested_filename == "insights-funnel-2026-10-01-2026-10-30.csv"
    assert problems == []
