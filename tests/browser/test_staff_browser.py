"""Staff in a real browser: log in, find the customer who asked for a person, answer them
(the reply goes out through the TikTok stand-in), hand the conversation back to the bot."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from app.sandbox.control import SandboxControl
from app.sandbox.stack import Stack
from app.services import replies
from tests.browser.conftest import Shots, log_in, needs_chromium, record_problems
from tests.e2e.conftest import eventually
from tests.web.conftest import EMAIL, PASSWORD

pytestmark = [pytest.mark.e2e, needs_chromium]

USER_ID = "browser-staff-1"
STAFF_REPLY = "Hi! Ana from the shop here: the jacket is yours if you want it."


async def texts(sandbox: SandboxControl, conversation_id: str) -> list[str | None]:
    return [message.text for message in await sandbox.messages(conversation_id=conversation_id)]


async def test_staff_answers_a_customer_who_asked_for_a_person_then_hands_back(
    shop: Stack, sandbox: SandboxControl, page: Page
) -> None:
    asked = await sandbox.play_customer(USER_ID, text="3")
    conversation = asked.conversation_id
    await eventually(lambda: texts(sandbox, conversation), lambda t: replies.HANDOFF_CONFIRM in t)
    shots = Shots(page, "staff")

    await page.goto(f"{shop.api_url}/inbox")
    await page.wait_for_url(re.compile(r"/login"))  # no session: sent to the login page
    await page.fill('input[name="email"]', EMAIL)
    await page.fill('input[name="password"]', PASSWORD)
    await shots.take("login")
    await page.click('button:has-text("Log in")')
    await page.wait_for_url(re.compile(r"/inbox$"))

    row = page.locator("tr.conversation-row", has_text=f"customer_{USER_ID[:12]}")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("needs a person")
    await expect(row).to_contain_text(replies.HANDOFF_CONFIRM)  # the last message
    await shots.take("inbox-needs-a-person")

    await row.locator("a").click()
    await page.wait_for_url(re.compile(r"/inbox/\d+$"))
    await expect(page.locator("#mode")).to_have_attribute("data-mode", "human")
    await expect(page.locator("#messages")).to_contain_text(replies.HANDOFF_CONFIRM)
    await shots.take("conversation")

    await page.fill('#reply-form textarea[name="text"]', STAFF_REPLY)
    await page.click('#reply-form button[type="submit"]')
    await expect(page.locator("#messages")).to_contain_text(STAFF_REPLY)
    # The reply really went out: TikTok (the sandbox) recorded it, once.
    sent = await eventually(lambda: texts(sandbox, conversation), lambda t: STAFF_REPLY in t)
    assert sent.count(STAFF_REPLY) == 1
    # The page's live update shows the send confirmed (the status comes from the worker).
    mine = page.locator("#messages li.message", has_text=STAFF_REPLY)
    await expect(mine).to_have_attribute("data-status", "sent")
    await expect(page.locator("#mode")).to_have_attribute("data-mode", "human")
    await shots.take("replied")

    await page.click('button:has-text("Hand back to the bot")')
    await page.wait_for_url(re.compile(r"/inbox$"))
    await expect(row).to_contain_text("bot")
    await expect(row).not_to_contain_text("needs a person")
    await shots.take("handed-back")

    # The bot is back: the customer's next message gets the menu.
    await sandbox.play_customer(USER_ID, text="hi")
    await eventually(lambda: texts(sandbox, conversation), lambda t: replies.MENU in t)


async def test_every_staff_page_runs_under_its_content_security_policy(
    shop: Stack, page: Page
) -> None:
    """The CSP headers must not break the pages: no violation and no script error on the
    inbox, the admin's list, edit and create pages, or the simulator."""
    problems = record_problems(page)
    shots = Shots(page, "csp")
    await log_in(page, shop.api_url)

    await page.goto(f"{shop.api_url}/admin/item/list")
    await expect(page.locator("table")).to_contain_text("PT-")
    await shots.take("admin-items")
    await page.locator("table a[href*='/admin/item/edit/']").first.click()
    await page.wait_for_url(re.compile(r"/admin/item/edit/"))
    assert await page.evaluate("typeof window.jQuery") == "function"
    # Saving needs the CSRF token that admin-csrf.js adds: proof that our script ran.
    title = page.locator('input[name="title"]')
    renamed = f"{await title.input_value()} (checked)"
    await title.fill(renamed)
    await shots.take("admin-item-edit")
    await page.locator('form button[type="submit"], form input[type="submit"]').first.click()
    await page.wait_for_url(re.compile(r"/admin/item/(list|details)"))
    await page.goto(f"{shop.api_url}/admin/item/list?search=checked")
    await expect(page.locator("table")).to_contain_text(renamed)
    await page.goto(f"{shop.api_url}/admin/item/create")
    await expect(page.locator('input[name="title"]')).to_be_visible()
    await page.goto(f"{shop.api_url}/simulator")
    await expect(page.locator("body")).to_be_visible()
    await page.wait_for_timeout(500)  # let the simulator's first poll run
    await shots.take("simulator")
    assert problems == []
