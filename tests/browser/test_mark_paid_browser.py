"""Staff in a real browser record a customer's payment for a held piece ("Mark paid" on the
conversation page): through the real stack the hold becomes a sale, the buyer is thanked
with the order number and the customer waiting for the piece is told it is gone, both
through the TikTok stand-in."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from app.sandbox.control import SandboxControl
from app.sandbox.stack import Stack
from tests.browser.conftest import Shots, log_in, needs_chromium, record_problems
from tests.browser.test_staff_browser import texts
from tests.e2e.conftest import eventually

pytestmark = [pytest.mark.e2e, needs_chromium]

BUYER = "browser-buyer-1"
WAITING = "browser-waiting-1"
SKU = "PT-1011"  # Vans Old Skool, available in the demo shop


async def test_mark_paid_turns_the_hold_into_a_sale_and_tells_everyone(
    shop: Stack, sandbox: SandboxControl, page: Page
) -> None:
    held = await sandbox.play_customer(BUYER, text=f"can you hold {SKU} for me?")
    buyer = held.conversation_id
    await eventually(
        lambda: texts(sandbox, buyer), lambda t: any("on hold for you" in (x or "") for x in t)
    )
    waits = await sandbox.play_customer(WAITING, text=f"waitlist {SKU} please")
    waiting = waits.conversation_id
    await eventually(
        lambda: texts(sandbox, waiting),
        lambda t: any("on the waitlist" in (x or "") for x in t),
    )
    problems = record_problems(page)
    shots = Shots(page, "mark-paid")
    await log_in(page, shop.api_url)

    row = page.locator("tr.conversation-row", has_text=f"customer_{BUYER[:12]}")
    await row.locator("a").click()
    await page.wait_for_url(re.compile(r"/inbox/\d+$"))
    hold = page.locator(f'li.hold[data-sku="{SKU}"]')
    await expect(hold).to_have_count(1)
    await expect(hold.locator("button")).to_have_text("Mark paid")
    await shots.take("hold-shown")

    await hold.locator("button").click()
    await page.wait_for_url(re.compile(r"/inbox/\d+$"))
    await expect(page.locator(f'li.hold[data-sku="{SKU}"]')).to_have_count(0)  # a sale now
    thanks = page.locator("#messages li.message", has_text="Payment received")
    await expect(thanks).to_have_count(1)
    await expect(thanks).to_contain_text(re.compile(r"order PH-\d{5}"))
    await expect(thanks).to_have_attribute("data-status", "sent")  # the live update
    await shots.take("sold")

    # Both went out through TikTok (the stand-in), once each.
    sent = await eventually(
        lambda: texts(sandbox, buyer), lambda t: any("Payment received" in (x or "") for x in t)
    )
    assert sum("Payment received" in (x or "") for x in sent) == 1
    told = await eventually(
        lambda: texts(sandbox, waiting), lambda t: any("it just sold" in (x or "") for x in t)
    )
    assert sum("it just sold" in (x or "") for x in told) == 1
    assert problems == []
