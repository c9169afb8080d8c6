"""One period's insights, gathered from the repository's aggregates and shaped for the page
and its CSV export."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.core.config import Settings
from app.db.repositories.insights import (
    Funnel,
    HandoffSpeed,
    InsightsRepository,
    Missed,
    PieceDemand,
    ProactiveRow,
    SpeedRow,
    WaitingHandoff,
)
from app.db.repositories.items import ItemRepository
from app.db.session import SessionFactory
from app.services.shop.sizing import fit_of

MAX_DAYS = 366


class PeriodInvalid(ValueError):
    """A date range that cannot be shown; the message says why."""


@dataclass(frozen=True)
class Period:
    """Whole days in the shop's time zone, `first` to `last` included."""

    first: date
    last: date
    tz: str

    @classmethod
    def of(cls, first: date | None, last: date | None, tz: str, today: date) -> Period:
        last = last or today
        first = first or last - timedelta(days=29)
        if first > last:
            raise PeriodInvalid("the start of the period is after its end")
        if (last - first).days >= MAX_DAYS:
            raise PeriodInvalid(f"a period is at most {MAX_DAYS} days")
        return cls(first, last, tz)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), ZoneInfo(self.tz)).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(
            self.last + timedelta(days=1), time(), ZoneInfo(self.tz)
        ).astimezone(UTC)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


@dataclass(frozen=True)
class SizeGap:
    size: str
    asked: int
    in_stock: int


@dataclass
class Insights:
    period: Period
    generated_at: datetime
    by_day_intent: dict[date, Counter[str]] = field(default_factory=dict)
    by_day_layer: dict[date, Counter[str]] = field(default_factory=dict)
    by_hour_intent: dict[int, Counter[str]] = field(default_factory=dict)
    by_hour_layer: dict[int, Counter[str]] = field(default_factory=dict)
    speed: list[SpeedRow] = field(default_factory=list)
    # Every hand-off first, then per reason.
    handoff: list[HandoffSpeed] = field(default_factory=list)
    funnel: Funnel = field(default_factory=lambda: Funnel(0, 0, 0, 0, 0))
    proactive: list[ProactiveRow] = field(default_factory=list)
    demand: list[PieceDemand] = field(default_factory=list)
    sizes: list[SizeGap] = field(default_factory=list)
    missed: Missed = field(default_factory=lambda: Missed(0, 0, 0, 0, 0))
    waiting: list[WaitingHandoff] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(sum(counts.values()) for counts in self.by_day_intent.values())

    @property
    def intents(self) -> list[str]:
        return _ordered(self.by_day_intent)

    @property
    def layers(self) -> list[str]:
        return _ordered(self.by_day_layer)


def _ordered(table: dict[date, Counter[str]] | dict[int, Counter[str]]) -> list[str]:
    totals: Counter[str] = Counter()
    for counts in table.values():
        totals.update(counts)
    return [name for name, _ in totals.most_common()]


async def build_insights(
    session_factory: SessionFactory, settings: Settings, period: Period, now: datetime
) -> Insights:
    """The period's numbers. The aggregates run in three sessions at once: PostgreSQL works
    on them in parallel, and the page waits for the longest, not for their sum."""
    start, end, tz = period.start, period.end, period.tz
    found = Insights(period, now)

    async def volume(numbers: InsightsRepository) -> None:
        by_day_intent: dict[date, Counter[str]] = {day: Counter() for day in period.days}
        by_day_layer: dict[date, Counter[str]] = {day: Counter() for day in period.days}
        by_hour_intent: dict[int, Counter[str]] = defaultdict(Counter)
        by_hour_layer: dict[int, Counter[str]] = defaultdict(Counter)
        for row in await numbers.volume(start, end, tz):
            if row.day is not None and row.intent is not None:
                by_day_intent.setdefault(row.day, Counter())[row.intent] += row.messages
            elif row.day is not None and row.layer is not None:
                by_day_layer.setdefault(row.day, Counter())[row.layer] += row.messages
            elif row.hour is not None and row.intent is not None:
                by_hour_intent[row.hour][row.intent] += row.messages
            elif row.hour is not None and row.layer is not None:
                by_hour_layer[row.hour][row.layer] += row.messages
        found.by_day_intent, found.by_day_layer = by_day_intent, by_day_layer
        found.by_hour_intent = {hour: by_hour_intent[hour] for hour in range(24)}
        found.by_hour_layer = {hour: by_hour_layer[hour] for hour in range(24)}
        found.funnel = await numbers.funnel(start, end, tz)
        found.missed = await numbers.missed(start, end, tz)
        found.waiting = await numbers.waiting_handoffs()

    async def speed(numbers: InsightsRepository) -> None:
        found.speed = await numbers.speed(start, end, tz)

    async def the_rest(numbers: InsightsRepository) -> None:
        found.handoff = await numbers.handoff_speed(start, end, tz)
        found.proactive = await numbers.proactive(start, end, tz)
        found.demand = await numbers.demand(start, end, tz)
        asked_sizes = await numbers.sizes_asked(start, end, tz)
        stock = await ItemRepository(numbers.session).newest_available() if asked_sizes else []
        chart = list(settings.size_chart_pit_to_pit_in)
        in_stock = Counter(fit_of(item, chart).size for item in stock)
        found.sizes = [SizeGap(size, asked, in_stock.get(size, 0)) for size, asked in asked_sizes]

    async def in_a_session(work: Callable[[InsightsRepository], Awaitable[None]]) -> None:
        async with session_factory() as session:
            numbers = InsightsRepository(session)
            await numbers.with_room_to_sort()
            await work(numbers)

    await asyncio.gather(in_a_session(speed), in_a_session(volume), in_a_session(the_rest))
    return found


def rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


Table = tuple[list[str], list[Sequence[object]]]


def tables(found: Insights) -> dict[str, Table]:
    """Every table of the page, as CSV headers and rows (the export)."""
    intents, layers = found.intents, found.layers
    funnel = found.funnel
    steps = [
        ("conversations", funnel.conversations, funnel.conversations),
        ("asked about a piece", funnel.asked_about_piece, funnel.conversations),
        ("holds", funnel.holds, funnel.asked_about_piece),
        ("sales", funnel.sales, funnel.holds),
        ("holds expired", funnel.expired, funnel.holds),
    ]
    missed = found.missed
    return {
        "volume_by_day_intent": (
            ["day", *intents, "total"],
            [
                [day.isoformat(), *(counts[i] for i in intents), sum(counts.values())]
                for day, counts in sorted(found.by_day_intent.items())
            ],
        ),
        "volume_by_day_layer": (
            ["day", *layers, "total"],
            [
                [day.isoformat(), *(counts[name] for name in layers), sum(counts.values())]
                for day, counts in sorted(found.by_day_layer.items())
            ],
        ),
        "volume_by_hour": (
            ["hour", *intents, "total"],
            [
                [hour, *(counts[i] for i in intents), sum(counts.values())]
                for hour, counts in sorted(found.by_hour_intent.items())
            ],
        ),
        "first_reply": (
            ["day", "answered", "p50_seconds", "p90_seconds"],
            [
                [
                    row.day.isoformat(),
                    row.answered,
                    round(row.p50_seconds, 2),
                    round(row.p90_seconds, 2),
                ]
                for row in found.speed
            ],
        ),
        "handoff": (
            ["reason", "handed_over", "answered_by_a_person", "p50_seconds", "p90_seconds"],
            [
                [
                    row.reason or "every hand-off",
                    row.handed_over,
                    row.answered,
                    _round(row.p50_seconds),
                    _round(row.p90_seconds),
                ]
                for row in found.handoff
            ],
        ),
        "funnel": (
            ["step", "count", "of_previous"],
            [[name, count, rate(count, base)] for name, count, base in steps],
        ),
        "proactive": (
            ["kind", "sent", "not_sent", "replied", "holds", "sales"],
            [[r.kind, r.sent, r.not_sent, r.replied, r.holds, r.sales] for r in found.proactive],
        ),
        "demand": (
            ["sku", "title", "status", "dms", "holds", "waitlist", "days_listed"],
            [
                [
                    d.sku,
                    d.title,
                    d.status,
                    d.asked,
                    d.holds,
                    d.waitlist,
                    max(0, (found.generated_at - d.listed_at).days),
                ]
                for d in found.demand
            ],
        ),
        "sizes": (
            ["size", "asked", "in_stock"],
            [[gap.size, gap.asked, gap.in_stock] for gap in found.sizes],
        ),
        "missed": (
            ["what", "count"],
            [
                ["customer messages unanswered: window closed", missed.unanswered],
                ["not sent: window closed", missed.window_closed],
                ["not sent: reply quota", missed.quota],
                ["not sent: other", missed.other_not_sent],
                ["dead letters", missed.dead_letters],
                ["hand-offs waiting now", len(found.waiting)],
            ],
        ),
        "waiting": (
            ["conversation_id", "customer", "waiting_since", "hours_waiting"],
            [
                [
                    w.conversation_id,
                    w.customer,
                    w.since.isoformat(),
                    round((found.generated_at - w.since).total_seconds() / 3600, 1),
                ]
                for w in found.waiting
            ],
        ),
    }


def _round(value: float | None) -> float | str:
    return round(value, 2) if value is not None else ""
