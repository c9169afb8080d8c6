"""The shop's FAQ: import (file and CLI), seeding, and offline retrieval."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import PROJECT_ROOT, Settings
from app.db.models import FaqEntry
from app.services import replies
from app.services.shop.catalog_io import ImportFailed
from app.services.shop.faq import (
    DEFAULT_FAQ,
    FaqIndex,
    fill_answer,
    import_faq,
    load_default_faq,
    parse_faq,
)
from tests.services.shop.conftest import MakeChat, reply_text

if TYPE_CHECKING:
    from tests.conftest import TestServices

HEADER = "topic,question,answer,keywords\n"


def test_default_faq_file_is_valid() -> None:
    records = parse_faq(DEFAULT_FAQ.read_text("utf-8"))
    topics = {record.topic for record in records}
    assert {"shipping", "international", "returns", "payment", "pickup", "location"} <= topics


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("topic,question,answer\nx,q,a\n", "keywords"),
        (HEADER + "ship,q,a,k\nship,q2,a2,k2\n", "duplicate ship"),
        (HEADER + "Bad Topic!,q,a,k\n", "topic"),
        (HEADER + "ok,,a,k\n", "question"),
    ],
)
def test_bad_files_are_refused_with_the_row(text: str, problem: str) -> None:
    with pytest.raises(ImportFailed) as error:
        parse_faq(text)
    assert problem in str(error.value)


async def test_import_creates_updates_and_seeding_keeps_edits(session: AsyncSession) -> None:
    first = await load_default_faq(session)
    assert first.created >= 10 and first.updated == 0
    entry = await session.scalar(select(FaqEntry).where(FaqEntry.topic == "shipping"))
    assert entry is not None
    entry.answer = "We ship on Mondays only."  # staff edited it
    again = await load_default_faq(session)
    assert (again.created, again.updated) == (0, 0)
    assert entry.answer == "We ship on Mondays only."
    # An explicit import of a file does update the topic.
    updated = await import_faq(session, HEADER + 'shipping,How long?,"Two days.",ship\n')
    assert (updated.created, updated.updated) == (0, 1)
    assert entry.answer == "Two days." and entry.keywords == "ship"


@pytest.fixture
async def faq_index(session: AsyncSession) -> FaqIndex:
    await load_default_faq(session)
    return FaqIndex((await session.scalars(select(FaqEntry))).all())


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("do you ship to Canada?", "international"),
        ("how long does shipping take?", "shipping"),
        ("how much is shipping", "shipping_cost"),
        ("returns?", "returns"),
        ("can I get a refund", "returns"),
        ("can I pay with paypal", "payment"),
        ("do you take venmo?", "payment"),
        ("where are you located", "location"),
        ("can I pick up locally?", "pickup"),
        ("how long do holds last?", "holds"),
        ("are these authentic or fakes", "authenticity"),
        ("is everything washed", "cleaning"),
        ("shiping to the uk?", "international"),
    ],
)
async def test_retrieval_finds_the_entry(faq_index: FaqIndex, question: str, topic: str) -> None:
    hit = faq_index.search(question)
    assert hit is not None and hit.entry.topic == topic, question


@pytest.mark.parametrize(
    "question", ["do you sell gift cards?", "what's the weather like", "asdf qwerty", ""]
)
async def test_retrieval_does_not_guess(faq_index: FaqIndex, question: str) -> None:
    assert faq_index.search(question) is None


def test_answers_quote_the_settings() -> None:
    settings = Settings(hold_hours=12, max_holds_per_customer=2)
    text = fill_answer("Held for {hold_hours} h, {max_holds} at a time. {unknown}", settings)
    assert text == "Held for 12 h, 2 at a time. {unknown}"


async def test_policy_answers_come_from_the_faq_table(make_chat: MakeChat) -> None:
    chat = await make_chat()
    answer = reply_text(await chat.say("do you ship to Canada?"))
    assert "Canada" in answer and "customs" in answer
    holds = reply_text(await chat.say("how long can you hold items?"))
    assert "24 h" in holds and "3 pieces" in holds
    unknown = await chat.say("do you sell gift cards?")
    assert reply_text(unknown) == replies.POLICY_UNKNOWN and "3" in reply_text(unknown)
    assert unknown.intent == "policy"


async def test_policy_without_any_faq_asks_a_person(make_chat: MakeChat) -> None:
    chat = await make_chat()
    for entry in (await chat.session.scalars(select(FaqEntry))).all():
        await chat.session.delete(entry)
    await chat.session.flush()
    assert reply_text(await chat.say("do you ship to Canada?")) == replies.POLICY_UNKNOWN


async def test_faq_import_command(
    services: TestServices, committed_db: AsyncEngine, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", "faq", "import", *args],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    done = cli(str(DEFAULT_FAQ))
    assert done.returncode == 0, done.stderr
    assert "0 updated, 0 unchanged" in done.stdout
    assert "0 created, 0 updated" in cli(str(DEFAULT_FAQ)).stdout
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "ok,q,a,k\nok,q,a,k\n")
    failed = cli(str(bad))
    assert failed.returncode == 1 and "row 3" in failed.stderr
    async with AsyncSession(committed_db) as session:
        topics = (await session.scalars(select(FaqEntry.topic))).all()
    assert len(topics) == len(parse_faq(DEFAULT_FAQ.read_text("utf-8")))
