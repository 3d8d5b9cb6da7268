"""A chart of cost over time per service, as a standalone SVG (`strata bill --chart FILE`).

Input: the bill's `daily` document, {service name: {"YYYY-MM-DD": cost}}. Output: one line per
service over the days of the bill, cumulative cost on the y axis (what the month-to-date bill
looks like), a legend and the axes' end values. Plain SVG text: no plotting library needed.
"""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT, MARGIN = 760, 360, 60
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def cost_chart(daily: dict[str, dict[str, float]], title: str = "Cost over time (cumulative, USD)") -> str:
    """The SVG document of `daily` costs (days missing for a service count as zero)."""
    days = sorted({d for per_day in daily.values() for d in per_day})
    series = {}
    for service, per_day in sorted(daily.items()):
        total, points = 0.0, []
        for d in days:
            total += per_day.get(d, 0.0)
            points.append(total)
        series[service] = points
    top = max((p[-1] for p in series.values() if p), default=0.0) or 1.0
    plot_w, plot_h = WIDTH - 2 * MARGIN - 180, HEIGHT - 2 * MARGIN

    def xy(i: int, value: float) -> str:
        x = MARGIN + (plot_w * i / max(1, len(days) - 1))
        y = MARGIN + plot_h - plot_h * value / top
        return f"{x:.1f},{y:.1f}"

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{MARGIN}" y="{MARGIN - 25}" font-size="15">{escape(title)}</text>',
        f'<line x1="{MARGIN}" y1="{MARGIN + plot_h}" x2="{MARGIN + plot_w}" y2="{MARGIN + plot_h}" stroke="black"/>',
        f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{MARGIN + plot_h}" stroke="black"/>',
        f'<text x="{MARGIN - 5}" y="{MARGIN + 4}" text-anchor="end">${top:,.2f}</text>',
        f'<text x="{MARGIN - 5}" y="{MARGIN + plot_h + 4}" text-anchor="end">$0</text>',
    ]
    if days:
        out.append(f'<text x="{MARGIN}" y="{MARGIN + plot_h + 18}">{escape(days[0])}</text>')
        out.append(
            f'<text x="{MARGIN + plot_w}" y="{MARGIN + plot_h + 18}" text-anchor="end">{escape(days[-1])}</text>'
        )
    for n, (service, points) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        path = " ".join(xy(i, v) for i, v in enumerate(points))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        y = MARGIN + 16 * n
        label = f"{service}: ${points[-1]:,.2f}" if points else service
        out.append(f'<rect x="{MARGIN + plot_w + 15}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{MARGIN + plot_w + 30}" y="{y}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
