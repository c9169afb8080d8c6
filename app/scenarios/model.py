"""The scenario file format, validated at the boundary.

A scenario is hand-written YAML, so every mistake gets a message naming the file, the turn
and the key instead of a traceback, and unknown keys are refused: a misspelt `expect` key
would otherwise make a turn pass without checking anything.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Hashable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from app.scenarios.raw import read_webhook

DEFAULT_CUSTOMER = "customer-1"
MAX_DUPLICATES = 100
MESSAGE_KEYS = ("send", "share_post", "image", "raw", "shop")
# What the shop does in a `shop` turn (this project's addition to the format): staff mark
# the customer's hold paid in the inbox, import catalogue rows (`csv`, with its header), or
# the beat's follow-through runs (optionally as it would `after` a while: the run's own clock
# moves, the bot's processes keep real time).
ShopAction = Literal["mark_paid", "import_catalog", "follow_up"]
# Expectations about a webhook or a conversation's handling: a shop turn posts none.
_MESSAGE_ONLY_EXPECT = ("intent", "status", "mode", "dead_letters")
_DURATION = re.compile(r"^(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m(?:in)?)?$")


class ScenarioError(Exception):
    """A scenario file that cannot be played; the message says what is wrong."""


def _text_from_scalar(value: Any) -> Any:
    # YAML reads `send: 3` or an unquoted video id as an int; the author meant the digits.
    # Booleans stay refused: `send: yes` is YAML for True, and guessing "yes" would hide it.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _list_from_scalar(value: Any) -> Any:
    # `reply_contains: "sold"` is a natural way to write a list of one.
    return [value] if isinstance(value, str) else value


def _lower_case(value: Any) -> Any:
    # `mode: Human` means the same as `mode: human`.
    return value.lower() if isinstance(value, str) else value


Text = Annotated[str, BeforeValidator(_text_from_scalar)]
Needles = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_list_from_scalar)]
Mode = Annotated[Literal["bot", "human"], BeforeValidator(_lower_case)]


def _duration(value: Any) -> Any:
    # `after: 21h30m`, `after: 2d`, `after: 90m`; a bare number is minutes.
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(minutes=value)
    if isinstance(value, str):
        found = _DURATION.match(value.strip().lower())
        if found is None or not any(found.groupdict().values()):
            raise ValueError(f"{value!r} is not a duration like 21h30m, 2d or 90m")
        days, hours, minutes = (int(found[name] or 0) for name in ("d", "h", "m"))
        return timedelta(days=days, hours=hours, minutes=minutes)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _json_problem(value: Any, path: str = "") -> str | None:
    """Why `value` (read from YAML) is not a JSON value, naming where; None if it is.

    YAML reads more than JSON holds: an unquoted `2026-11-30` is a date, `on:` is the key
    True. Serialising those would either fail or send something the author did not write."""
    where = f"at {path}: " if path else ""
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where}{value} is not a JSON number"
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _json_problem(item, f"{path}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where}the key {key!r} is not a string in YAML (quote it)"
            problem = _json_problem(item, f"{path}.{key}" if path else key)
            if problem is not None:
                return problem
        return None
    return f"{where}{value!r} is not a JSON value in YAML (quote it)"


def _raw_body(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value  # the JSON text, posted as it is: even malformed, if that is the test
    if not isinstance(value, dict):
        raise ValueError("must be the webhook body as a mapping, or its JSON text as a string")
    problem = _json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


RawBody = Annotated[dict[str, Any] | str, BeforeValidator(_raw_body)]


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    intent: str | None = None
    reply_contains: Needles = Field(default_factory=list)
    reply_not_contains: Needles = Field(default_factory=list)
    reply_matches: Needles = Field(default_factory=list)
    replies: int | None = Field(default=None, ge=0)
    images: int | None = Field(default=None, ge=0)
    # True: nothing may be sent. False: at least one message must be sent.
    no_reply: bool | None = None
    # The webhook's HTTP status (every copy of a duplicated delivery).
    status: int | None = Field(default=None, ge=100, le=599)
    # The conversation's mode once the turn is over; a conversation the bot never recorded
    # is in bot mode (it would answer the next message).
    mode: Mode | None = None
    # Dead letters created while the turn ran (parked events and parked replies).
    dead_letters: int | None = Field(default=None, ge=0)

    @field_validator("reply_matches")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"invalid regular expression {pattern!r}: {error}") from None
        return patterns

    @model_validator(mode="after")
    def _consistent(self) -> Expect:
        if self.no_reply:
            wanted = [
                name for name in ("reply_contains", "reply_matches") if getattr(self, name)
            ] + [name for name in ("replies", "images") if getattr(self, name)]
            if wanted:
                raise ValueError(f"no_reply: true contradicts {', '.join(wanted)}")
        if self.no_reply is False and self.replies == 0:
            raise ValueError("no_reply: false contradicts replies: 0")
        if self.images is not None and self.replies is not None and self.images > self.replies:
            raise ValueError(f"images: {self.images} is more than replies: {self.replies}")
        return self


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    send: Text | None = Field(default=None, min_length=1)
    share_post: Text | None = Field(default=None, min_length=1)
    image: bool | None = None
    # One webhook body as TikTok would send it, posted unchanged (see raw_body). `customer`
    # does not apply: the body's `content.from_user` says who wrote.
    raw: RawBody | None = None
    shop: ShopAction | None = None
    # mark_paid: the held piece (default: the customer's latest hold). follow_up: how much
    # later than now it runs.
    sku: Text | None = Field(default=None, pattern=r"^PT-\d{4}$")
    after: Duration | None = None
    csv: str | None = Field(default=None, min_length=1)
    customer: Text | None = Field(default=None, min_length=1)
    duplicate: int = Field(default=1, ge=1, le=MAX_DUPLICATES)
    expect: Expect = Field(default_factory=Expect)

    @model_validator(mode="after")
    def _exactly_one_message(self) -> Turn:
        if self.image is False:
            raise ValueError("image must be true (leave it out for a text or share_post turn)")
        given = [name for name in MESSAGE_KEYS if getattr(self, name) is not None]
        if len(given) != 1:
            found = f"found {', '.join(given)}" if given else "found none"
            raise ValueError(f"a turn needs exactly one of {', '.join(MESSAGE_KEYS)} ({found})")
        if self.sku is not None and self.shop != "mark_paid":
            raise ValueError("sku goes with shop: mark_paid")
        if self.after is not None and self.shop != "follow_up":
            raise ValueError("after goes with shop: follow_up")
        if (self.csv is not None) != (self.shop == "import_catalog"):
            raise ValueError(
                "shop: import_catalog needs csv (the rows with their header), and only it"
            )
        if self.shop is not None:
            if self.duplicate != 1:
                raise ValueError("duplicate applies to webhooks, not to a shop turn")
            wrong = [
                name for name in _MESSAGE_ONLY_EXPECT if getattr(self.expect, name) is not None
            ]
            if wrong:
                raise ValueError(f"a shop turn posts no webhook: {', '.join(wrong)} cannot apply")
        return self

    def raw_body(self) -> bytes:
        """The bytes a raw turn posts: its string as UTF-8, or its mapping as compact JSON
        with keys in the order written (non-ASCII text as UTF-8, as TikTok sends it).

        A body that is not valid UTF-8 can be written too, in Python's convention: `\\udcXX`
        in a double-quoted YAML string posts the byte XX."""
        assert self.raw is not None, "not a raw turn"
        text = self.raw
        if not isinstance(text, str):
            text = json.dumps(text, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        try:
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # another lone surrogate: its UTF-8-like bytes
            return text.encode("utf-8", "surrogatepass")

    def describe(self) -> str:
        if self.send is not None:
            return f"sends {self.send!r}"
        if self.share_post is not None:
            return f"shares video {self.share_post}"
        if self.raw is not None:
            return read_webhook(self.raw_body()).describe()
        if self.shop == "mark_paid":
            return f"the shop marks {self.sku or 'the hold'} paid"
        if self.shop == "import_catalog":
            return "the shop imports catalogue rows"
        if self.shop == "follow_up":
            return f"the shop follows up{f' {self.after} later' if self.after else ''}"
        return "sends a photo"


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    customer: Text = Field(default=DEFAULT_CUSTOMER, min_length=1)
    turns: list[Turn] = Field(min_length=1)

    def customer_for(self, turn: Turn) -> str:
        return turn.customer or self.customer


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a turn with two `expect` blocks
    would lose the first one, so a repeated key is an error here."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError("no such file") from None
    except UnicodeDecodeError:
        raise ScenarioError("not UTF-8 text") from None
    except OSError as error:
        raise ScenarioError(f"cannot read: {error.strerror or error}") from None
    return parse_scenario(text)


def parse_scenario(text: str) -> Scenario:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as error:
        where = ""
        if error.problem_mark is not None:
            mark = error.problem_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        raise ScenarioError(f"not valid YAML{where}: {error.problem or error}") from None
    except yaml.YAMLError as error:
        raise ScenarioError(f"not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ScenarioError("expected a mapping with `name` and `turns` at the top level")
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        raise ScenarioError(describe_errors(error)) from None


_FIELDS_AT = {
    "scenario": sorted(Scenario.model_fields),
    "turn": sorted(Turn.model_fields),
    "expect": sorted(Expect.model_fields),
}


def describe_errors(error: ValidationError, limit: int = 3) -> str:
    problems = [_describe(detail) for detail in error.errors()]
    shown = "; ".join(problems[:limit])
    if len(problems) > limit:
        shown += f"; and {len(problems) - limit} more"
    return shown


def _describe(detail: ErrorDetails) -> str:
    loc = list(detail["loc"])
    where: list[str] = []
    level = "scenario"
    if len(loc) >= 2 and loc[0] == "turns" and isinstance(loc[1], int):
        where.append(f"turn {loc[1] + 1}")
        level = "turn"
        loc = loc[2:]
    if loc and loc[0] == "expect":
        level = "expect"
    path = ".".join(str(part) for part in loc)
    kind = detail["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _FIELDS_AT[level], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        message = f"unknown key{hint}"
    elif kind == "missing":
        message = "is required"
    elif kind == "string_type":
        message = "must be a string (quote it)"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        message = "must be a mapping of keys"
    else:
        message = str(detail["msg"]).removeprefix("Value error, ")
    if path:
        where.append(path)
    return f"{': '.join(where)}: {message}" if where else message
