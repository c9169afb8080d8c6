"""House rules of app/, read from its source with `ast`: no queries outside app/db, one
clock, enum members used as members. Each failure names the file and line.

The rules exist so that the next change cannot quietly undo the structure: a query in a
service cannot be found or reused by the repository that owns the table, a second clock
cannot be moved by a test, and `.value` on a status member turns a typed comparison back
into a string one that no type checker follows.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
MODELS = APP / "db" / "models.py"


@dataclass(frozen=True, order=True)
class Offence:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


Checker = Callable[[str, ast.Module], list[Offence]]

# --- (a) queries live in app/db ------------------------------------------------------------

QUERY_BUILDERS = {"select", "insert", "update", "delete", "text", "func"}
SESSION_CALLS = {"get", "execute", "scalar", "scalars"}
SESSION_NAMES = {"session", "connection"}


def _is_sqlalchemy(module: str | None) -> bool:
    return module is not None and (module == "sqlalchemy" or module.startswith("sqlalchemy."))


def _names_a_session(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in SESSION_NAMES
    # `self.session`: a repository-shaped class outside app/db is the same query elsewhere.
    return (
        isinstance(node, ast.Attribute)
        and node.attr in SESSION_NAMES
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def query_offences(path: str, tree: ast.Module) -> list[Offence]:
    found: list[Offence] = []
    sqlalchemy_modules: set[str] = set()  # `import sqlalchemy as sa` makes `sa.select` one
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _is_sqlalchemy(node.module):
            for alias in node.names:
                if alias.name in QUERY_BUILDERS:
                    what = f"imports {alias.name} from {node.module}"
                    found.append(Offence(path, node.lineno, what))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _is_sqlalchemy(alias.name):
                    sqlalchemy_modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in QUERY_BUILDERS
            and isinstance(node.value, ast.Name)
            and node.value.id in sqlalchemy_modules
        ):
            found.append(Offence(path, node.lineno, f"uses {node.value.id}.{node.attr}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SESSION_CALLS
            and _names_a_session(node.func.value)
        ):
            what = f"calls {ast.unparse(node.func)}()"
            found.append(Offence(path, node.lineno, what))
    return found


# --- (b) one clock ---------------------------------------------------------------------------

WALL_CLOCK_READS = {"datetime": {"now", "utcnow", "today"}, "date": {"today"}}


def clock_offences(path: str, tree: ast.Module) -> list[Offence]:
    classes: dict[str, str] = {}  # local name -> "datetime" or "date"
    modules: set[str] = set()  # local names of the datetime module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "datetime":
            for alias in node.names:
                if alias.name in WALL_CLOCK_READS:
                    classes[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            modules |= {
                alias.asname or alias.name for alias in node.names if alias.name == "datetime"
            }
    found: list[Offence] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Name) and owner.id in classes:
            cls = classes[owner.id]
        elif (
            isinstance(owner, ast.Attribute)
            and owner.attr in WALL_CLOCK_READS
            and isinstance(owner.value, ast.Name)
            and owner.value.id in modules
        ):
            cls = owner.attr
        else:
            continue
        if node.func.attr in WALL_CLOCK_READS[cls]:
            found.append(Offence(path, node.lineno, f"calls {ast.unparse(node.func)}()"))
    return found


# --- (c) enum members, not their strings -------------------------------------------------------


def model_enums() -> set[str]:
    tree = ast.parse(MODELS.read_text("utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base).split(".")[-1] in {"StrEnum", "Enum"} for base in node.bases)
    }


def enum_value_offences(
    path: str, tree: ast.Module, enums: set[str] | None = None
) -> list[Offence]:
    enums = model_enums() if enums is None else enums
    # Where they are defined, and wherever imported (under any name, from any re-export).
    local = set(enums) if path == "app/db/models.py" else set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            local |= {alias.asname or alias.name for alias in node.names if alias.name in enums}

    def is_enum(node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in local
        return isinstance(node, ast.Attribute) and node.attr in enums  # `models.OrderStatus`

    found: list[Offence] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "value"
            and isinstance(node.value, ast.Attribute)
            and is_enum(node.value.value)
        ):
            found.append(Offence(path, node.lineno, ast.unparse(node)))
    return found


_TRANSITION_ATTRIBUTES = frozenset({"mode", "human_since"})


def transition_offences(path: str, tree: ast.Module) -> list[Offence]:
    """A conversation's mode, its hand-off time, or an outbox row's status set by hand."""
    found: list[Offence] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        value = getattr(node, "value", None)
        pairs: list[tuple[ast.expr, ast.expr | None]] = []
        for target in targets:
            if isinstance(target, ast.Tuple):
                values = value.elts if isinstance(value, ast.Tuple) else [None] * len(target.elts)
                pairs.extend(zip(target.elts, values, strict=False))
            else:
                pairs.append((target, value))
        for target, assigned in pairs:
            if not isinstance(target, ast.Attribute):
                continue
            sets_outbox_status = (
                target.attr == "status"
                and isinstance(assigned, ast.Attribute)
                and isinstance(assigned.value, ast.Name)
                and assigned.value.id == "OutboxStatus"
            )
            if target.attr in _TRANSITION_ATTRIBUTES or sets_outbox_status:
                found.append(Offence(path, node.lineno, f"sets {ast.unparse(target)}"))
    return found


def business_id_offences(path: str, tree: ast.Module) -> list[Offence]:
    """Reading TIKTOK_BUSINESS_ID from the settings: the shop's account is the connected
    one when there is one (app/services/tiktok/account.py)."""
    return [
        Offence(path, node.lineno, f"reads {ast.unparse(node)}")
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "tiktok_business_id"
    ]


# --- the rules over app/ ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    check: Checker
    applies_to: Callable[[str], bool]
    advice: str


RULES = {
    rule.name: rule
    for rule in (
        Rule(
            "queries",
            query_offences,
            lambda path: not path.startswith("app/db/"),
            "queries belong to a repository under app/db/",
        ),
        Rule(
            "clock",
            clock_offences,
            lambda path: path != "app/core/clock.py",
            "ask app.core.clock (utc_now, unix_now), which a test can move",
        ),
        Rule(
            "enum-values",
            enum_value_offences,
            lambda path: True,
            "compare and assign the enum member itself",
        ),
        Rule(
            "transitions",
            transition_offences,
            lambda path: (
                path
                not in (
                    "app/services/messaging/transitions.py",
                    "app/db/models.py",
                    "app/db/base.py",
                )
            ),
            "change a conversation's mode or a reply's state through "
            "app/services/messaging/transitions.py",
        ),
        Rule(
            "business-id",
            business_id_offences,
            # The settings define it; the dev tools (the TikTok stand-in, the scenario
            # runner, the simulator's view of the stand-in) play the configured account.
            lambda path: (
                path != "app/core/config.py"
                and not path.startswith(("app/sandbox/", "app/scenarios/"))
                and path != "app/web/simulator.py"
            ),
            "ask BusinessAccount (app/services/tiktok/account.py): a connected account wins",
        ),
    )
}

_PROBE = (
    "the readiness probe's SELECT 1 on a bare connection asks whether PostgreSQL answers at "
    "all; it reads no table, so no repository owns it"
)
# (rule, module, what) -> why it may. Each entry names exactly what is allowed, so anything
# else the same module does is still reported, and must still be needed.
ALLOWED = {
    ("queries", "app/api/health.py", "imports text from sqlalchemy"): _PROBE,
    ("queries", "app/api/health.py", "calls connection.execute()"): _PROBE,
    ("clock", "app/worker/celery_app.py", "calls datetime.now()"): (
        "the timestamp of a log line written from a signal handler is when it was written: a "
        "test moving the domain's clock must not misdate the worker's own log"
    ),
}


def app_modules(root: Path = ROOT) -> Iterator[tuple[str, ast.Module]]:
    for file in sorted((root / "app").rglob("*.py")):
        path = file.relative_to(root).as_posix()
        yield path, ast.parse(file.read_text("utf-8"), filename=path)


def offences(rule: Rule, root: Path = ROOT) -> list[Offence]:
    return sorted(
        offence
        for path, tree in app_modules(root)
        if rule.applies_to(path)
        for offence in rule.check(path, tree)
    )


def broken(rule: Rule, root: Path = ROOT) -> list[str]:
    return [
        str(offence)
        for offence in offences(rule, root)
        if (rule.name, offence.path, offence.what) not in ALLOWED
    ]


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_app_keeps_the_house_rule(rule: Rule) -> None:
    found = broken(rule)
    assert not found, f"house rule {rule.name!r}: {rule.advice}\n" + "\n".join(found)


def test_every_allowed_exception_is_still_needed() -> None:
    found = {
        (rule.name, offence.path, offence.what)
        for rule in RULES.values()
        for offence in offences(rule)
    }
    stale = [" ".join(entry) for entry in ALLOWED if entry not in found]
    assert not stale, "no longer needed, remove from ALLOWED:\n" + "\n".join(stale)


def test_the_rules_read_the_whole_app() -> None:
    paths = {path for path, _ in app_modules()}
    assert {"app/core/clock.py", "app/db/models.py", "app/services/messaging/inbound.py"} <= paths
    assert {"ConversationMode", "MessageStatus", "OutboxStatus"} <= model_enums()


# --- each rule catches what it is meant to ------------------------------------------------------


def check(checker: Checker, source: str, path: str = "app/services/example.py") -> list[str]:
    return [str(offence) for offence in checker(path, ast.parse(source))]


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy import select",
        "from sqlalchemy import Column, func",
        "from sqlalchemy.dialects.postgresql import insert",
        "from sqlalchemy.sql import text as sql_text",
        "import sqlalchemy as sa\nquery = sa.update(Item)",
        "async def f(session):\n    return await session.scalars(q)",
        "async def f(connection):\n    await connection.execute(q)",
        "class Repo:\n    async def f(self):\n        return await self.session.get(Item, 1)",
    ],
)
def test_the_query_rule_catches(source: str) -> None:
    assert check(query_offences, source), source


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy import BigInteger, Column, Select",
        "from sqlalchemy.ext.asyncio import AsyncSession",
        "async def f(session):\n    session.add(row)\n    await session.flush()",
        "async def f(request):\n    return request.session.get('staff_id')",
    ],
)
def test_the_query_rule_leaves_alone(source: str) -> None:
    assert check(query_offences, source) == [], source


def test_the_query_rule_names_file_and_line() -> None:
    source = "x = 1\n\nasync def f(session):\n    await session.execute(q)\n"
    assert check(query_offences, source) == ["app/services/example.py:4: calls session.execute()"]


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import UTC, datetime\nnow = datetime.now(UTC)",
        "from datetime import datetime as dt\nnow = dt.utcnow()",
        "import datetime\nnow = datetime.datetime.now()",
        "import datetime as d\nday = d.date.today()",
        "from datetime import date\nday = date.today()",
    ],
)
def test_the_clock_rule_catches(source: str) -> None:
    assert check(clock_offences, source), source


@pytest.mark.parametrize(
    "source",
    [
        "from app.core.clock import utc_now\nnow = utc_now()",
        "from datetime import UTC, datetime\nwhen = datetime.fromtimestamp(1, UTC)",
        "import time\nstarted = time.perf_counter()",
        "now = clock.now()",
    ],
)
def test_the_clock_rule_leaves_alone(source: str) -> None:
    assert check(clock_offences, source) == [], source


ENUMS = {"ConversationMode", "OutboxStatus"}


@pytest.mark.parametrize(
    "source",
    [
        "from app.db.models import ConversationMode\nmode = ConversationMode.HUMAN.value",
        "from app.db.models import OutboxStatus as S\nok = row.status == S.SENT.value",
        "from app.db import models\nmode = models.ConversationMode.BOT.value",
        "from app.db.models import OutboxStatus\nlabel = f'{OutboxStatus.UNKNOWN.value}!'",
    ],
)
def test_the_enum_rule_catches(source: str) -> None:
    assert check(lambda path, tree: enum_value_offences(path, tree, ENUMS), source), source


@pytest.mark.parametrize(
    "source",
    [
        "from app.db.models import ConversationMode\nhuman = mode is ConversationMode.HUMAN",
        "values = [member.value for member in enum]",
        "from app.services.messaging.inbound import Outcome\nname = Outcome.HANDLED.value",
        "problem = error.problem.value",
    ],
)
def test_the_enum_rule_leaves_alone(source: str) -> None:
    assert check(lambda path, tree: enum_value_offences(path, tree, ENUMS), source) == []


def test_the_enum_rule_knows_the_enums_where_they_are_defined() -> None:
    source = (
        "class ConversationMode(StrEnum):\n    BOT = 'bot'\n\nDEFAULT = ConversationMode.BOT.value"
    )
    offences = check(
        lambda path, tree: enum_value_offences(path, tree, ENUMS), source, "app/db/models.py"
    )
    assert offences == ["app/db/models.py:4: ConversationMode.BOT.value"]


@pytest.mark.parametrize(
    "source",
    [
        "conversation.mode = ConversationMode.HUMAN",
        "conversation.human_since = None",
        "entry.status = OutboxStatus.PENDING",
        "entry.status, entry.last_error = OutboxStatus.FAILED, 'x'",
    ],
)
def test_the_transition_rule_catches(source: str) -> None:
    assert check(transition_offences, source), source


@pytest.mark.parametrize(
    "source",
    [
        "hold.status = HoldStatus.EXPIRED",
        "message.status = MessageStatus.PROCESSED",
        "mode = conversation.mode",
        "transitions.take_over(conversation, now)",
    ],
)
def test_the_transition_rule_leaves_alone(source: str) -> None:
    assert check(transition_offences, source) == []


def test_the_business_id_rule_catches_a_read_of_the_setting() -> None:
    assert check(business_id_offences, "business = settings.tiktok_business_id")
    assert check(business_id_offences, "business = await account.business_id()") == []


def test_each_rule_fails_on_an_app_that_breaks_it(tmp_path: Path) -> None:
    """The whole path, files and scopes included, on a small app/ of its own: the same
    code passes where the rule allows it and is reported anywhere else."""
    query = (
        "from sqlalchemy import select\n\n"
        "async def f(session):\n    await session.execute(select(1))\n"
    )
    wall_clock = "from datetime import UTC, datetime\n\nNOW = datetime.now(UTC)\n"
    member_value = "from app.db.models import OutboxStatus\n\nSENT = OutboxStatus.SENT.value\n"
    files = {
        "app/db/repositories/things.py": query,
        "app/services/things.py": query,
        "app/core/clock.py": wall_clock,
        "app/services/stamps.py": wall_clock,
        "app/web/labels.py": member_value,
    }
    for path, source in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(source, "utf-8")

    assert broken(RULES["queries"], tmp_path) == [
        "app/services/things.py:1: imports select from sqlalchemy",
        "app/services/things.py:4: calls session.execute()",
    ]
    assert broken(RULES["clock"], tmp_path) == ["app/services/stamps.py:3: calls datetime.now()"]
    assert broken(RULES["enum-values"], tmp_path) == [
        "app/web/labels.py:3: OutboxStatus.SENT.value"
    ]
