"""Charts drawn on the server as inline SVG: no script, no CDN, nothing the page's content
security policy has to allow (presentation attributes, not style). A shop owner reads them
at a glance; the tables beside them, and their CSV export, hold the exact numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

PALETTE = (
    "#c2410c", "#0f766e", "#7c3aed", "#b45309", "#2563eb", "#be185d",
    "#4d7c0f", "#475569", "#0891b2", "#a16207", "#9333ea", "#64748b",
)  # fmt: skip
_AXIS = "#94a3b8"
_TEXT = "#334155"
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _nice_top(value: float) -> float:
    """A round number at or above `value` for the axis."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def _frame(width: int, height: int, title: str, body: list[str]) -> Markup:
    label = escape(title)
    # Every text that reaches the SVG went through escape(); the rest is numbers.
    return Markup(  # noqa: S704
        f'<svg class="chart" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{label}</title>{''.join(body)}</svg>"
    )


def legend(series: Sequence[str]) -> Markup:
    items = "".join(
        f'<li><span class="swatch"><svg width="10" height="10" aria-hidden="true">'
        f'<rect width="10" height="10" fill="{colour(n)}"/></svg></span>{escape(name)}</li>'
        for n, name in enumerate(series)
    )
    return Markup(f'<ul class="legend">{items}</ul>')  # noqa: S704 (names escaped above)


def stacked_columns(
    columns: Sequence[tuple[str, Mapping[str, int]]],
    series: Sequence[str],
    *,
    title: str,
    width: int = 720,
    height: int = 220,
    label_every: int = 1,
) -> Markup:
    """One column per label, stacked by series (in `series` order, bottom up)."""
    left, bottom, top = 36, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max((sum(values.get(name, 0) for name in series) for _, values in columns), default=0)
    ceiling = _nice_top(peak)
    slot = plot_w / max(1, len(columns))
    bar = max(1.0, slot * 0.72)
    body = _y_axis(left, top, plot_w, plot_h, ceiling)
    for index, (label, values) in enumerate(columns):
        x = left + index * slot + (slot - bar) / 2
        y: float = top + plot_h
        for n, name in enumerate(series):
            count = values.get(name, 0)
            if not count:
                continue
            h = plot_h * count / ceiling
            y -= h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour(n)}"><title>{escape(label)} · {escape(name)}: {count}</title>'
                "</rect>"
            )
        if index % label_every == 0:
            body.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                f'fill="{_TEXT}" {_FONT}>{escape(label)}</text>'
            )
    return _frame(width, height, title, body)


def line_chart(
    points: Sequence[tuple[str, Mapping[str, float]]],
    series: Sequence[str],
    *,
    title: str,
    unit: str = "",
    width: int = 720,
    height: int = 200,
    label_every: int = 1,
) -> Markup:
    """One line per series over the labels; a label without a value breaks its line."""
    left, bottom, top = 44, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max((v for _, values in points for v in values.values()), default=0.0)
    ceiling = _nice_top(peak)
    slot = plot_w / max(1, len(points))
    body = _y_axis(left, top, plot_w, plot_h, ceiling, unit)
    for n, name in enumerate(series):
        segment: list[str] = []
        for index, (label, values) in enumerate(points):
            value = values.get(name)
            if value is None:
                if len(segment) > 1:
                    body.append(_polyline(segment, colour(n)))
                segment = []
                continue
            x = left + index * slot + slot / 2
            y = top + plot_h - plot_h * value / ceiling
            segment.append(f"{x:.1f},{y:.1f}")
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour(n)}">'
                f"<title>{escape(label)} · {escape(name)}: {value:.1f}{escape(unit)}</title>"
                "</circle>"
            )
        if len(segment) > 1:
            body.append(_polyline(segment, colour(n)))
    for index, (label, _) in enumerate(points):
        if index % label_every == 0:
            x = left + index * slot + slot / 2
            body.append(
                f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" fill="{_TEXT}" '
                f"{_FONT}>{escape(label)}</text>"
            )
    return _frame(width, height, title, body)


def horizontal_bars(
    rows: Sequence[tuple[str, int]], *, title: str, width: int = 720, row_height: int = 26
) -> Markup:
    """One bar per row, longest first as given: a funnel."""
    label_w = 170
    height = row_height * max(1, len(rows)) + 6
    peak = max((count for _, count in rows), default=0) or 1
    body: list[str] = []
    for index, (label, count) in enumerate(rows):
        y = 3 + index * row_height
        w = (width - label_w - 60) * count / peak
        body.append(
            f'<text x="{label_w - 8}" y="{y + row_height * 0.62:.1f}" text-anchor="end" '
            f'fill="{_TEXT}" {_FONT}>{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_height - 8}" '
            f'fill="{colour(index)}"><title>{escape(label)}: {count}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + row_height * 0.62:.1f}" fill="{_TEXT}" '
            f"{_FONT}>{count}</text>"
        )
    return _frame(width, height, title, body)


def _y_axis(
    left: int, top: int, plot_w: int, plot_h: int, ceiling: float, unit: str = ""
) -> list[str]:
    parts = []
    for step in range(5):
        value = ceiling * step / 4
        y = top + plot_h - plot_h * step / 4
        shown = f"{value:g}{unit}"
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'stroke="{_AXIS}" stroke-width="{1 if step == 0 else 0.4}"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="{_TEXT}" {_FONT}>'
            f"{escape(shown)}</text>"
        )
    return parts


def _polyline(points: list[str], stroke: str) -> str:
    return (
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{stroke}" '
        'stroke-width="2" stroke-linejoin="round"/>'
    )
