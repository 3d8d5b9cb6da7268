"""A line chart of one metric over time, as inline SVG (no script, no styles: the pages' CSP holds).

Text is escaped here, as the chart is inserted into a page unescaped.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 300, 70, 20, 30, 40


def line_chart(points: list[tuple[datetime, float]], title: str, unit: str = "") -> str:
    """SVG of `points` (time, value), sorted by time; an empty frame with a note when there are none."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="18" font-size="14">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="black"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="black"/>',
    ]
    if not points:
        out.append(f'<text x="{LEFT + 10}" y="{TOP + plot_h / 2}">No data points in this period.</text>')
        return "".join(out) + "</svg>"
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    low = min(0.0, min(v for _, v in points))
    high = max(v for _, v in points)
    span_t = (t1 - t0) or 1.0
    span_v = (high - low) or 1.0

    def xy(t: datetime, v: float) -> str:
        x = LEFT + plot_w * (t.timestamp() - t0) / span_t
        y = TOP + plot_h - plot_h * (v - low) / span_v
        return f"{x:.1f},{y:.1f}"

    path = " ".join(xy(t, v) for t, v in points)
    out.append(f'<polyline points="{path}" fill="none" stroke="#0b57d0" stroke-width="2"/>')
    for t, v in points if len(points) <= 60 else []:
        x, y = xy(t, v).split(",")
        out.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="#0b57d0"/>')
    label = escape(unit if unit and unit != "None" else "")
    out += [
        f'<text x="{LEFT - 5}" y="{TOP + 4}" text-anchor="end">{high:,.4g}</text>',
        f'<text x="{LEFT - 5}" y="{TOP + plot_h}" text-anchor="end">{low:,.4g}</text>',
        f'<text x="{LEFT - 5}" y="{TOP + plot_h / 2}" text-anchor="end">{label}</text>',
        f'<text x="{LEFT}" y="{HEIGHT - 15}">{points[0][0]:%Y-%m-%d %H:%M}</text>',
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 15}" text-anchor="end">{points[-1][0]:%Y-%m-%d %H:%M}</text>',
    ]
    return "".join(out) + "</svg>"
