"""/insights: the shop's numbers for a period, as charts and tables, and each table as CSV."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from app.core.clock import utc_now
from app.core.config import Settings
from app.core.errors import BadPayload, NotFound
from app.services.insights.report import (
    Insights,
    Period,
    PeriodInvalid,
    build_insights,
    rate,
    tables,
)
from app.services.shop.catalog_io import defuse_formula
from app.web import charts
from app.web.deps import StaffPage
from app.web.guards import StaffRoute
from app.web.templating import templates

router = APIRouter(prefix="/insights", route_class=StaffRoute, include_in_schema=False)

FirstDay = Annotated[date | None, Query(alias="from")]
LastDay = Annotated[date | None, Query(alias="to")]


class PeriodRefused(BadPayload):
    code = "period_invalid"


def _period(settings: Settings, first: date | None, last: date | None) -> Period:
    today = utc_now().astimezone(ZoneInfo(settings.shop_timezone)).date()
    try:
        return Period.of(first, last, settings.shop_timezone, today)
    except PeriodInvalid as error:
        raise PeriodRefused(str(error)) from None


async def _insights(request: Request, first: date | None, last: date | None) -> Insights:
    state = request.app.state
    settings: Settings = state.settings
    period = _period(settings, first, last)
    return await build_insights(state.session_factory, settings, period, utc_now())


@router.get("")
async def insights_page(
    request: Request, staff: StaffPage, first: FirstDay = None, last: LastDay = None
) -> Response:
    found = await _insights(request, first, last)
    return templates.TemplateResponse(
        request, "insights.html", {"staff": staff, "found": found, **_charts(found)}
    )


@router.get("/{table}.csv")
async def export(
    request: Request,
    staff: StaffPage,
    table: Annotated[str, Path(pattern=r"^[a-z_]{1,40}$")],
    first: FirstDay = None,
    last: LastDay = None,
) -> Response:
    found = await _insights(request, first, last)
    chosen = tables(found).get(table)
    if chosen is None:
        raise NotFound("There is no such table.")
    header, rows = chosen
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([defuse_formula(v) if isinstance(v, str) else v for v in row])
    period = found.period
    name = f"insights-{table}-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _charts(found: Insights) -> dict[str, Any]:
    days = sorted(found.by_day_intent)
    every = max(1, len(days) // 10)
    day_label = [day.strftime("%b %d") for day in days]
    speed = {row.day: row for row in found.speed}
    funnel = found.funnel
    return {
        "tables": tables(found),
        "rate": rate,
        "volume_by_intent": charts.stacked_columns(
            [(day_label[n], found.by_day_intent[day]) for n, day in enumerate(days)],
            found.intents,
            title="DMs per day, by intent",
            label_every=every,
        ),
        "volume_by_layer": charts.stacked_columns(
            [(day_label[n], found.by_day_layer[day]) for n, day in enumerate(days)],
            found.layers,
            title="DMs per day, by router layer",
            label_every=every,
        ),
        "volume_by_hour": charts.stacked_columns(
            [(f"{hour:02d}", counts) for hour, counts in sorted(found.by_hour_intent.items())],
            found.intents,
            title="DMs by hour of the day (shop time), by intent",
            label_every=3,
        ),
        "speed_chart": charts.line_chart(
            [
                (
                    day_label[n],
                    {"p50": speed[day].p50_seconds, "p90": speed[day].p90_seconds}
                    if day in speed
                    else {},
                )
                for n, day in enumerate(days)
            ],
            ["p50", "p90"],
            title="First reply time per day (seconds)",
            unit=" s",
            label_every=every,
        ),
        "funnel_chart": charts.horizontal_bars(
            [
                ("conversations", funnel.conversations),
                ("asked about a piece", funnel.asked_about_piece),
                ("holds", funnel.holds),
                ("sales", funnel.sales),
                ("holds expired", funnel.expired),
            ],
            title="From conversation to sale",
        ),
        "intent_legend": charts.legend(found.intents),
        "layer_legend": charts.legend(found.layers),
        "speed_legend": charts.legend(["p50", "p90"]),
    }
