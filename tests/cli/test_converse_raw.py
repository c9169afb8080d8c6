"""`raw` turns and the `status`, `mode` and `dead_letters` expectations of
`python -m app.cli converse` (shared/scenarios/README.md, "Raw webhook bodies").

The model, the checks and the reading of a body are tested in-process; the pipeline tests
run the CLI once on a file that passes and one that fails, in the style of
test_converse.py, with TIKTOK_CLIENT_KEY and TIKTOK_BUSINESS_ID set to values of their own
so that the run shows the runner honours them. Their timestamps are now, written into the
files when the test runs, so the 48 h window is open.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.core.clock import unix_now
from app.core.config import PROJECT_ROOT
from app.scenarios.checks import Observation, SentMessage, differences
from app.scenarios.model import Expect, ScenarioError, parse_scenario
from app.scenarios.pipeline import IDENTITY_ENV, bot_identity
from app.scenarios.raw import read_webhook

RUN_SECONDS = 300
CLIENT_KEY = "scenario-app-key-9"
BUSINESS_ID = "scenario-shop-open-id-9"

RAW_MAPPING_TURN = """\
name: x
turns:
  - raw:
      client_key: app-key-1
      event: im_send_msg
      create_time: 1790000000
      user_openid: biz-open-id-1
      content: >-
        {"conversation_id": "c1", "message_id": "m9", "timestamp": 1790000000000,
        "type": "text", "text": {"body": "on my way ✨"}, "message_tag": {"source": "APP"}}
    expect:
      status: 200
      no_reply: true
      mode: human
      dead_letters: 0
"""


# -- the model -------------------------------------------------------------------------------


def test_a_raw_mapping_is_posted_as_json_in_the_order_written() -> None:
    turn = parse_scenario(RAW_MAPPING_TURN).turns[0]

    body = turn.raw_body()

    assert body.startswith(b'{"client_key":"app-key-1","event":"im_send_msg","create_time":')
    data = json.loads(body)
    assert list(data) == ["client_key", "event", "create_time", "user_openid", "content"]
    assert data["create_time"] == 1790000000
    # `content` stays the string it was written as: the runner changes nothing in it.
    assert data["content"].startswith('{"conversation_id": "c1", "message_id": "m9"')
    assert "on my way ✨".encode() in body  # UTF-8, not \\u escapes
    assert turn.expect == Expect(status=200, no_reply=True, mode="human", dead_letters=0)
    assert turn.describe() == "posts a raw im_send_msg webhook (text)"


def test_a_raw_string_is_posted_byte_for_byte() -> None:
    text = '{ "event" : "tiktok.ping",\n  "content": "{}" }'
    scenario = parse_scenario(
        "name: x\nturns:\n  - raw: " + json.dumps(text) + "\n    duplicate: 2\n"
    )
    turn = scenario.turns[0]

    assert turn.raw == text
    assert turn.raw_body() == text.encode("utf-8")
    assert turn.duplicate == 2
    # Malformed JSON is a legitimate thing to post: the webhook's answer is the test.
    broken = parse_scenario("name: x\nturns:\n  - raw: 'not json {'\n").turns[0]
    assert broken.raw_body() == b"not json {"
    assert broken.describe() == "posts a raw webhook that is not a JSON object"
    invalid = parse_scenario('name: x\nturns:\n  - raw: "{\\"a\\": \\"\\udcff\\"}"\n').turns[0]
    assert invalid.raw_body() == b'{"a": "\xff"}'  # not UTF-8: Python's \udcXX convention
    eventless = parse_scenario("name: x\nturns:\n  - raw: {hello: 1}\n").turns[0]
    assert eventless.describe() == "posts a raw webhook without an event"


def test_numbers_too_long_for_64_bits_and_nested_values_survive() -> None:
    turn = parse_scenario(
        "name: x\nturns:\n  - raw:\n      event: e\n      big: 123456789012345678901234567890\n"
        "      ratio: 0.5\n      none: null\n      flags: [true, false]\n"
        "      content: {nested: {deep: [1, {x: y}]}}\n"
    ).turns[0]
    assert json.loads(turn.raw_body()) == {
        "event": "e",
        "big": 123456789012345678901234567890,
        "ratio": 0.5,
        "none": None,
        "flags": [True, False],
        "content": {"nested": {"deep": [1, {"x": "y"}]}},
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[1, 2]", "turn 1: raw: must be the webhook body as a mapping, or its JSON text"),
        ("42", "turn 1: raw: must be the webhook body as a mapping, or its JSON text"),
        ("{create_time: 2026-11-30}", "raw: at create_time: datetime.date(2026, 11, 30) is not"),
        ("{content: {on: 1}}", "raw: at content: the key True is not a string in YAML"),
        ("{a: [1, .nan]}", "raw: at a[1]: nan is not a JSON number"),
    ],
)
def test_raw_values_json_cannot_hold_are_refused(raw: str, message: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(f"name: x\nturns:\n  - raw: {raw}\n")
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("turn", "found"),
    [
        ("send: hi\n    raw: '{}'", "found send, raw"),
        ("share_post: '1'\n    raw: {a: 1}", "found share_post, raw"),
        ("image: true\n    raw: '{}'", "found image, raw"),
        ("customer: a", "found none"),
    ],
)
def test_a_turn_has_exactly_one_of_send_share_post_image_raw(turn: str, found: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(f"name: x\nturns:\n  - {turn}\n")
    message = f"turn 1: a turn needs exactly one of send, share_post, image, raw, shop ({found})"
    assert message in str(raised.value)


def test_the_new_expect_keys() -> None:
    scenario = parse_scenario(
        "name: x\nturns:\n"
        "  - send: hi\n    expect: {status: 503, mode: Human, dead_letters: 2}\n"
        "  - raw: '{}'\n    expect: {mode: bot}\n"
    )
    first, second = scenario.turns
    assert (first.expect.status, first.expect.mode, first.expect.dead_letters) == (
        503,
        "human",
        2,
    )
    assert second.expect == Expect(mode="bot")
    assert Expect().status is None and Expect().mode is None and Expect().dead_letters is None


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ("{mode: robot}", "turn 1: expect.mode: Input should be 'bot' or 'human'"),
        ("{status: 42}", "turn 1: expect.status: Input should be greater than or equal to 100"),
        ("{status: '200 OK'}", "turn 1: expect.status: Input should be a valid integer"),
        ("{dead_letters: -1}", "turn 1: expect.dead_letters: Input should be greater than"),
        ("{dead_leters: 1}", "unknown key (did you mean 'dead_letters'?)"),
    ],
)
def test_bad_values_of_the_new_keys_say_what_is_wrong(expect: str, message: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(f"name: x\nturns:\n  - raw: '{{}}'\n    expect: {expect}\n")
    assert message in str(raised.value)


# -- the checks ------------------------------------------------------------------------------


def test_checks_compare_status_mode_and_dead_letters() -> None:
    seen = Observation(
        intent=None,
        statuses=[200, 200],
        mode="human",
        dead_letters=["event: content of im_receive_msg is not a message"],
    )
    assert differences(Expect(status=200, mode="human", dead_letters=1), seen) == []
    assert differences(Expect(status=400, mode="bot", dead_letters=0), seen) == [
        "expected status 400, got 200, 200",
        "expected mode bot, got human",
        'expected 0 dead letters, got 1: "event: content of im_receive_msg is not a message"',
    ]
    assert differences(Expect(status=200), Observation(intent=None, statuses=[200, None])) == [
        "expected status 200, got 200, no answer"
    ]
    assert differences(Expect(mode="bot", dead_letters=1), Observation(intent=None)) == [
        "expected mode bot, got no conversation (the body names none)",
        "expected 1 dead letter, got 0",
    ]
    replied = Observation(intent="menu", replies=[SentMessage("TEXT", "hi")], statuses=[200])
    assert differences(Expect(status=200, no_reply=False, dead_letters=0), replied) == []


# -- reading a body ------------------------------------------------------------------------


def _body(content: Any, **envelope: Any) -> bytes:
    data = {"client_key": "k", "event": "im_receive_msg", "create_time": 1, **envelope}
    data["content"] = content if isinstance(content, str) else json.dumps(content)
    return json.dumps(data).encode()


def test_a_body_names_its_conversation_and_the_worker_s_event_id() -> None:
    message = {
        "timestamp": 1,
        "conversation_id": "c+1/=",
        "message_id": "m-1",
        "from_user": {"id": "u-1"},
        "type": "text",
        "text": {"body": "hi"},
    }
    facts = read_webhook(_body(message))
    assert (facts.event_id, facts.conversation_id, facts.sender, facts.event) == (
        "m-1",
        "c+1/=",
        "u-1",
        "im_receive_msg",
    )
    # Without a message_id, or when the worker cannot read the message, the worker files
    # the event under a SHA-256 of the body: so does the runner.
    for content in ({**message, "message_id": None}, {"conversation_id": "c2", "type": "text"}):
        body = _body(content)
        assert read_webhook(body).event_id == "sha256:" + hashlib.sha256(body).hexdigest()
    assert read_webhook(_body({"conversation_id": "c2"})).conversation_id == "c2"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1]", b"", _body("not json"), _body("{}"), _body({"conversation_id": 7})],
)
def test_what_cannot_be_read_is_unknown(body: bytes) -> None:
    facts = read_webhook(body)
    assert facts.conversation_id is None and facts.sender is None
    assert facts.event_id == "sha256:" + hashlib.sha256(body).hexdigest()


def test_the_bot_s_identity_comes_from_the_environment_else_the_defaults() -> None:
    defaults = {
        "TIKTOK_CLIENT_KEY": "philia-dev-client",
        "TIKTOK_BUSINESS_ID": "philia-dev-business",
    }
    assert defaults == IDENTITY_ENV
    assert bot_identity({}) == defaults
    assert bot_identity({"TIKTOK_CLIENT_KEY": "", "OTHER": "x"}) == defaults
    ours = {"TIKTOK_CLIENT_KEY": CLIENT_KEY, "TIKTOK_BUSINESS_ID": BUSINESS_ID}
    assert bot_identity({**ours, "OTHER": "x"}) == ours


# -- through the pipeline ------------------------------------------------------------------


def _message(
    conversation: str,
    message_id: str,
    *,
    sender: str,
    recipient: str,
    text: str | None,
    at_ms: int,
    **extra: Any,
) -> str:
    content: dict[str, Any] = {
        "timestamp": at_ms,
        "conversation_id": conversation,
        "message_id": message_id,
        "from_user": {"id": sender},
        "to_user": {"id": recipient},
        "type": "text",
        **extra,
    }
    if text is not None:
        content["text"] = {"body": text}
    return json.dumps(content)


def _raw(event: str, content: str, *, account: str = BUSINESS_ID, at: int) -> str:
    """A raw turn's body as YAML flow mapping (JSON is YAML)."""
    return json.dumps(
        {
            "client_key": CLIENT_KEY,
            "event": event,
            "create_time": at,
            "user_openid": account,
            "content": content,
        }
    )


def _passing_file(now: int) -> str:
    ms = now * 1000

    def customer(conversation: str, message_id: str, text: str | None, **extra: Any) -> str:
        user = f"cust-{conversation}"
        content = _message(
            conversation, message_id, sender=user, recipient=BUSINESS_ID, text=text, at_ms=ms
        )
        return _raw("im_receive_msg", content, at=now, **extra)

    staff_echo = _raw(
        "im_send_msg",
        _message(
            "rawc-1",
            "staff-1",
            sender=BUSINESS_ID,
            recipient="cust-rawc-1",
            text="hi, Sam here from the shop",
            at_ms=ms,
            message_tag={"source": "APP"},
        ),
        at=now,
    )
    ping = _raw("tiktok.ping", "{}", at=now)
    return f"""\
name: Raw bodies through the pipeline
turns:
  - raw: {customer("rawc-1", "m-1", "hi")}
    expect: {{status: 200, intent: menu, replies: 1, mode: bot, dead_letters: 0}}
  - raw: {json.dumps(staff_echo)}
    expect: {{status: 200, no_reply: true, mode: human, dead_letters: 0}}
  - raw: {customer("rawc-1", "m-2", "anyone there?")}
    expect: {{no_reply: true, mode: human}}
  - raw: {customer("rawc-2", "m-3", "hi")}
    duplicate: 3
    expect: {{status: 200, replies: 1}}
  - raw: {customer("rawc-3", "m-4", "hi", account="philia-dev-business")}
    expect: {{status: 200, no_reply: true, dead_letters: 0}}
  - raw: "not json"
    expect: {{status: 400, no_reply: true, dead_letters: 0}}
  - raw: {{"hello": 1}}
    expect: {{status: 400, no_reply: true}}
  - raw: {customer("rawc-4", "m-5", None)}
    expect: {{status: 200, no_reply: true, dead_letters: 1}}
  - raw: {ping}
    expect: {{status: 200, no_reply: true, dead_letters: 0}}
  - send: "hi"
    customer: cust-sandbox-1
    expect: {{status: 200, intent: menu, replies: 1, mode: bot, dead_letters: 0}}
"""


def _failing_file(now: int) -> str:
    ms = now * 1000
    hello = _message("rawf-1", "f-1", sender="cust-f", recipient=BUSINESS_ID, text="hi", at_ms=ms)
    parked = _message("rawf-2", "f-2", sender="cust-f", recipient=BUSINESS_ID, text=None, at_ms=ms)
    return f"""\
name: Raw expectations nobody meets
turns:
  - raw: {_raw("im_receive_msg", hello, at=now)}
    expect: {{status: 401, mode: human, dead_letters: 2}}
  - raw: "not json"
  - raw: {_raw("im_receive_msg", parked, at=now)}
  - raw: {_raw("tiktok.ping", "{}", at=now)}
    expect: {{mode: bot}}
"""


def _report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"


@pytest.mark.e2e
def test_raw_turns_through_the_pipeline(tmp_path: Path, shared_dir: Path) -> None:
    # `converse` plays scenarios against the reference shop in ../shared/data.
    now = int(unix_now())
    passing = tmp_path / "raw_passing.yaml"
    passing.write_text(_passing_file(now), encoding="utf-8")
    failing = tmp_path / "raw_failing.yaml"
    failing.write_text(_failing_file(now), encoding="utf-8")
    env = {**os.environ, "TIKTOK_CLIENT_KEY": CLIENT_KEY, "TIKTOK_BUSINESS_ID": BUSINESS_ID}

    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "converse", "--verbose", str(passing), str(failing)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )

    assert result.returncode == 1, _report(result)
    lines = result.stdout.splitlines()
    assert lines[-1] == "10 passed, 4 failed", _report(result)
    for number in range(1, 11):
        assert f"{passing} turn {number}: ok" in lines, _report(result)
    at = re.escape(f"{failing} turn ")
    expected = [
        at
        + re.escape(
            "1: expected status 401, got 200; expected mode human, got bot; "
            "expected 2 dead letters, got 0"
        ),
        at + re.escape("2: the webhook was refused (400)"),
        at + re.escape('3: the worker gave up on the event: "content of im_receive_msg is not'),
        at + re.escape("4: expected mode bot, got no conversation (the body names none)"),
    ]
    failures = [line for line in lines if line.startswith(f"{failing} turn ")]
    assert len(failures) == len(expected), _report(result)
    for line, pattern in zip(failures, expected, strict=True):
        assert re.match(pattern, line), f"{line!r}\n{_report(result)}"
    # --verbose shows the webhook's status, the mode and the dead letters of every turn.
    assert "    webhook 200, 200, 200, mode bot, 0 dead letters" in lines, _report(result)
    assert "    webhook 400, mode none, 0 dead letters" in lines, _report(result)
    assert "Traceback" not in result.stderr
