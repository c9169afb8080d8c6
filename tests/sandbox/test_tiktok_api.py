"""The sandbox's TikTok side: shapes, auth, errors and token rotation, over raw HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.sandbox.control import SandboxControl
from app.sandbox.server import BackgroundServer
from app.sandbox.tiktok import SandboxConfig, create_sandbox_app
from tests.sandbox.conftest import (
    ACCESS_TOKEN,
    BUSINESS_ID,
    CLIENT_KEY,
    CLIENT_SECRET,
    REFRESH_TOKEN,
)

CONVERSATION = "u5JhpselBAhoPOlnH0tZ9y07kg=="
PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)
AUTH = {"Access-Token": ACCESS_TOKEN}


def _text(body: str = "hello", **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "business_id": BUSINESS_ID,
        "recipient_type": "CONVERSATION",
        "recipient": CONVERSATION,
        "message_type": "TEXT",
        "text": {"body": body},
    }
    payload.update(changes)
    return payload


async def _send(api: httpx.AsyncClient, payload: dict[str, Any], token: str = ACCESS_TOKEN) -> Any:
    response = await api.post(
        "/business/message/send/", json=payload, headers={"Access-Token": token}
    )
    assert response.status_code == 200  # TikTok reports errors in `code`, not the status
    return response.json()


async def _upload(api: httpx.AsyncClient, content: bytes = PNG, **fields: str) -> Any:
    data = {"business_id": BUSINESS_ID, "media_type": "IMAGE", **fields}
    response = await api.post(
        "/business/message/media/upload/",
        data=data,
        files={"file": ("photo.png", content, "image/png")},
        headers=AUTH,
    )
    assert response.status_code == 200
    return response.json()


async def _refresh(api: httpx.AsyncClient, refresh_token: str, **changes: str) -> Any:
    body = {
        "client_id": CLIENT_KEY,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        **changes,
    }
    return (await api.post("/tt_user/oauth2/refresh_token/", json=body)).json()


async def test_send_text_answers_with_the_envelope_and_records_it(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    before = time.time()
    answer = await _send(api, _text("Still available!"))

    assert answer["code"] == 0 and answer["message"] == "OK"
    assert isinstance(answer["request_id"], str) and answer["request_id"]
    message_id = answer["data"]["message"]["message_id"]
    [recorded] = await control.messages()
    assert recorded.message_id == message_id
    assert recorded.conversation_id == CONVERSATION
    assert (recorded.message_type, recorded.text, recorded.media_id) == (
        "TEXT",
        "Still available!",
        None,
    )
    assert before <= recorded.received_at <= time.time()
    assert recorded.source == "api"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": f"Bearer {ACCESS_TOKEN}"}, {"Access-Token": "act.forged"}],
    ids=["missing", "bearer", "unknown"],
)
async def test_send_needs_the_access_token_header(
    api: httpx.AsyncClient, control: SandboxControl, headers: dict[str, str]
) -> None:
    response = await api.post("/business/message/send/", json=_text(), headers=headers)
    assert response.status_code == 200
    assert response.json()["code"] == 40105
    assert await control.messages() == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (_text(recipient_type="USER"), 40002),
        (_text(message_type="VIDEO"), 40002),
        (_text(extra="field"), 40002),
        ({k: v for k, v in _text().items() if k != "recipient"}, 40002),
        (_text("x" * 6001), 40002),
        (_text("   "), 40002),
        (_text(image={"media_id": "m"}), 40002),  # text and image in one message
        (_text(business_id="someone-else"), 40001),
        (_text(message_type="IMAGE", text=None, image={"media_id": "never-uploaded"}), 40007),
    ],
    ids=[
        "recipient_type",
        "message_type",
        "extra-field",
        "no-recipient",
        "too-long",
        "blank",
        "text-and-image",
        "business",
        "unknown-media",
    ],
)
async def test_send_validates_like_tiktok(
    api: httpx.AsyncClient, control: SandboxControl, payload: dict[str, Any], code: int
) -> None:
    payload = {k: v for k, v in payload.items() if v is not None}
    assert (await _send(api, payload))["code"] == code
    assert await control.messages() == []


async def test_upload_then_send_image(api: httpx.AsyncClient, control: SandboxControl) -> None:
    upload = await _upload(api)
    assert upload["code"] == 0
    media_id = upload["data"]["media_id"]

    payload = _text(message_type="IMAGE", image={"media_id": media_id})
    del payload["text"]
    answer = await _send(api, payload)

    assert answer["code"] == 0
    [recorded] = await control.messages()
    assert (recorded.message_type, recorded.media_id, recorded.text) == ("IMAGE", media_id, None)


@pytest.mark.parametrize(
    ("content", "fields", "code"),
    [
        (b"GIF89a" + bytes(10), {}, 40908),
        (b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024), {}, 40002),
        (PNG, {"media_type": "VIDEO"}, 40002),
        (PNG, {"business_id": "someone-else"}, 40001),
    ],
    ids=["gif", "too-big", "media-type", "business"],
)
async def test_upload_validates_like_tiktok(
    api: httpx.AsyncClient, content: bytes, fields: dict[str, str], code: int
) -> None:
    assert (await _upload(api, content, **fields))["code"] == code


async def test_upload_needs_multipart(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/business/message/media/upload/",
        json={"business_id": BUSINESS_ID, "media_type": "IMAGE"},
        headers=AUTH,
    )
    assert response.json()["code"] == 40002


async def test_capabilities_per_conversation(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    async def image_send(conversation_id: str) -> Any:
        response = await api.get(
            "/business/message/capabilities/get/",
            params={
                "business_id": BUSINESS_ID,
                "conversation_id": conversation_id,
                "conversation_type": "SINGLE",
                "capability_types": json.dumps(["IMAGE_SEND", "VIDEO_SEND"]),
            },
            headers=AUTH,
        )
        return response.json()

    answer = await image_send("conv-a")
    assert answer["code"] == 0
    assert answer["data"] == {
        "capability_infos": [
            {"capability_type": "IMAGE_SEND", "capability_result": True},
            {"capability_type": "VIDEO_SEND", "capability_result": False},
        ]
    }
    await control.set_image_send(False, conversation_id="conv-a")
    assert (await image_send("conv-a"))["data"]["capability_infos"][0]["capability_result"] is False
    assert (await image_send("conv-b"))["data"]["capability_infos"][0]["capability_result"] is True
    view = await control.set_image_send(False)
    assert (view.image_send, view.overrides) == (False, {"conv-a": False})
    assert (await image_send("conv-b"))["data"]["capability_infos"][0]["capability_result"] is False


async def test_capabilities_validate_the_query(api: httpx.AsyncClient) -> None:
    response = await api.get(
        "/business/message/capabilities/get/",
        params={
            "business_id": BUSINESS_ID,
            "conversation_id": "c",
            "conversation_type": "SINGLE",
            "capability_types": "IMAGE_SEND",
        },
        headers=AUTH,
    )
    assert response.json()["code"] == 40002


@pytest.mark.parametrize(
    ("conversation_type", "code"),
    [(None, 40002), ("GROUP", 40002), ("single", 40002), ("SINGLE", 0)],
)
async def test_capabilities_need_a_single_conversation(
    api: httpx.AsyncClient, control: SandboxControl, conversation_type: str | None, code: int
) -> None:
    params = {
        "business_id": BUSINESS_ID,
        "conversation_id": CONVERSATION,
        "capability_types": json.dumps(["IMAGE_SEND"]),
    }
    if conversation_type is not None:
        params["conversation_type"] = conversation_type
    response = await api.get("/business/message/capabilities/get/", params=params, headers=AUTH)

    assert response.status_code == 200
    assert response.json()["code"] == code
    assert [call.code for call in await control.calls()] == [code]


@pytest.fixture(scope="module")
def flat_answer_sandbox() -> Iterator[BackgroundServer]:
    config = SandboxConfig(
        client_key=CLIENT_KEY,
        client_secret=CLIENT_SECRET,
        business_id=BUSINESS_ID,
        access_token=ACCESS_TOKEN,
        refresh_token=REFRESH_TOKEN,
        flat_send_answer=True,
    )
    with BackgroundServer(create_sandbox_app(config)) as server:
        yield server


async def test_send_can_answer_with_a_top_level_message_id(
    flat_answer_sandbox: BackgroundServer,
) -> None:
    async with (
        httpx.AsyncClient(base_url=flat_answer_sandbox.url + "/open_api/v1.3") as api,
        SandboxControl(flat_answer_sandbox.url) as control,
    ):
        answer = await _send(api, _text("Still available!"))
        [recorded] = await control.messages()

    assert answer["code"] == 0
    assert answer["data"] == {"message_id": recorded.message_id}


async def test_system_error_is_answered_in_tiktoks_words(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    await control.fail_next(1, "code_51065", endpoints=["send"])

    answer = await _send(api, _text())

    assert (answer["code"], answer["message"]) == (51065, "System error, please retry later")
    [call] = await control.calls()
    assert (call.code, call.injected) == (51065, "code_51065")
    assert await control.messages() == []
    assert (await _send(api, _text()))["code"] == 0


async def test_refresh_rotates_both_tokens(api: httpx.AsyncClient, control: SandboxControl) -> None:
    answer = await _refresh(api, REFRESH_TOKEN)

    assert answer["code"] == 0
    data = answer["data"]
    assert data["expires_in"] == 24 * 3600
    assert data["refresh_token_expires_in"] == 365 * 24 * 3600
    assert data["access_token"] != ACCESS_TOKEN and data["refresh_token"] != REFRESH_TOKEN
    # The old access token is dead, the new one works.
    assert (await _send(api, _text()))["code"] == 40105
    assert (await _send(api, _text(), token=data["access_token"]))["code"] == 0
    # The old refresh token cannot be used twice.
    assert (await _refresh(api, REFRESH_TOKEN))["code"] == 40002
    tokens = await control.tokens()
    assert (tokens.access_token, tokens.refresh_token, tokens.refresh_count) == (
        data["access_token"],
        data["refresh_token"],
        1,
    )


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"client_secret": "wrong"}, 40001),
        ({"client_id": "other-app"}, 40001),
        ({"grant_type": "authorization_code"}, 40002),
    ],
)
async def test_refresh_checks_the_app(
    api: httpx.AsyncClient, control: SandboxControl, changes: dict[str, str], code: int
) -> None:
    assert (await _refresh(api, REFRESH_TOKEN, **changes))["code"] == code
    assert (await control.tokens()).refresh_count == 0


async def test_expired_access_token_answers_40105_until_refreshed(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    await control.expire_access_token()
    assert (await _send(api, _text()))["code"] == 40105

    fresh = (await _refresh(api, REFRESH_TOKEN))["data"]["access_token"]
    assert (await _send(api, _text(), token=fresh))["code"] == 0


async def test_sandbox_rate_limit_answers_40100(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    await control.configure(rate_limit_per_second=2)
    codes = [(await _send(api, _text()))["code"] for _ in range(4)]
    assert codes == [0, 0, 40100, 40100]

    await control.configure(rate_limit_per_second=None)
    assert (await _send(api, _text()))["code"] == 0


async def test_uploaded_image_bytes_are_served_by_media_id(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    media_id = (await _upload(api, PNG))["data"]["media_id"]
    assert await control.uploaded(media_id) == (PNG, "image/png")
    assert await control.uploaded("v10033g5unknown") is None
