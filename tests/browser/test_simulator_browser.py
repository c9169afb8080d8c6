"""The customer simulator in a real browser, through the whole pipeline: the page asks the
sandbox to play the customer, the bot answers through the sandbox, the page shows it."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Page, expect
from prometheus_client.parser import text_string_to_metric_families

from app.sandbox.stack import Stack
from app.services import replies
from tests.browser.conftest import Shots, needs_chromium

pytestmark = [pytest.mark.e2e, needs_chromium]


async def test_hi_shows_the_menu_and_2_shows_new_drops_with_a_photo(
    shop: Stack, page: Page
) -> None:
    shots = Shots(page, "simulator")
    await page.goto(f"{shop.api_url}/simulator")
    user = page.locator("#user-id")
    await expect(user).to_have_value(
        re.compile(r"^sim-[0-9a-f]{8}$")
    )  # a random customer per browser
    await expect(page.locator("#no-sandbox")).to_have_count(0)
    # The shop's videos are offered for sharing.
    assert await page.locator("#video option").count() > 1
    await shots.take("empty")

    await page.fill("#text", "hi")
    await page.press("#text", "Enter")
    bot = page.locator("li.bubble.bot")
    await expect(bot.first).to_contain_text("2. New drops")
    await expect(bot).to_have_count(1)
    assert (await bot.first.inner_text()).strip() == replies.MENU.strip()
    await expect(page.locator("li.bubble.me")).to_have_text(["hi"])
    await shots.take("menu")

    await page.fill("#text", "2")
    await page.press("#text", "Enter")
    await expect(page.locator("li.bubble.bot", has_text="Fresh in")).to_have_count(1)
    photo = page.locator("li.bubble.bot img")
    await expect(photo.first).to_be_visible()
    # The bytes the bot uploaded to TikTok, decoded by the browser as a real picture (visible
    # is not loaded yet: decode() waits for the bytes, and fails on a broken image).
    loaded = await photo.first.evaluate("img => img.decode().then(() => img.naturalWidth > 0)")
    assert loaded
    src = await photo.first.get_attribute("src")
    assert src is not None and src.startswith("/simulator/media/")
    await shots.take("new-drops")

    # The same turns, seen from operations: the API counted the webhooks, and the worker's
    # counters (kept in Redis) reached the API's /metrics.
    async with httpx.AsyncClient() as http:
        page_text = (await http.get(f"{shop.api_url}/metrics")).text
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page_text)
        for s in family.samples
    }
    assert found[("philia_webhook_requests_total", (("status", "200"),))] >= 2
    turns = sum(v for (name, _), v in found.items() if name == "philia_messages_total")
    assert turns >= 2
    assert found[("philia_sends_total", (("result", "sent"),))] >= 3  # menu, drops, photo
