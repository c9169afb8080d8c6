"""/insights against a seeded month of traffic whose numbers this test computes itself, in
Python, from the records it wrote (bench/traffic.py): volume, speed, outcomes, demand and
what was missed, in the shop's time zone across a daylight-saving change; the page, its
date filter and the CSV export of every table."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import utc_now
from app.core.config import get_settings
from app.db.session import create_session_factory
from app.services.insights.report import Insights, Period, build_insights, tables
from app.services.shop.catalog_io import defuse_formula
from bench.traffic import PIECE_INTENTS, SeedMessage, Traffic, month_of_traffic, write
from tests.conftest import Clock

NEW_YORK = "America/New_York"
# Twenty days across the end of daylight-saving time in New York (1 November).
FIRST, DAYS = date(2026, 10, 20), 20
LAST = FIRST + timedelta(days=DAYS - 1)


@pytest.fixture
async def seeded(committed_db: AsyncEngine) -> Traffic:
    # One day more on each side than the period looked at: those must not count.
    traffic = month_of_traffic(FIRST - timedelta(days=1), days=DAYS + 2, per_day=30, tz=NEW_YORK)
    await write(committed_db, traffic)
    return traffic


async def insights_of(engine: AsyncEngine, first: date, last: date, tz: str) -> Insights:
    settings = get_settings().model_copy(update={"shop_timezone": tz})
    period = Period(first, last, tz)
    return await build_insights(create_session_factory(engine), settings, period, _NOW)


_NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _bounds(first: date, last: date, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    start = datetime(first.year, first.month, first.day, tzinfo=zone).astimezone(UTC)
    after = last + timedelta(days=1)
    return start, datetime(after.year, after.month, after.day, tzinfo=zone).astimezone(UTC)


def _percentiles(values: list[float]) -> tuple[float, float]:
    # PostgreSQL's percentile_cont interpolates linearly between the closest ranks, as
    # numpy's default does.
    return float(np.percentile(values, 50)), float(np.percentile(values, 90))


async def test_every_number_is_the_one_computed_from_the_seed(
    committed_db: AsyncEngine, seeded: Traffic
) -> None:
    found = await insights_of(committed_db, FIRST, LAST, NEW_YORK)
    zone = ZoneInfo(NEW_YORK)
    start, end = _bounds(FIRST, LAST, NEW_YORK)
    inbound = [
        m for m in seeded.messages if m.direction == "inbound" and start <= m.created_at < end
    ]
    assert inbound and len(inbound) < len([m for m in seeded.messages if m.direction == "inbound"])

    # Volume, by the shop's day and hour.
    by_day: Counter[tuple[date, str]] = Counter()
    by_layer: Counter[tuple[date, str]] = Counter()
    by_hour: Counter[tuple[int, str]] = Counter()
    for m in inbound:
        local = m.created_at.astimezone(zone)
        by_day[local.date(), m.intent or "unrouted"] += 1  # never routed: a late message
        by_layer[local.date(), m.layer or "none"] += 1
        by_hour[local.hour, m.intent or "unrouted"] += 1
    assert {
        (day, intent): n
        for day, counts in found.by_day_intent.items()
        for intent, n in counts.items()
    } == dict(by_day)
    assert {
        (day, layer): n for day, counts in found.by_day_layer.items() for layer, n in counts.items()
    } == dict(by_layer)
    assert {
        (hour, intent): n
        for hour, counts in found.by_hour_intent.items()
        for intent, n in counts.items()
    } == dict(by_hour)
    assert sorted(found.by_day_intent) == [FIRST + timedelta(days=n) for n in range(DAYS)]
    assert found.messages == len(inbound)

    # Speed: each customer message to the bot's next answer at TikTok.
    conversation: dict[int, list[SeedMessage]] = defaultdict(list)
    for m in seeded.messages:
        conversation[m.conversation].append(m)
    reply_seconds: dict[date, list[float]] = defaultdict(list)
    for m in inbound:
        later = sorted(
            (o for o in conversation[m.conversation]
             if o.direction == "outbound" and o.created_at >= m.created_at),
            key=lambda o: o.created_at,
        )  # fmt: skip
        bot = next((o for o in later if o.sent_by == "bot" and o.proactive_kind is None), None)
        if bot is not None and bot.sent_at is not None:
            seconds = (bot.sent_at - (m.sent_at or m.created_at)).total_seconds()
            reply_seconds[m.created_at.astimezone(zone).date()].append(max(0.0, seconds))
    assert [row.day for row in found.speed] == sorted(reply_seconds)
    for row in found.speed:
        p50, p90 = _percentiles(reply_seconds[row.day])
        assert row.answered == len(reply_seconds[row.day])
        assert row.p50_seconds == pytest.approx(p50, abs=1e-3)
        assert row.p90_seconds == pytest.approx(p90, abs=1e-3)

    # Each hand-off (whatever its reason) to a person's first reply after it.
    handed: dict[str | None, list[datetime]] = defaultdict(list)
    waited: dict[str | None, list[float]] = defaultdict(list)
    for customer, started, reason in seeded.handoffs:
        if not start <= started < end:
            continue
        staff = min(
            (o.created_at for o in conversation[customer]
             if o.sent_by == "staff" and o.created_at >= started),
            default=None,
        )  # fmt: skip
        for key in (None, reason):
            handed[key].append(started)
            if staff is not None:
                waited[key].append((staff - started).total_seconds())
    assert len({reason for _, _, reason in seeded.handoffs}) == 3  # the seed has every kind
    reasons = sorted(
        (reason for reason in handed if reason is not None),
        key=lambda reason: (-len(handed[reason]), reason),
    )
    assert [row.reason for row in found.handoff] == [None, *reasons]
    for row in found.handoff:
        assert (row.handed_over, row.answered) == (len(handed[row.reason]), len(waited[row.reason]))
        p50, p90 = _percentiles(waited[row.reason])
        assert row.p50_seconds == pytest.approx(p50, abs=1e-3)
        assert row.p90_seconds == pytest.approx(p90, abs=1e-3)

    # Outcomes.
    holds = [h for h in seeded.holds if start <= h.created_at < end]
    funnel = found.funnel
    assert funnel.conversations == len({m.conversation for m in inbound})
    assert funnel.asked_about_piece == len(
        {m.conversation for m in inbound if m.intent in PIECE_INTENTS}
    )
    assert (funnel.holds, funnel.sales, funnel.expired) == (
        len(holds),
        sum(h.status == "converted" for h in holds),
        sum(h.status == "expired" for h in holds),
    )
    expected_kinds: dict[str, list[int]] = {}
    for m in seeded.messages:
        if m.proactive_kind is None or not start <= m.created_at < end:
            continue
        row = expected_kinds.setdefault(m.proactive_kind, [0, 0, 0, 0, 0])
        if m.status != "sent":
            row[1] += 1
            continue
        row[0] += 1
        day_after, two_days_after = m.created_at + timedelta(days=1), m.created_at + timedelta(2)
        row[2] += any(
            r.direction == "inbound" and m.created_at < r.created_at <= day_after
            for r in conversation[m.conversation]
        )
        theirs = [
            h for h in seeded.holds
            if h.customer == m.conversation and m.created_at < h.created_at <= two_days_after
        ]  # fmt: skip
        row[3] += bool(theirs)
        row[4] += any(h.status == "converted" for h in theirs)
    assert {
        r.kind: [r.sent, r.not_sent, r.replied, r.holds, r.sales] for r in found.proactive
    } == expected_kinds

    # Demand.
    # A DM asked about a piece when it named it or its answer was about it: once per DM.
    asked = Counter(
        sku
        for m in inbound
        for sku in {m.entities.get("sku"), *m.entities.get("pieces", ())} - {None}
    )
    assert any(m.entities.get("pieces") and "sku" not in m.entities for m in inbound)
    held = Counter(h.sku for h in holds)
    waiting = Counter(sku for _, sku in dict.fromkeys(seeded.waitlist))
    assert {d.sku: (d.asked, d.holds, d.waitlist) for d in found.demand} == {
        sku: (asked[sku], held[sku], waiting[sku]) for sku in set(asked) | set(held)
    }
    assert [d.asked for d in found.demand] == sorted((d.asked for d in found.demand), reverse=True)
    sizes = Counter(m.entities["size"] for m in inbound if "size" in m.entities)
    stock = Counter(item.fits_like for item in seeded.items if item.status == "available")
    assert {g.size: (g.asked, g.in_stock) for g in found.sizes} == {
        size: (n, stock[size]) for size, n in sizes.items()
    }

    # Missed.
    not_sent = [
        m for m in seeded.messages
        if m.direction == "outbound" and m.status == "not_sent" and start <= m.created_at < end
    ]  # fmt: skip
    assert (found.missed.window_closed, found.missed.quota, found.missed.other_not_sent) == (
        len(not_sent),
        0,
        0,
    )
    assert found.missed.dead_letters == sum(start <= at < end for at in seeded.dead_letters)
    late = [m for m in inbound if (m.status_reason or "").startswith("window closed")]
    assert late and found.missed.unanswered == len(late)
    assert {w.customer for w in found.waiting} == {
        f"@{seeded.customers[n]}" for n in seeded.waiting
    }


async def test_the_page_its_filter_and_the_csv_of_every_table(
    signed_in: httpx.AsyncClient, committed_db: AsyncEngine, seeded: Traffic, clock: Clock
) -> None:
    clock.advance(_NOW - utc_now())  # the page's "now", for the hours hand-offs have waited
    query = {"from": FIRST.isoformat(), "to": LAST.isoformat()}
    page = await signed_in.get("/insights", params=query)
    assert page.status_code == 200
    found = await insights_of(committed_db, FIRST, LAST, get_settings().shop_timezone)
    assert f'<span class="value" id="kpi-dms">{found.messages}</span>' in page.text
    for chart in ("DMs per day, by intent", "First reply time per day", "From conversation"):
        assert f'<svg class="chart" role="img" aria-label="{chart}' in page.text
    assert f'value="{FIRST.isoformat()}"' in page.text

    for name, (header, rows) in tables(found).items():
        assert f"/insights/{name}.csv?from={FIRST}&amp;to={LAST}" in page.text
        exported = await signed_in.get(f"/insights/{name}.csv", params=query)
        assert exported.status_code == 200, name
        assert exported.headers["content-type"].startswith("text/csv")
        assert f"insights-{name}-{FIRST}-{LAST}.csv" in exported.headers["content-disposition"]
        read = list(csv.reader(io.StringIO(exported.text)))
        assert read[0] == header
        # Text cells are defused for spreadsheets ("@seed-customer-1" would be a formula).
        expected = [
            [defuse_formula(c) if isinstance(c, str) else str(c) for c in row] for row in rows
        ]
        assert read[1:] == expected, name

    default = await signed_in.get("/insights")  # the last 30 days, shop time
    assert default.status_code == 200
    first_default = (_NOW.date() - timedelta(days=29)).isoformat()
    assert f'name="from" value="{first_default}"' in default.text
    assert f'name="to" value="{_NOW.date().isoformat()}"' in default.text
    backwards = await signed_in.get("/insights", params={"from": LAST, "to": FIRST})
    assert backwards.status_code == 400
    assert (await signed_in.get("/insights/nothing.csv")).status_code == 404
    assert (await signed_in.get("/insights", params={"from": "soon"})).status_code == 422


async def test_insights_need_a_signed_in_person(web: httpx.AsyncClient) -> None:
    page = await web.get("/insights")
    assert page.status_code in (303, 401)
    assert (await web.get("/insights/funnel.csv")).status_code in (303, 401)
