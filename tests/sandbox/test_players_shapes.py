"""The players emit every shape of tiktok-api.md's "What production integrations show
beyond the docs", and the bot's own parser reads each as the spec says it must."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from app.sandbox.control import SandboxControl
from app.sandbox.tiktok import SandboxConfig, SandboxState, SharePostForm
from app.services.tiktok.webhook import EchoAuthor, MessageContent, parse_content, parse_envelope
from tests.sandbox.conftest import ACCESS_TOKEN, BUSINESS_ID, CLIENT_KEY, Receiver

AUTH = {"Access-Token": ACCESS_TOKEN}
VIDEO_ID = "7301234567890123456"


def _envelope(body: bytes) -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(body)
    return envelope


def _content(body: bytes) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(_envelope(body)["content"])
    return content


def _parsed(body: bytes) -> MessageContent:
    return parse_content(parse_envelope(body))


async def _api_send(api: httpx.AsyncClient, conversation_id: str, text: str = "hi") -> str:
    payload = {
        "business_id": BUSINESS_ID,
        "recipient_type": "CONVERSATION",
        "recipient": conversation_id,
        "message_type": "TEXT",
        "text": {"body": text},
    }
    answer = (await api.post("/business/message/send/", json=payload, headers=AUTH)).json()
    message_id: str = answer["data"]["message"]["message_id"]
    return message_id


async def _bodies(receiver: Receiver, count: int) -> list[bytes]:
    for _ in range(200):
        if len(receiver.bodies) >= count:
            break
        await asyncio.sleep(0.02)
    return receiver.bodies


# -- customers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("string", {"video_id": VIDEO_ID, "embed_url": f"https://www.tiktok.com/embed/v2/{VIDEO_ID}"}),
        ("number", {"video_id": int(VIDEO_ID), "embed_url": f"https://www.tiktok.com/embed/v2/{VIDEO_ID}"}),
        ("embed_url", {"embed_url": f"https://www.tiktok.com/embed/{VIDEO_ID}"}),
        ("video_url", {"embed_url": f"https://www.tiktok.com/@philiathrifts/video/{VIDEO_ID}"}),
    ],
)  # fmt: skip
async def test_share_post_in_every_form_names_the_same_video(
    control: SandboxControl, receiver: Receiver, form: SharePostForm, expected: dict[str, Any]
) -> None:
    await control.play_customer("user-1", share_post_video_id=VIDEO_ID, share_post_form=form)

    [body] = receiver.bodies
    content = _content(body)
    assert content["type"] == "share_post" and content["share_post"] == expected
    parsed = _parsed(body)
    assert parsed.share_post is not None and parsed.share_post.video_id == VIDEO_ID


async def test_share_post_as_a_number_or_link_needs_a_numeric_id(control: SandboxControl) -> None:
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await control.play_customer("user-1", share_post_video_id="abc", share_post_form="number")
    assert caught.value.response.status_code == 422


async def test_image_by_media_id_or_by_its_link_in_either_place(
    control: SandboxControl, receiver: Receiver
) -> None:
    await control.play_customer("user-1", image_media_id="img-1")
    await control.play_customer("user-1", image_media_url="https://cdn.example/a.jpg")
    await control.play_customer(
        "user-1", image_media_url="https://cdn.example/b.jpg", image_url_top_level=True
    )

    by_id, in_image, top_level = receiver.bodies
    assert _content(by_id)["image"] == {"media_id": "img-1"}
    assert _content(in_image)["image"] == {"media_url": "https://cdn.example/a.jpg"}
    assert "image" not in _content(top_level)
    assert _content(top_level)["media_url"] == "https://cdn.example/b.jpg"
    assert [_parsed(body).image_reference for body in receiver.bodies] == [
        "img-1",
        "https://cdn.example/a.jpg",
        "https://cdn.example/b.jpg",
    ]


async def test_video_sticker_and_emoji(control: SandboxControl, receiver: Receiver) -> None:
    await control.play_customer("user-1", video=True)
    await control.play_customer("user-1", video_media_id="vid-7")
    await control.play_customer("user-1", sticker_url="https://cdn.example/sticker.webp")
    await control.play_customer("user-1", emoji_url="https://cdn.example/emoji.png")

    video, given, sticker, emoji = (_content(body) for body in receiver.bodies)
    assert video["type"] == "video" and video["video"]["media_id"]
    assert given["video"] == {"media_id": "vid-7"}
    assert sticker["type"] == "sticker"
    assert sticker["sticker"] == {"url": "https://cdn.example/sticker.webp"}
    assert emoji["type"] == "emoji" and emoji["emoji"] == {"url": "https://cdn.example/emoji.png"}
    assert [_parsed(body).type for body in receiver.bodies] == [
        "video",
        "video",
        "sticker",
        "emoji",
    ]


async def test_a_tapped_suggested_question_is_a_qa_button_card(
    control: SandboxControl, receiver: Receiver
) -> None:
    await control.play_customer("user-1", button_text="Do you ship abroad?", button_id="q-1")

    [body] = receiver.bodies
    content = _content(body)
    assert content["type"] == "template"
    assert content["template"] == {
        "type": "qa_button_card",
        "elements": [
            {
                "title": "Questions you may have",
                "buttons": [{"text": "Do you ship abroad?", "type": "REPLY", "id": "q-1"}],
            }
        ],
    }
    assert _parsed(body).said == "Do you ship abroad?"


async def test_a_reaction_points_at_the_shops_last_message_and_spends_no_window(
    api: httpx.AsyncClient, control: SandboxControl, receiver: Receiver
) -> None:
    first = await control.play_customer("user-1", text="hi")
    await _api_send(api, first.conversation_id)
    replied = await _api_send(api, first.conversation_id)

    await control.play_customer("user-1", reaction_emoji="👍")
    await control.play_customer("user-1", reaction_emoji="👍", reaction_operation="REMOVE")
    await _api_send(api, first.conversation_id)

    added, removed = (_content(body) for body in receiver.bodies[1:])
    assert added["type"] == "reaction"
    [reaction] = added["reaction"]
    assert (reaction["operation"], reaction["type"], reaction["emoji"]) == ("ADD", "EMOJI", "👍")
    assert reaction["original_msg_id"] == replied
    assert isinstance(reaction["timestamp"], int) and reaction["unique_identifier"]
    assert removed["reaction"][0]["operation"] == "REMOVE"
    parsed = _parsed(receiver.bodies[1])
    assert parsed.reaction is not None and parsed.reaction[0] is not None
    assert parsed.reaction[0].original_msg_id == replied
    # The reactions reset no quota: the third reply is still the third.
    assert [m.reply_number for m in await control.messages()] == [1, 2, 3]


async def test_an_unknown_type_carries_a_body_of_its_own(
    control: SandboxControl, receiver: Receiver
) -> None:
    await control.play_customer("user-1", unknown_type="gift_card")

    [body] = receiver.bodies
    content = _content(body)
    assert content["type"] == "gift_card" and set(content["gift_card"]) == {"id"}
    assert _parsed(body).type == "gift_card"


async def test_extra_fields_and_missing_optional_ones(
    control: SandboxControl, receiver: Receiver
) -> None:
    await control.play_customer("user-1", text="hi", with_extras=True)
    await control.play_customer("user-1", text="hi again", omit_optional=True)

    extras, bare = (_content(body) for body in receiver.bodies)
    assert {"scene_type", "is_follower"} <= set(extras)
    assert not {"from", "to"} & set(bare)
    assert bare["from_user"] == {"id": "user-1"} and bare["to_user"] == {"id": BUSINESS_ID}
    parsed = _parsed(receiver.bodies[1])
    assert (parsed.said, parsed.sender, parsed.from_user.role) == ("hi again", None, None)


async def test_another_account_or_app_posts_to_the_same_url_and_leaves_the_shop_alone(
    api: httpx.AsyncClient, control: SandboxControl, receiver: Receiver
) -> None:
    other_account = await control.play_customer("user-1", text="hi", user_openid="other-business")
    other_app = await control.play_customer("user-2", text="hi", client_key="other-app")

    account_body, app_body = receiver.bodies
    assert _envelope(account_body)["user_openid"] == "other-business"
    assert _envelope(account_body)["client_key"] == CLIENT_KEY
    assert _content(account_body)["to_user"]["id"] == "other-business"
    assert (
        other_account.conversation_id
        != (await control.play_customer("user-1", text="hi")).conversation_id
    )
    assert _envelope(app_body)["client_key"] == "other-app"
    assert _envelope(app_body)["user_openid"] == BUSINESS_ID
    # Not the shop's customers: the sandbox saw no window open for them.
    await _api_send(api, other_app.conversation_id)
    [sent] = await control.messages(conversation_id=other_app.conversation_id)
    assert sent.within_window is None


@pytest.mark.parametrize(
    "kinds",
    [
        {"text": "hi", "video": True},
        {"sticker_url": "s", "emoji_url": "e"},
        {"button_text": "b", "reaction_emoji": "👍"},
        {"unknown_type": "x", "image": True},
    ],
)
async def test_a_customer_message_is_one_kind(
    control: SandboxControl, kinds: dict[str, Any]
) -> None:
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await control.play_customer("user-1", **kinds)
    assert caught.value.response.status_code == 422


# -- the shop's side ------------------------------------------------------------------------


async def test_the_bots_own_sends_are_echoed_tagged_api(
    api: httpx.AsyncClient, control: SandboxControl, receiver: Receiver
) -> None:
    customer = await control.play_customer("user-1", text="hi")
    await control.configure(echo_sends=True)

    sent = await _api_send(api, customer.conversation_id, "Hey! 👋")

    echo = _content((await _bodies(receiver, 2))[-1])
    assert (echo["message_id"], echo["message_tag"]) == (sent, {"source": "API"})
    assert "auto_message_type" not in echo


@pytest.mark.parametrize("source", ["APP", "WEB", None])
async def test_staff_typing_is_tagged_with_where_they_typed(
    control: SandboxControl, receiver: Receiver, source: str | None
) -> None:
    customer = await control.play_customer("user-1", text="a person please")

    await control.play_staff(customer.conversation_id, "Mia here", source=source)  # type: ignore[arg-type]

    body = receiver.bodies[-1]
    content = _content(body)
    if source is None:
        assert "message_tag" not in content  # as older payloads
    else:
        assert content["message_tag"] == {"source": source}
    assert _parsed(body).echo_author() is EchoAuthor.STAFF_APP


async def test_staff_react_to_the_customers_last_message(
    control: SandboxControl, receiver: Receiver
) -> None:
    customer = await control.play_customer("user-1", text="thank you!")

    echo = await control.play_staff(customer.conversation_id, reaction_emoji="❤️")

    content = _content(receiver.bodies[-1])
    assert _envelope(receiver.bodies[-1])["event"] == "im_send_msg"
    assert content["type"] == "reaction" and content["message_tag"] == {"source": "APP"}
    [reaction] = content["reaction"]
    assert (reaction["emoji"], reaction["original_msg_id"]) == ("❤️", customer.message_id)
    assert content["to_user"]["id"] == "user-1" and echo.user_id == "user-1"
    assert await control.messages() == []  # a reaction is not a message sent


async def test_staff_give_text_or_a_reaction(control: SandboxControl) -> None:
    for kwargs in ({}, {"text": "hi", "reaction_emoji": "👍"}):
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await control.play_staff("conv-1", **kwargs)  # type: ignore[arg-type]
        assert caught.value.response.status_code == 422


async def test_tiktoks_automations_are_marked_and_not_a_person(
    api: httpx.AsyncClient, control: SandboxControl, receiver: Receiver
) -> None:
    customer = await control.play_customer("user-1", text="hi")
    conversation_id = customer.conversation_id

    await control.play_automation(conversation_id, "We reply within a day.")
    await control.play_automation(
        conversation_id,
        "Ask us anything:",
        auto_message_type="SUGGESTED_QUESTION",
        buttons=["Do you ship abroad?", "What sizes?"],
        source="OTHERS",
    )

    auto_reply, suggested = (_content(body) for body in receiver.bodies[1:])
    assert auto_reply["auto_message_type"] == "AUTO_REPLY"
    assert auto_reply["text"] == {"body": "We reply within a day."}
    assert "message_tag" not in auto_reply
    assert auto_reply["to_user"]["id"] == "user-1"
    assert suggested["type"] == "template" and suggested["message_tag"] == {"source": "OTHERS"}
    [element] = suggested["template"]["elements"]
    assert element["title"] == "Ask us anything:"
    assert [b["text"] for b in element["buttons"]] == ["Do you ship abroad?", "What sizes?"]
    for body in receiver.bodies[1:]:
        parsed = _parsed(body)
        assert not parsed.could_be_ours
        assert parsed.echo_author() is EchoAuthor.TIKTOK_AUTOMATION
    # TikTok counts them against the quota; the record of sends leaves them out.
    await _api_send(api, conversation_id)
    assert [m.reply_number for m in await control.messages()] == [3]


async def test_another_tool_sends_through_the_api(
    control: SandboxControl, receiver: Receiver
) -> None:
    customer = await control.play_customer("user-1", text="hi")

    echo = await control.play_other_tool(customer.conversation_id, "Your order shipped!")

    body = receiver.bodies[-1]
    content = _content(body)
    assert content["message_tag"] == {"source": "API"} and "auto_message_type" not in content
    assert content["message_id"] == echo.message_id
    parsed = _parsed(body)
    assert parsed.could_be_ours and parsed.echo_author() is EchoAuthor.OTHER_API_TOOL


async def test_a_welcome_message_opens_every_new_chat(
    control: SandboxControl, receiver: Receiver
) -> None:
    config = await control.configure(welcome_message="Welcome to Philia Thrifts!")
    assert config.welcome_message == "Welcome to Philia Thrifts!"

    first = await control.play_customer("user-1", text="hi")
    await control.play_customer("user-1", text="still there?")
    await control.play_customer("user-2", text="hello")

    events = [_envelope(body)["event"] for body in receiver.bodies]
    assert events == [
        "im_send_msg",
        "im_receive_msg",
        "im_receive_msg",
        "im_send_msg",
        "im_receive_msg",
    ]
    welcome = _content(receiver.bodies[0])
    assert welcome["auto_message_type"] == "WELCOME_MESSAGE"
    assert welcome["text"] == {"body": "Welcome to Philia Thrifts!"}
    assert welcome["conversation_id"] == first.conversation_id
    assert welcome["to_user"]["id"] == "user-1"
    assert welcome["timestamp"] < first.timestamp_ms
    assert _parsed(receiver.bodies[0]).echo_author() is EchoAuthor.TIKTOK_AUTOMATION
    assert await control.messages() == []

    assert (await control.configure(welcome_message=None)).welcome_message is None
    await control.play_customer("user-3", text="hi")
    assert _envelope(receiver.bodies[-2])["event"] == "im_receive_msg"


def test_the_configured_welcome_message_outlives_a_reset_until_changed() -> None:
    config = SandboxConfig(
        client_key="k",
        client_secret="s",
        business_id="b",
        access_token="a",
        refresh_token="r",
        welcome_message="Hi there!",
    )
    state = SandboxState(config=config)
    assert state.settings.welcome_message == "Hi there!"
    state.settings = state.settings.model_copy(update={"welcome_message": None})
    assert state.settings.welcome_message is None
    state.reset()
    assert state.settings.welcome_message == "Hi there!"


# -- other events ---------------------------------------------------------------------------


async def test_events_by_name_carry_their_usual_content(
    control: SandboxControl, receiver: Receiver
) -> None:
    removed = await control.play_event("authorization.removed")
    await control.play_event("im_receive_msg_eu")
    await control.play_event("tiktok.ping")
    await control.play_event("im_auto_message_config_update", content={"anything": True})
    await control.play_event("tiktok.ping", user_openid="other-business", client_key="other-app")

    assert removed.bot_status == 200 and removed.body == receiver.bodies[0].decode()
    envelopes = [_envelope(body) for body in receiver.bodies]
    assert [e["event"] for e in envelopes] == [
        "authorization.removed",
        "im_receive_msg_eu",
        "tiktok.ping",
        "im_auto_message_config_update",
        "tiktok.ping",
    ]
    assert json.loads(envelopes[0]["content"]) == {"reason": 1}
    eu = json.loads(envelopes[1]["content"])
    assert set(eu) == {"to", "to_user", "timestamp"} and eu["to_user"]["id"] == BUSINESS_ID
    assert json.loads(envelopes[3]["content"]) == {"anything": True}
    assert (envelopes[4]["user_openid"], envelopes[4]["client_key"]) == (
        "other-business",
        "other-app",
    )
    assert envelopes[0]["user_openid"] == BUSINESS_ID and envelopes[0]["client_key"] == CLIENT_KEY
    assert all(parse_envelope(body).event for body in receiver.bodies)
    assert [d.event for d in await control.webhook_deliveries()][:1] == ["authorization.removed"]
