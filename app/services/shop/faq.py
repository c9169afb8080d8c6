"""The shop's FAQ: importing it from CSV, and finding the entry a policy question is about.

Retrieval is offline and explainable: each word of the question is looked up in the
entries' topic, keywords, question and answer (in that order of weight), weighted by how
rare it is among the entries, with light stemming ("shipping" = "ship") and typo
tolerance. An answer is only given when the entry covers most of what was asked; below
that the shop's person confirms instead of the bot guessing.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from rapidfuzz import fuzz
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.db.models import FaqEntry
from app.db.repositories.faq import FaqRepository
from app.services.shop.catalog_io import ImportFailed, ImportSummary
from app.services.shop.words import simplify

FAQ_COLUMNS: tuple[str, ...] = ("topic", "question", "answer", "keywords")
DEFAULT_FAQ = Path(__file__).resolve().parents[2] / "demo" / "faq.csv"


def _split_keywords(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split("|") if part.strip()]
    return value


class FaqRecord(BaseModel):
    """One row of a FAQ file: `keywords` are `|`-separated words or phrases customers use."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    topic: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")
    question: str = Field(min_length=1, max_length=500)
    answer: str = Field(min_length=1, max_length=2000)
    keywords: Annotated[list[str], BeforeValidator(_split_keywords)] = []


def parse_faq(text: str) -> list[FaqRecord]:
    """Validate a whole FAQ CSV (header: topic,question,answer,keywords)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in FAQ_COLUMNS if name not in header]
    if missing:
        raise ImportFailed(1, missing[0], "missing column in the header")
    records: list[FaqRecord] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(reader, start=2):
        cells = {
            (name or "").strip(): (cell.strip() or None) if isinstance(cell, str) else None
            for name, cell in raw.items()
        }
        if all(value is None for value in cells.values()):
            continue
        unknown = [name for name in cells if name not in FAQ_COLUMNS]
        if unknown:
            raise ImportFailed(index, unknown[0] or None, "unknown column or extra cell")
        try:
            record = FaqRecord.model_validate(cells)
        except ValidationError as error:
            first = error.errors()[0]
            column = str(first["loc"][0]) if first["loc"] else None
            raise ImportFailed(index, column, str(first["msg"])) from None
        if record.topic in seen:
            raise ImportFailed(
                index, "topic", f"duplicate {record.topic} (row {seen[record.topic]})"
            )
        seen[record.topic] = index
        records.append(record)
    return records


async def import_faq(
    session: AsyncSession, text: str, *, update_existing: bool = True
) -> ImportSummary:
    """Create or update entries by topic; topics not in the file are left alone. With
    `update_existing=False` only missing topics are added (seeding keeps staff edits)."""
    records = parse_faq(text)
    existing = await FaqRepository(session).by_topics([record.topic for record in records])
    summary = ImportSummary()
    for record in records:
        keywords = "|".join(record.keywords)
        entry = existing.get(record.topic)
        if entry is None:
            session.add(
                FaqEntry(
                    topic=record.topic,
                    question=record.question,
                    answer=record.answer,
                    keywords=keywords,
                )
            )
            summary.created += 1
        elif update_existing and (entry.question, entry.answer, entry.keywords) != (
            record.question,
            record.answer,
            keywords,
        ):
            entry.question, entry.answer, entry.keywords = record.question, record.answer, keywords
            summary.updated += 1
        else:
            summary.unchanged += 1
    await session.flush()
    return summary


async def load_default_faq(session: AsyncSession) -> ImportSummary:
    """Seed the FAQ shipped with the project (app/demo/faq.csv), a starting point the
    shop edits: topics that already exist are kept as they are."""
    return await import_faq(session, DEFAULT_FAQ.read_text("utf-8"), update_existing=False)


def fill_answer(answer: str, settings: Settings) -> str:
    """Answers may quote shop settings, so the FAQ never contradicts them."""
    values: Mapping[str, str] = {
        "hold_hours": str(settings.hold_hours),
        "max_holds": str(settings.max_holds_per_customer),
        "offer_policy": settings.offer_policy_text,
        "checkout": settings.checkout_text,
        "shop_name": settings.shop_name,
    }
    for name, value in values.items():
        answer = answer.replace("{" + name + "}", value)
    return answer


# --- Retrieval ---------------------------------------------------------------------------

# fmt: off
_FAQ_STOPWORDS = frozenset([
    "a", "able", "about", "accept", "accepted", "after", "all", "allow", "allowed", "also", "am",
    "an", "and", "any", "anything", "are", "as", "at", "be", "been", "but", "by", "can", "cant",
    "could", "did", "do", "does", "dont", "for", "from", "get", "give", "got", "had", "has", "have",
    "hello", "hey", "hi", "how", "i", "if", "im", "in", "info", "information", "into", "is", "it",
    "its", "just", "know", "let", "like", "me", "my", "need", "of", "ok", "okay", "on", "or", "our",
    "please", "pls", "policy", "possible", "question", "questions", "so", "some", "tell", "thanks",
    "that", "the", "their", "them", "there", "they", "this", "to", "u", "ur", "us", "use", "want",
    "was", "we", "what", "whats", "when", "where", "which", "who", "why", "will", "with", "work",
    "works", "would", "yall", "you", "your", "youre",
])
# fmt: on

_FIELD_WEIGHTS = {"topic": 3.0, "keywords": 3.0, "question": 2.0, "answer": 1.0}
_MIN_COVERAGE = 0.5


def stem(word: str) -> str:
    for suffix in ("ments", "ment", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]  # "shipp" -> "ship"
    return word


def _stems(text: str) -> list[str]:
    return [stem(w) for w in simplify(text).split() if w not in _FAQ_STOPWORDS and len(w) >= 2]


@dataclass(frozen=True)
class FaqHit:
    entry: FaqEntry
    score: float
    coverage: float


class FaqIndex:
    def __init__(self, entries: Sequence[FaqEntry]) -> None:
        self.entries = list(entries)
        self._fields: list[dict[str, set[str]]] = [
            {
                "topic": set(_stems(entry.topic.replace("_", " "))),
                "keywords": set(_stems(entry.keywords.replace("|", " "))),
                "question": set(_stems(entry.question)),
                "answer": set(_stems(entry.answer)),
            }
            for entry in self.entries
        ]

    def _weight(self, word: str, fields: dict[str, set[str]]) -> float:
        best = 0.0
        for field, words in fields.items():
            weight = _FIELD_WEIGHTS[field]
            if word in words:
                best = max(best, weight)
            elif len(word) >= 5 and any(len(w) >= 5 and fuzz.ratio(word, w) >= 88 for w in words):
                best = max(best, weight * 0.8)
        return best

    def search(self, text: str) -> FaqHit | None:
        words = list(dict.fromkeys(_stems(text)))
        if not words or not self.entries:
            return None
        count = len(self.entries)
        weights = [[self._weight(word, fields) for fields in self._fields] for word in words]
        rarity: list[float] = []
        for per_entry in weights:
            hits = sum(1 for w in per_entry if w > 0)
            rarity.append(math.log(1 + count / hits) if hits else math.log(1 + count))
        best: FaqHit | None = None
        for index, entry in enumerate(self.entries):
            score = 0.0
            covered = 0.0
            strong = False
            for word_index in range(len(words)):
                weight = weights[word_index][index]
                if weight > 0:
                    score += weight * rarity[word_index]
                    covered += rarity[word_index]
                    strong = strong or weight >= _FIELD_WEIGHTS["question"] * 0.8
            coverage = covered / sum(rarity)
            if strong and coverage >= _MIN_COVERAGE and (best is None or score > best.score):
                best = FaqHit(entry, score, coverage)
        return best


def best_answer(entries: Sequence[FaqEntry], text: str) -> FaqEntry | None:
    hit = FaqIndex(entries).search(text)
    return None if hit is None else hit.entry
