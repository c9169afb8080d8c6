"""The inbox: order by urgency, replies through the outbox, hand-back, live updates."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import (
    Conversation,
    Customer,
    Hold,
    Item,
    Message,
    Order,
    OutboxEntry,
    StaffUser,
)
from app.services.shop.catalog_io import import_catalog
from tests.web.conftest import add_conversation, csrf_in, page_csrf, place_hold_for

_ROW = re.compile(r'<tr class="conversation-row mode-(\w+)" data-conversation-id="(\d+)">')
SCRIPT = {"X-Requested-With": "fetch"}


async def outbound(engine: AsyncEngine, conversation_id: int) -> list[tuple[Message, OutboxEntry]]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            select(Message, OutboxEntry)
            .join(OutboxEntry, OutboxEntry.message_id == Message.id)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id)
        )
        return [(row[0], row[1]) for row in rows.all()]


async def conversation_row(engine: AsyncEngine, conversation_id: int) -> Conversation:
    async with AsyncSession(engine) as session:
        return await session.get_one(Conversation, conversation_id)


async def queued_sends(redis: aioredis.Redis) -> list[dict[str, object]]:
    raw_tasks: list[bytes] = await redis.lrange("sends", 0, -1)  # type: ignore[misc]
    return [orjson.loads(raw) for raw in raw_tasks]


async def test_people_first_then_the_window_closing_soonest(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    bot_open = await add_conversation(
        committed_db, redis_client, "bot_open", mode="bot", window_left=timedelta(hours=1)
    )
    human_late = await add_conversation(
        committed_db, redis_client, "human_late", window_left=timedelta(hours=40)
    )
    human_soon = await add_conversation(
        committed_db,
        redis_client,
        "human_soon",
        window_left=timedelta(hours=2, minutes=30),
        replies_used=3,
        messages=[("inbound", "my parcel arrived damaged"), ("outbound", "A person will help")],
    )
    human_closed = await add_conversation(
        committed_db, redis_client, "human_closed", window_left=None
    )
    bot_closed = await add_conversation(
        committed_db, redis_client, "bot_closed", mode="bot", window_left=None
    )
    page = await signed_in.get("/inbox")
    assert page.status_code == 200
    order = [int(found[1]) for found in _ROW.findall(page.text)]
    assert order == [
        human_soon.conversation_id,
        human_late.conversation_id,
        human_closed.conversation_id,
        bot_open.conversation_id,
        bot_closed.conversation_id,
    ]
    first_row = page.text[page.text.index(f'data-conversation-id="{human_soon.conversation_id}"') :]
    first_row = first_row[: first_row.index("</tr>")]
    assert "human_soon" in first_row and "needs a person" in first_row
    assert re.search(r">2 h (29|30) min<", first_row)  # the window countdown
    assert '<td class="quota">7</td>' in first_row  # 10 replies per window, 3 used
    assert "A person will help" in first_row  # the last message, with its author
    # The rows fragment the page refreshes itself with has the same order.
    rows = await signed_in.get("/inbox/rows", headers=SCRIPT)
    assert [int(found[1]) for found in _ROW.findall(rows.text)] == order


async def test_a_staff_reply_goes_through_the_outbox_and_the_sends_queue(
    signed_in: httpx.AsyncClient,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    staff: StaffUser,
) -> None:
    thread = await add_conversation(committed_db, redis_client, "mia")
    before = (await conversation_row(committed_db, thread.conversation_id)).human_since
    csrf = await page_csrf(signed_in, f"/inbox/{thread.conversation_id}")
    response = await signed_in.post(
        f"/inbox/{thread.conversation_id}/reply",
        data={"csrf_token": csrf, "text": "  Hi Mia! So sorry, sending a new one today.  "},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/inbox/{thread.conversation_id}"
    [(message, entry)] = await outbound(committed_db, thread.conversation_id)
    assert message.text == "Hi Mia! So sorry, sending a new one today."
    assert message.sent_by == "staff"
    assert message.status == "pending" and entry.status == "pending"
    assert message.payload == {"staff_id": staff.id, "staff_name": "Ana"}
    # Handed to the delivery worker only after the commit, on its own queue.
    [task] = await queued_sends(redis_client)
    assert task["headers"]["task"] == "philia.deliver_outbox"  # type: ignore[index]
    assert f"[{entry.id}]" in str(task["headers"]["argsrepr"])  # type: ignore[index]
    conversation = await conversation_row(committed_db, thread.conversation_id)
    assert conversation.mode == "human"
    assert before is not None and conversation.human_since is not None
    assert conversation.human_since > before  # inactivity counts from the staff reply
    page = await signed_in.get(f"/inbox/{thread.conversation_id}")
    assert "Hi Mia! So sorry" in page.text and "pending" in page.text


async def test_replying_in_a_bot_conversation_takes_it_over(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    thread = await add_conversation(committed_db, redis_client, "leo", mode="bot")
    csrf = await page_csrf(signed_in, f"/inbox/{thread.conversation_id}")
    response = await signed_in.post(
        f"/inbox/{thread.conversation_id}/reply",
        data={"csrf_token": csrf, "text": "Jumping in here!"},
        headers=SCRIPT,
    )
    assert response.status_code == 202
    assert len(response.json()["outbox_ids"]) == 1
    conversation = await conversation_row(committed_db, thread.conversation_id)
    assert conversation.mode == "human" and conversation.human_since is not None


@pytest.mark.parametrize(
    ("window_left", "replies_used", "pending", "code", "words"),
    [
        pytest.param(None, 0, 0, "window_closed", "window is closed", id="window-closed"),
        pytest.param(timedelta(hours=5), 10, 0, "quota_spent", "quota is spent", id="quota"),
        pytest.param(
            timedelta(hours=5), 9, 1, "quota_spent", "1 more queued", id="quota-with-queued"
        ),
    ],
)
async def test_a_reply_that_cannot_be_delivered_is_refused_clearly(
    signed_in: httpx.AsyncClient,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    window_left: timedelta | None,
    replies_used: int,
    pending: int,
    code: str,
    words: str,
) -> None:
    thread = await add_conversation(
        committed_db, redis_client, "zoe", window_left=window_left, replies_used=replies_used
    )
    csrf = await page_csrf(signed_in, f"/inbox/{thread.conversation_id}")
    url = f"/inbox/{thread.conversation_id}/reply"
    for _ in range(pending):  # a bot reply still in the outbox takes the last slot
        async with AsyncSession(committed_db) as session, session.begin():
            message = Message(
                conversation_id=thread.conversation_id,
                direction="outbound",
                message_type="text",
                text="queued bot answer",
                payload={},
                entities={},
                status="pending",
                sent_by="bot",
            )
            session.add(message)
            await session.flush()
            session.add(OutboxEntry(message_id=message.id, status="pending", attempts=0))
    before = len(await outbound(committed_db, thread.conversation_id))
    page = await signed_in.post(url, data={"csrf_token": csrf, "text": "Are you still there?"})
    assert page.status_code == 409
    assert words in page.text and "Not sent" in page.text
    assert "Are you still there?" in page.text  # the draft is kept
    script = await signed_in.post(
        url, data={"csrf_token": csrf, "text": "Are you still there?"}, headers=SCRIPT
    )
    assert script.status_code == 409
    assert script.json()["error"] == code
    assert len(await outbound(committed_db, thread.conversation_id)) == before
    assert await queued_sends(redis_client) == []


async def test_an_empty_reply_is_refused(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    thread = await add_conversation(committed_db, redis_client, "ivy")
    csrf = await page_csrf(signed_in, f"/inbox/{thread.conversation_id}")
    response = await signed_in.post(
        f"/inbox/{thread.conversation_id}/reply", data={"csrf_token": csrf, "text": "   "}
    )
    assert response.status_code == 400
    assert "Write a message first." in response.text
    assert await outbound(committed_db, thread.conversation_id) == []


@pytest.mark.parametrize(
    ("path", "data"),
    [
        pytest.param("reply", {"text": "hello"}, id="reply"),
        pytest.param("hand-back", {}, id="hand-back"),
        pytest.param("take-over", {}, id="take-over"),
    ],
)
async def test_posts_without_the_right_csrf_token_are_refused(
    signed_in: httpx.AsyncClient,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    path: str,
    data: dict[str, str],
) -> None:
    thread = await add_conversation(committed_db, redis_client, "kai", mode="human")
    url = f"/inbox/{thread.conversation_id}/{path}"
    assert (await signed_in.post(url, data=data)).status_code == 403
    forged = await signed_in.post(url, data={**data, "csrf_token": "forged" * 8})
    assert forged.status_code == 403
    header = await signed_in.post(url, data=data, headers={**SCRIPT, "X-CSRF-Token": "forged"})
    assert header.status_code == 403
    assert await outbound(committed_db, thread.conversation_id) == []
    conversation = await conversation_row(committed_db, thread.conversation_id)
    assert conversation.mode == "human"


async def test_the_csrf_token_may_come_in_a_header(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    thread = await add_conversation(committed_db, redis_client, "noa")
    csrf = await page_csrf(signed_in, f"/inbox/{thread.conversation_id}")
    response = await signed_in.post(
        f"/inbox/{thread.conversation_id}/reply",
        data={"text": "hello from a script"},
        headers={**SCRIPT, "X-CSRF-Token": csrf},
    )
    assert response.status_code == 202


async def test_hand_back_and_take_over(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    thread = await add_conversation(committed_db, redis_client, "eli")
    csrf = await page_csrf(signed_in, f"/inbox/{thread.conversation_id}")
    page = await signed_in.get(f"/inbox/{thread.conversation_id}")
    assert "Hand back to the bot" in page.text
    response = await signed_in.post(
        f"/inbox/{thread.conversation_id}/hand-back", data={"csrf_token": csrf}
    )
    assert response.status_code == 303 and response.headers["location"] == "/inbox"
    conversation = await conversation_row(committed_db, thread.conversation_id)
    assert conversation.mode == "bot" and conversation.human_since is None
    response = await signed_in.post(
        f"/inbox/{thread.conversation_id}/take-over", data={"csrf_token": csrf}
    )
    assert response.status_code == 303
    conversation = await conversation_row(committed_db, thread.conversation_id)
    assert conversation.mode == "human" and conversation.human_since is not None


async def test_the_poll_returns_new_messages_and_status_changes(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    thread = await add_conversation(
        committed_db,
        redis_client,
        "max",
        replies_used=2,
        messages=[("inbound", "hi"), ("outbound", "Hey! 1. Order status 2. New drops")],
    )
    url = f"/inbox/{thread.conversation_id}/messages"
    first = (await signed_in.get(url, headers=SCRIPT)).json()
    assert [m["text"] for m in first["messages"]] == ["hi", "Hey! 1. Order status 2. New drops"]
    assert [m["author"] for m in first["messages"]] == ["customer", "bot"]
    assert first["mode"] == "human"
    assert first["window"]["open"] is True and first["window"]["replies_left"] == 8
    last_id = first["messages"][-1]["id"]
    assert (await signed_in.get(url, params={"after": last_id})).json()["messages"] == []

    async with AsyncSession(committed_db) as session, session.begin():
        session.add(
            Message(
                conversation_id=thread.conversation_id,
                direction="inbound",
                message_type="text",
                text="is <b>PT-0142</b> still there?",
                payload={},
                entities={},
                status="processed",
            )
        )
    fresh = (await signed_in.get(url, params={"after": last_id})).json()["messages"]
    assert [m["text"] for m in fresh] == ["is <b>PT-0142</b> still there?"]

    # A reply queued from the page comes back with its new status once delivered.
    csrf = await page_csrf(signed_in, f"/inbox/{thread.conversation_id}")
    await signed_in.post(
        f"/inbox/{thread.conversation_id}/reply", data={"csrf_token": csrf, "text": "Yes!"}
    )
    [*_, (message, _entry)] = await outbound(committed_db, thread.conversation_id)
    async with AsyncSession(committed_db) as session, session.begin():
        (await session.get_one(Message, message.id)).status = "sent"
    updated = (await signed_in.get(url, params={"after": message.id - 1})).json()
    assert [(m["text"], m["status"], m["author"]) for m in updated["messages"]] == [
        ("Yes!", "sent", "Ana")
    ]


async def test_customer_text_is_escaped_on_the_pages(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    thread = await add_conversation(
        committed_db,
        redis_client,
        "eve",
        messages=[("inbound", "<script>alert('hi')</script>")],
    )
    for path in ("/inbox", f"/inbox/{thread.conversation_id}"):
        page = await signed_in.get(path)
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;alert" in page.text


async def test_an_unknown_conversation_is_not_found(signed_in: httpx.AsyncClient) -> None:
    assert (await signed_in.get("/inbox/999999")).status_code == 404
    poll = await signed_in.get("/inbox/999999/messages", headers=SCRIPT)
    assert poll.status_code == 404 and poll.json()["error"] == "not_found"


async def test_the_window_closing_shows_on_the_conversation(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, redis_client: aioredis.Redis
) -> None:
    thread = await add_conversation(committed_db, redis_client, "ola", window_left=None)
    page = await signed_in.get(f"/inbox/{thread.conversation_id}")
    assert "The reply window is closed" in page.text
    assert '<span id="replies-left">0</span>' in page.text
    poll = (await signed_in.get(f"/inbox/{thread.conversation_id}/messages")).json()
    assert poll["window"]["open"] is False and poll["window"]["label"] == "closed"


async def test_mark_paid_on_a_hold_records_the_order_and_sells_the_piece(
    signed_in: httpx.AsyncClient,
    committed_db: AsyncEngine,
    redis_client: aioredis.Redis,
    shared_dir: Path,
) -> None:
    thread = await add_conversation(committed_db, redis_client, "nia", mode="human")
    async with AsyncSession(committed_db) as session, session.begin():
        await import_catalog(session, (shared_dir / "data" / "catalog.csv").read_text("utf-8"))
    hold_id = await place_hold_for(committed_db, thread.user_id, "PT-0006")
    page = await signed_in.get(f"/inbox/{thread.conversation_id}")
    assert "On hold for this customer" in page.text and "PT-0006" in page.text
    action = f"/inbox/{thread.conversation_id}/holds/{hold_id}/paid"
    assert f'action="{action}"' in page.text
    csrf = csrf_in(page.text)

    response = await signed_in.post(action, data={"csrf_token": csrf})
    assert response.status_code == 303
    async with AsyncSession(committed_db) as session:
        hold = await session.get_one(Hold, hold_id)
        order = await session.get_one(Order, hold.order_id)
        piece = await session.get_one(Item, hold.item_id)
        buyer = await session.get_one(Customer, order.customer_id)
    assert hold.status == "converted" and piece.status == "sold"
    assert order.status == "paid" and buyer.tiktok_user_id == thread.user_id
    ((message, entry),) = [
        pair
        for pair in await outbound(committed_db, thread.conversation_id)
        if pair[0].proactive_kind
    ]
    assert message.proactive_kind == "sale_confirmation" and order.order_number in (
        message.text or ""
    )
    [task] = await queued_sends(redis_client)  # enqueued for the sends worker, after commit
    assert task["headers"]["task"] == "philia.deliver_outbox"  # type: ignore[index]
    assert f"[{entry.id}]" in str(task["headers"]["argsrepr"])  # type: ignore[index]
    assert entry.status == "pending"
    page = await signed_in.get(f"/inbox/{thread.conversation_id}")
    assert "On hold for this customer" not in page.text

    again = await signed_in.post(action, data={"csrf_token": csrf}, headers=SCRIPT)
    assert again.status_code == 409 and again.json()["error"] == "hold_not_active"
