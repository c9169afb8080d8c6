"""The sandbox's control API: recordings, injected failures, and playing customers."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from app.sandbox.control import SandboxControl
from app.sandbox.server import free_port
from app.sandbox.tiktok import RandomFaults, conversation_id_for
from app.services.tiktok.webhook import EventType, event_id_for, parse_content, parse_envelope
from tests.sandbox.conftest import ACCESS_TOKEN, BUSINESS_ID, CLIENT_KEY, Receiver

AUTH = {"Access-Token": ACCESS_TOKEN}


async def _send(api: httpx.AsyncClient, conversation_id: str, body: str = "hi") -> Any:
    payload = {
        "business_id": BUSINESS_ID,
        "recipient_type": "CONVERSATION",
        "recipient": conversation_id,
        "message_type": "TEXT",
        "text": {"body": body},
    }
    return await api.post("/business/message/send/", json=payload, headers=AUTH)


# -- recordings -----------------------------------------------------------------------------


async def test_messages_filter_by_conversation_and_time(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    await _send(api, "conv-a", "one")
    await _send(api, "conv-b", "two")
    middle = time.time()
    await _send(api, "conv-a", "three")

    assert [m.text for m in await control.messages()] == ["one", "two", "three"]
    assert [m.text for m in await control.messages(conversation_id="conv-a")] == ["one", "three"]
    assert [m.text for m in await control.messages(since=middle)] == ["three"]
    assert [m.seq for m in await control.messages()] == [1, 2, 3]


async def test_the_tally_counts_messages_and_their_conversations(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    assert (await control.tally()).model_dump() == {"messages": 0, "conversations": 0}
    await _send(api, "conv-a", "one")
    await _send(api, "conv-b", "two")
    await _send(api, "conv-a", "three")

    assert (await control.tally()).model_dump() == {"messages": 3, "conversations": 2}
    await control.reset()
    assert (await control.tally()).messages == 0


async def test_a_waiting_tally_answers_once_enough_conversations_have_a_message(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    waiting = asyncio.create_task(control.tally(until_conversations=2, wait_seconds=15))
    await _send(api, "conv-a", "one")
    await _send(api, "conv-a", "two")
    await asyncio.sleep(0.05)
    assert not waiting.done()  # two messages, one conversation
    await _send(api, "conv-b", "three")

    assert (await waiting).model_dump() == {"messages": 3, "conversations": 2}
    assert await control.until_conversations(2, limit_seconds=5) >= 0


async def test_a_waiting_tally_gives_the_counts_so_far_when_its_wait_is_over(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    await _send(api, "conv-a", "one")

    tally = await control.tally(until_conversations=3, wait_seconds=0.2)
    assert tally.model_dump() == {"messages": 1, "conversations": 1}
    with pytest.raises(TimeoutError):
        await control.until_conversations(3, limit_seconds=0.3)
    async with httpx.AsyncClient(base_url=control.base_url) as raw:
        over_the_cap = await raw.get(
            "/_sandbox/messages/tally", params={"until_conversations": 1, "wait_seconds": 60}
        )
    assert over_the_cap.status_code == 422


async def test_calls_record_every_attempt(api: httpx.AsyncClient, control: SandboxControl) -> None:
    await _send(api, "conv-a")
    await api.post("/business/message/send/", json={}, headers={})
    await api.get("/business/message/capabilities/get/", headers=AUTH)

    calls = await control.calls()
    assert [(c.endpoint, c.code) for c in calls] == [
        ("send", 0),
        ("send", 40105),
        ("capabilities", 40001),
    ]
    assert calls[0].path == "/open_api/v1.3/business/message/send/"
    assert [c.endpoint for c in await control.calls(endpoints=["capabilities"])] == ["capabilities"]
    assert calls == sorted(calls, key=lambda c: c.received_at)


async def test_reset_forgets_everything(api: httpx.AsyncClient, control: SandboxControl) -> None:
    await _send(api, "conv-a")
    await control.fail_next(3, "http_500")
    await control.set_image_send(False)
    await control.configure(webhook_url=None, echo_sends=True)

    await control.reset()

    assert await control.messages() == []
    assert await control.calls() == []
    assert (await control.pending_failures()).pending == []
    assert (await control.set_image_send(True)).overrides == {}
    config = await control.configure()
    assert config.webhook_url is not None and config.echo_sends is False


# -- injected failures ----------------------------------------------------------------------


async def test_failures_apply_in_order_then_stop(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    await control.fail_next(2, "http_500")
    view = await control.fail_next(1, "code_40064")
    assert [(rule.kind, rule.remaining) for rule in view.pending] == [
        ("http_500", 2),
        ("code_40064", 1),
    ]

    results = []
    for _ in range(4):
        response = await _send(api, "conv-a")
        code = response.json()["code"] if response.status_code == 200 else None
        results.append((response.status_code, code))

    assert results == [(500, None), (500, None), (200, 40064), (200, 0)]
    assert [c.injected for c in await control.calls()] == [
        "http_500",
        "http_500",
        "code_40064",
        None,
    ]
    assert len(await control.messages()) == 1


async def test_failures_can_target_one_endpoint(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    await control.fail_next(1, "code_40100", endpoints=["capabilities"])

    assert (await _send(api, "conv-a")).json()["code"] == 0
    capabilities = await api.get(
        "/business/message/capabilities/get/",
        params={
            "business_id": BUSINESS_ID,
            "conversation_id": "c",
            "capability_types": '["IMAGE_SEND"]',
        },
        headers=AUTH,
    )
    assert capabilities.json()["code"] == 40100


async def test_injected_40105_does_not_touch_the_tokens(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    await control.fail_next(1, "code_40105")
    assert (await _send(api, "conv-a")).json()["code"] == 40105
    assert (await _send(api, "conv-a")).json()["code"] == 0


async def test_delay_answers_late_but_answers(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    await control.fail_next(1, "delay", seconds=0.4)
    started = time.monotonic()

    response = await _send(api, "conv-a")

    assert time.monotonic() - started >= 0.4
    assert response.json()["code"] == 0


@pytest.mark.parametrize("kind", ["boom", "http_200", "code_1", "delay"])
async def test_nonsense_failures_are_refused(control: SandboxControl, kind: str) -> None:
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await control.fail_next(1, kind)
    assert caught.value.response.status_code == 422


async def test_clear_failures(api: httpx.AsyncClient, control: SandboxControl) -> None:
    await control.fail_next(5, "http_503")
    await control.clear_failures()
    assert (await _send(api, "conv-a")).json()["code"] == 0


# -- playing customers ----------------------------------------------------------------------


def _content(body: bytes) -> dict[str, Any]:
    envelope = json.loads(body)
    assert isinstance(envelope["content"], str)  # a JSON document inside a string
    content: dict[str, Any] = json.loads(envelope["content"])
    return content


async def test_customer_text_arrives_signed_in_tiktoks_shape(
    control: SandboxControl, receiver: Receiver
) -> None:
    before_ms = int(time.time() * 1000)

    result = await control.play_customer("+ZMM6user/1", text="is PT-0142 still available?")

    assert result.bot_status == 200
    assert receiver.rejected == []
    [body] = receiver.bodies
    assert body.decode() == result.body
    envelope = json.loads(body)
    assert set(envelope) == {"client_key", "event", "create_time", "user_openid", "content"}
    assert (envelope["client_key"], envelope["event"], envelope["user_openid"]) == (
        CLIENT_KEY,
        "im_receive_msg",
        BUSINESS_ID,
    )
    content = _content(body)
    assert before_ms <= content["timestamp"] <= int(time.time() * 1000)  # milliseconds
    assert envelope["create_time"] == content["timestamp"] // 1000  # seconds
    assert content["type"] == "text" and content["text"] == {"body": "is PT-0142 still available?"}
    assert content["conversation_id"] == result.conversation_id
    assert content["message_id"] == result.message_id
    assert content["from_user"] == {"id": "+ZMM6user/1", "role": "personal_account"}
    assert content["to_user"] == {"id": BUSINESS_ID, "role": "business_account"}
    assert {"from", "to", "unique_identifier"} <= set(content)
    # The bot's own parser reads it.
    parsed = parse_content(parse_envelope(body))
    assert parsed.text is not None and parsed.text.body == "is PT-0142 still available?"
    assert event_id_for(body, parsed) == result.message_id


async def test_conversation_is_stable_per_customer_and_ids_are_unique(
    control: SandboxControl, receiver: Receiver
) -> None:
    first = await control.play_customer("user-1", text="hi")
    second = await control.play_customer("user-1", text="hello?")
    other = await control.play_customer("user-2", text="hey")
    chosen = await control.play_customer("user-3", text="hey", conversation_id="my-conv==")

    assert first.conversation_id == second.conversation_id != other.conversation_id
    assert first.conversation_id == conversation_id_for("user-1", BUSINESS_ID)
    assert first.message_id != second.message_id
    assert chosen.conversation_id == "my-conv=="
    assert len(receiver.bodies) == 4


async def test_share_post_and_image_shapes(control: SandboxControl, receiver: Receiver) -> None:
    await control.play_customer("user-1", share_post_video_id="7301234567890")
    await control.play_customer("user-1", image=True)
    await control.play_customer("user-1", image_media_id="img-42", referenced_message_id="m-1")

    share, image, given = (_content(body) for body in receiver.bodies)
    assert share["type"] == "share_post"
    assert share["share_post"]["video_id"] == "7301234567890"
    assert share["share_post"]["embed_url"].endswith("/7301234567890")
    assert image["type"] == "image" and image["image"]["media_id"]
    assert given["image"] == {"media_id": "img-42"}
    assert given["referenced_message_info"] == {"referenced_message_id": "m-1"}


async def test_customer_message_needs_exactly_one_kind(control: SandboxControl) -> None:
    for kwargs in ({}, {"text": "hi", "image": True}):
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await control.play_customer("user-1", **kwargs)  # type: ignore[arg-type]
        assert caught.value.response.status_code == 422


async def test_duplicate_deliveries_are_identical_and_concurrent(
    control: SandboxControl, receiver: Receiver
) -> None:
    result = await control.play_customer("user-1", text="hold it please", copies=6)

    assert [d.status for d in result.deliveries] == [200] * 6
    assert len(receiver.bodies) == 6 and len(set(receiver.bodies)) == 1
    # A redelivery hours later: same message id, new signature.
    again = await control.play_customer(
        "user-1", text="hold it please", message_id=result.message_id
    )
    assert again.message_id == result.message_id
    assert _content(receiver.bodies[-1])["message_id"] == result.message_id


async def test_the_bots_answer_is_reported(control: SandboxControl, receiver: Receiver) -> None:
    receiver.status = 503
    result = await control.play_customer("user-1", text="hi", copies=2)
    assert [d.status for d in result.deliveries] == [503, 503]
    assert result.bot_status == 503


async def test_unreachable_or_missing_webhook(control: SandboxControl) -> None:
    await control.configure(webhook_url=f"http://127.0.0.1:{free_port()}/webhook/tiktok")
    result = await control.play_customer("user-1", text="hi")
    assert result.bot_status is None
    assert result.deliveries[0].error

    await control.configure(webhook_url=None)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await control.play_customer("user-1", text="hi")
    assert caught.value.response.status_code == 409


async def test_staff_typing_in_the_app_is_echoed(
    control: SandboxControl, receiver: Receiver
) -> None:
    customer = await control.play_customer("user-1", text="real person please")

    echo = await control.play_staff(customer.conversation_id, "Hi, Mia here!")

    assert echo.event == EventType.SEND
    content = _content(receiver.bodies[-1])
    assert json.loads(receiver.bodies[-1])["event"] == "im_send_msg"
    assert content["from_user"] == {"id": BUSINESS_ID, "role": "business_account"}
    assert content["to_user"] == {"id": "user-1", "role": "personal_account"}
    assert content["text"] == {"body": "Hi, Mia here!"}
    [recorded] = await control.messages()
    assert (recorded.source, recorded.message_id) == ("app", echo.message_id)


async def test_api_sends_are_echoed_when_asked(
    api: httpx.AsyncClient, control: SandboxControl, receiver: Receiver
) -> None:
    customer = await control.play_customer("user-1", text="hi")
    await control.configure(echo_sends=True)

    sent = (await _send(api, customer.conversation_id, "Hey! 👋")).json()

    message_id = sent["data"]["message"]["message_id"]
    for _ in range(100):
        if len(receiver.bodies) == 2:
            break
        await asyncio.sleep(0.02)
    echo = _content(receiver.bodies[-1])
    assert json.loads(receiver.bodies[-1])["event"] == "im_send_msg"
    assert (echo["message_id"], echo["text"]) == (message_id, {"body": "Hey! 👋"})


async def test_window_and_quota_are_tracked(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    first = await control.play_customer("user-1", text="hi")
    open_conv = first.conversation_id
    stale_ms = int((time.time() - 49 * 3600) * 1000)
    stale = await control.play_customer("user-2", text="hi", timestamp_ms=stale_ms)

    for _ in range(2):
        await _send(api, open_conv)
    await _send(api, stale.conversation_id)
    await _send(api, "never-wrote")
    # A redelivery of the first message is not a new message: the quota runs on.
    await control.play_customer("user-1", text="hi", message_id=first.message_id)
    await _send(api, open_conv)
    await control.play_customer("user-1", text="one more thing")
    await _send(api, open_conv)

    summary = [
        (m.conversation_id, m.within_window, m.reply_number) for m in await control.messages()
    ]
    assert summary == [
        (open_conv, True, 1),
        (open_conv, True, 2),
        (stale.conversation_id, False, 1),
        ("never-wrote", None, 1),
        (open_conv, True, 3),
        (open_conv, True, 1),  # a new customer message resets the quota
    ]


# -- random faults and redelivery -----------------------------------------------------------


async def test_random_faults_fail_refuse_in_bursts_and_clear(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    await control.set_random_faults(
        RandomFaults(too_fast_burst_rate=1.0, too_fast_burst_length=3, endpoints=["send"], seed=7)
    )
    codes = [(await _send(api, "conv-a")).json()["code"] for _ in range(3)]
    assert codes == [40064, 40064, 40064]
    # Capabilities are not in `endpoints`: untouched.
    capabilities = await api.get("/business/message/capabilities/get/", headers=AUTH)
    assert capabilities.json()["code"] != 40064

    await control.set_random_faults(RandomFaults(http_5xx_rate=1.0, seed=7))
    statuses = {(await _send(api, "conv-a")).status_code for _ in range(10)}
    assert statuses <= {500, 502, 503, 504} and len(statuses) > 1
    view = await control.random_faults()
    assert sum(view.injected.values()) == 10 and view.faults is not None

    await control.clear_random_faults()
    assert (await _send(api, "conv-a")).json()["code"] == 0
    assert [m.text for m in await control.messages()] == ["hi"]  # failed sends left no message


async def test_random_faults_are_a_fraction_and_repeatable_with_a_seed(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    async def run() -> list[int]:
        await control.set_random_faults(RandomFaults(http_5xx_rate=0.3, seed=42))
        return [(await _send(api, "conv-a")).status_code for _ in range(200)]

    first, second = await run(), await run()
    assert first == second
    failed = sum(1 for status in first if status != 200)
    assert 30 <= failed <= 90  # 30 % of 200, with room for chance


async def test_unacknowledged_webhooks_are_delivered_again(
    control: SandboxControl, receiver: Receiver
) -> None:
    await control.configure(webhook_redelivery_seconds=10)
    receiver.status = 503
    result = await control.play_customer("user-1", text="hi")
    assert result.bot_status == 503
    await asyncio.sleep(0.6)  # at least one redelivery, still refused
    receiver.status = 200

    async def record() -> Any:
        (found,) = [
            r for r in await control.webhook_deliveries() if r.message_id == result.message_id
        ]
        return found

    found = await record()
    for _ in range(100):  # the redelivery backs off: up to 10 s
        if found.acknowledged:
            break
        await asyncio.sleep(0.1)
        found = await record()
    assert found.acknowledged
    assert found.statuses[0] == 503 and found.statuses[-1] == 200 and len(found.statuses) >= 3
    # The same event each time: TikTok's redelivery is a duplicate, not a new message.
    assert {json.loads(body)["content"] for body in receiver.bodies[-1:]} == {
        json.loads(result.body)["content"]
    }
    await control.configure(webhook_redelivery_seconds=0)


async def test_without_redelivery_a_refused_webhook_is_tried_once(
    control: SandboxControl, receiver: Receiver
) -> None:
    receiver.status = 500
    result = await control.play_customer("user-1", text="hi")
    await asyncio.sleep(0.5)
    (record,) = [r for r in await control.webhook_deliveries() if r.message_id == result.message_id]
    assert record.statuses == [500] and not record.acknowledged
    assert len(receiver.bodies) == 1
