"""`python -m app.cli converse`: scenario files played through the real pipeline.

The expectations here match what the fallback menu brain does (menu for anything, digit 3
hands over, a photo gets the cannot-read-media answer), so these tests do not depend on
the real brain. Each run starts the whole stack once; the runs are few and cover many
turns each. With DATABASE_URL/REDIS_URL set the CLI works in a scratch database and a
claimed empty Redis index; without them it starts embedded servers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from app.core.config import PROJECT_ROOT
from app.scenarios.checks import Observation, SentMessage, differences, quote
from app.scenarios.model import Expect, ScenarioError, load_scenario, parse_scenario
from app.services.shop.catalog_io import CATALOG_COLUMNS, ORDER_COLUMNS

PUBLIC_SCENARIOS = PROJECT_ROOT.parent / "shared" / "scenarios" / "public"
RUN_SECONDS = 240

# A shop of our own, so the runs do not depend on ../shared.
CATALOG = "\n".join(
    [
        ",".join(CATALOG_COLUMNS),
        "PT-0101,Test Chore Coat,Testwear,outerwear,unisex,tan,L,M,21,28,,,,good,80.00,USD,"
        "available,test-drop,7309000000000000001,https://cdn.example.test/PT-0101/1.jpg,",
        "PT-0102,Test Denim,Testwear,bottoms,unisex,blue,W30 L30,,,,30,30,,very good,40.00,USD,"
        "sold,test-drop,,,",
    ]
)
ORDERS = "\n".join(
    [
        ",".join(ORDER_COLUMNS),
        "PH-19001,cust-test-1,tester,shipped,PT-0102,USPS,9400000000000000000001,"
        "2026-11-01T10:00:00Z,2026-11-02T10:00:00Z,,40.00,USD",
    ]
)

MENU_FILE = """\
name: The menu brain answers, hands over, and stays silent in human mode
customer: cust-conv-1
turns:
  - send: "hi"
    expect:
      intent: menu
      reply_contains: ["1. Order status", "3. talk to a HUMAN"]
      reply_not_contains: ["PT-0101"]
      reply_matches: ['^Hey', '(?i)NEW DROPS']
      replies: 1
      images: 0
      no_reply: false
  - send: "3"
    expect:
      intent: human
      replies: 1
  - send: "anyone there?"
    expect:
      no_reply: true
  - send: "hi"
    customer: cust-conv-2
    duplicate: 5
    expect:
      replies: 1
  - image: true
    customer: cust-conv-3
    expect:
      replies: 1
      images: 0
  - share_post: 7309000000000000001
    customer: cust-conv-4
    expect:
      no_reply: false
"""

# The same customer as the first file's human hand-off: answered again, because every
# file starts from a freshly reset shop.
ISOLATION_FILE = """\
name: A hand-off in another file does not silence this one
customer: cust-conv-1
turns:
  - send: "hi"
    expect:
      intent: menu
      replies: 1
"""

# Expectations no brain meets, so the failure lines do not depend on which brain runs.
# The turns are independent, so each comes from a customer of its own.
FAILING_FILE = """\
name: Expectations nobody can meet
turns:
  - send: "hi"
    customer: cust-fail-1
    expect:
      intent: no_such_intent
  - send: "hi"
    customer: cust-fail-2
    expect:
      reply_contains: ["zebra-xylophone", "quokka-42"]
  - send: "hi"
    customer: cust-fail-3
    expect:
      replies: 7
      images: 3
  - send: "hi"
    customer: cust-fail-4
    expect:
      reply_not_contains: ["e"]
      reply_matches: ['zebra\\d{9}']
  - send: "hi"
    customer: cust-fail-5
    expect:
      no_reply: true
  - send: "hi"
"""

MALFORMED_FILE = """\
name: Two messages in one turn
turns:
  - send: "hi"
    image: true
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _converse(*args: str | Path, shop: Path | None = None) -> subprocess.CompletedProcess[str]:
    options: list[str] = []
    if shop is not None:
        options = ["--catalog", str(shop / "catalog.csv"), "--orders", str(shop / "orders.csv")]
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "converse", *options, *map(str, args)],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    _write(folder, "catalog.csv", CATALOG)
    _write(folder, "orders.csv", ORDERS)
    return folder


def _report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"


# -- through the pipeline ------------------------------------------------------------------


@pytest.mark.e2e
def test_every_public_scenario_passes_through_the_pipeline() -> None:
    files = sorted(PUBLIC_SCENARIOS.glob("*.yaml"))
    if not files:
        pytest.skip("../shared/scenarios/public is not beside this checkout")
    result = _converse(*files)
    assert result.returncode == 0, _report(result)
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, 0 failed", last), _report(result)
    assert int(last.split()[0]) >= len(files)


@pytest.mark.e2e
def test_scenarios_that_match_the_menu_brain_pass(tmp_path: Path, shop: Path) -> None:
    menu = _write(tmp_path, "menu.yaml", MENU_FILE)
    isolation = _write(tmp_path, "isolation.yaml", ISOLATION_FILE)

    result = _converse("--verbose", menu, isolation, shop=shop)

    assert result.returncode == 0, _report(result)
    lines = result.stdout.splitlines()
    assert lines[-1] == "7 passed, 0 failed", _report(result)
    for number in range(1, 7):
        assert f"{menu} turn {number}: ok" in lines, _report(result)
    assert f"{isolation} turn 1: ok" in lines
    # --verbose shows what the bot sent: the menu, once, for the five identical webhooks.
    assert "    cust-conv-2 sends 'hi' (delivered 5 times)" in lines
    assert any(line.startswith("    < TEXT ") and "Order status" in line for line in lines)
    silenced = lines.index("    cust-conv-1 sends 'anyone there?'")
    assert " 0 replies in " in lines[silenced + 1]


@pytest.mark.e2e
def test_failures_are_reported_per_turn_and_malformed_files_do_not_stop_the_run(
    tmp_path: Path, shop: Path
) -> None:
    failing = _write(tmp_path, "failing.yaml", FAILING_FILE)
    malformed = _write(tmp_path, "malformed.yaml", MALFORMED_FILE)
    passing = _write(tmp_path, "passing.yaml", ISOLATION_FILE)

    result = _converse(failing, malformed, passing, shop=shop)

    assert result.returncode == 1, _report(result)
    reply = r'"[^"].*"'  # whatever the brain answered, quoted on the line
    at = re.escape(f"{failing} turn ")
    expected = [
        at + re.escape("1: expected intent no_such_intent, got menu"),
        at + re.escape('2: missing "zebra-xylophone", "quokka-42" in: ') + reply,
        at + r"3: expected 7 replies, got [1-6]; expected 3 images, got [0-2]",
        at
        + re.escape('4: unexpected "e" in: ')
        + reply
        + re.escape(r"; no match for /zebra\d{9}/ in: ")
        + reply,
        at + r"5: expected no reply, got \d+ messages?: " + reply,
        re.escape(
            f"{malformed}: invalid scenario file: turn 1: a turn needs exactly one of send, "
            "share_post, image, raw, shop (found send, image)"
        ),
        "2 passed, 6 failed",
    ]
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected), _report(result)
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), f"{line!r}\n{_report(result)}"
    assert "Traceback" not in result.stderr


# -- without starting the pipeline ---------------------------------------------------------


def test_only_malformed_files_fail_without_starting_anything(tmp_path: Path, shop: Path) -> None:
    broken = _write(tmp_path, "broken.yaml", "name: [unclosed\n")
    typo = _write(tmp_path, "typo.yaml", 'name: x\nturns:\n  - send: "hi"\n    expext: {}\n')
    missing = tmp_path / "missing.yaml"

    result = _converse(broken, typo, missing, shop=shop)  # our own shop: no ../shared needed

    assert result.returncode == 1, _report(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{broken}: invalid scenario file: not valid YAML at line 2")
    assert lines[1] == (
        f"{typo}: invalid scenario file: turn 1: expext: unknown key (did you mean 'expect'?)"
    )
    assert lines[2] == f"{missing}: invalid scenario file: no such file"
    assert lines[3] == "0 passed, 3 failed"
    assert "pipeline ready" not in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreadable_catalogue_stops_before_anything_runs(tmp_path: Path, shop: Path) -> None:
    scenario = _write(tmp_path, "ok.yaml", ISOLATION_FILE)
    (shop / "catalog.csv").write_text(CATALOG.replace("outerwear", "spacesuits"), "utf-8")

    result = _converse(scenario, shop=shop)

    assert result.returncode == 2, _report(result)
    assert "catalogue" in result.stderr and "row 2, column category" in result.stderr
    assert result.stdout == ""


def test_every_public_scenario_parses() -> None:
    if not PUBLIC_SCENARIOS.is_dir():
        pytest.skip("../shared is not beside this checkout")
    files = sorted(PUBLIC_SCENARIOS.glob("*.yaml"))
    assert files
    for path in files:
        scenario = load_scenario(path)
        assert scenario.name and scenario.turns, path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("turns:\n  - send: hi\n", "name: is required"),
        ("name: x\nturns: []\n", "turns: List should have at least 1 item"),
        ("name: x\nturns:\n  - customer: a\n", "turn 1: a turn needs exactly one of"),
        ("name: x\nturns:\n  - image: false\n", "turn 1: image must be true"),
        ("name: x\nturns:\n  - send: yes\n", "turn 1: send: must be a string (quote it)"),
        ("name: x\nturns:\n  - send: a\n    duplicate: 0\n", "turn 1: duplicate: Input should"),
        (
            "name: x\nturns:\n  - send: a\n  - send: b\n    expect: {intnet: menu}\n",
            "turn 2: expect.intnet: unknown key (did you mean 'intent'?)",
        ),
        (
            "name: x\nturns:\n  - send: a\n    expect: {reply_matches: ['(']}\n",
            "turn 1: expect.reply_matches: invalid regular expression '('",
        ),
        (
            "name: x\nturns:\n  - send: a\n    expect: {no_reply: true, replies: 1}\n",
            "no_reply: true contradicts replies",
        ),
        ("name: x\nname: y\nturns:\n  - send: a\n", "line 2, column 1: duplicate key 'name'"),
        ("name: x\nturns:\n  - shop: refund\n", "turn 1: shop: Input should be"),
        ("name: x\nturns:\n  - shop: follow_up\n    after: soon\n", "not a duration like"),
        ("name: x\nturns:\n  - shop: follow_up\n    sku: PT-0001\n", "sku goes with"),
        ("name: x\nturns:\n  - send: a\n    after: 2h\n", "after goes with shop: follow_up"),
        (
            "name: x\nturns:\n  - shop: mark_paid\n    expect: {intent: hold}\n",
            "a shop turn posts no webhook: intent cannot apply",
        ),
        ("- a\n- b\n", "expected a mapping with `name` and `turns`"),
        ("", "expected a mapping with `name` and `turns`"),
    ],
)
def test_malformed_scenarios_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(text)
    assert message in str(raised.value)


def test_defaults_and_scalars_written_without_quotes() -> None:
    scenario = parse_scenario(
        "name: x\nturns:\n"
        "  - share_post: 7301000000000000004\n"
        "  - send: 3\n    customer: 42\n    expect: {reply_contains: sold}\n"
    )
    first, second = scenario.turns
    assert first.share_post == "7301000000000000004"
    assert scenario.customer_for(first) == "customer-1"
    assert (second.send, scenario.customer_for(second)) == ("3", "42")
    assert second.expect.reply_contains == ["sold"]
    assert second.duplicate == 1


def test_shop_turns_and_their_durations() -> None:
    scenario = parse_scenario(
        "name: x\nturns:\n"
        "  - shop: mark_paid\n    sku: PT-0006\n    expect: {replies: 2}\n"
        "  - shop: follow_up\n    after: 21h30m\n"
        "  - shop: follow_up\n    after: 2d\n"
        "  - shop: follow_up\n    after: 90\n"
    )
    paid, later, days, minutes = scenario.turns
    assert (paid.shop, paid.sku, paid.expect.replies) == ("mark_paid", "PT-0006", 2)
    assert later.after == timedelta(hours=21, minutes=30)
    assert days.after == timedelta(days=2) and minutes.after == timedelta(minutes=90)
    assert paid.describe() == "the shop marks PT-0006 paid"
    assert later.describe() == "the shop follows up 21:30:00 later"


def test_checks_compare_the_joined_text_case_insensitively() -> None:
    seen = Observation(
        intent="availability",
        replies=[
            SentMessage("TEXT", "PT-0001 is available for $120"),
            SentMessage("IMAGE"),
            SentMessage("TEXT", "Want me to HOLD it?"),
        ],
    )
    passing = Expect(
        intent="availability",
        reply_contains=["pt-0001", "hold it"],
        reply_not_contains=["sold"],
        reply_matches=[r"\$\d+", r"(?i)want ME"],
        replies=3,
        images=1,
        no_reply=False,
    )
    assert differences(passing, seen) == []
    failing = Expect(intent="sizing", reply_matches=[r"want me"], replies=2, images=0)
    assert differences(failing, seen) == [
        "expected intent sizing, got availability",
        "expected 2 replies, got 3",
        "expected 0 images, got 1",
        'no match for /want me/ in: "PT-0001 is available for $120\\nWant me to HOLD it?"',
    ]
    assert differences(Expect(no_reply=True), seen)[0].startswith(
        'expected no reply, got 3 messages: "PT-0001'
    )
    assert differences(Expect(no_reply=False), Observation(intent=None)) == [
        "expected a reply, got none"
    ]
    assert differences(Expect(reply_contains=["x"]), Observation(intent=None)) == [
        'missing "x" in: (no text)'
    ]


def test_quoted_replies_stay_on_one_line_and_short() -> None:
    assert quote("a\nb") == '"a\\nb"'
    long = quote("x" * 500, limit=20)
    assert long == '"' + "x" * 19 + '…"'
