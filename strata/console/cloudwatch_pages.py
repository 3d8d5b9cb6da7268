"""CloudWatch: the metrics of a namespace or a resource (ListMetrics), and a chart of one metric
over the last hours of simulated time (GetMetricStatistics), both as the signed-in identity.

Other pages link here with a resource's dimension (`dim=TableName=orders`)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from markupsafe import Markup

from strata.console.aws import AwsError
from strata.console.charts import line_chart
from strata.console.web import Page, url
from strata.protocol.http import HttpResponse
from strata.sim.clock import clock

STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
HOURS = (1, 6, 24, 72, 24 * 7, 24 * 30)
POINTS = 120  # about this many points per chart


def _dims(text: str) -> list[dict[str, str]]:
    if not text:
        return []
    try:
        doc = json.loads(text)
        return [{"Name": str(d["Name"]), "Value": str(d["Value"])} for d in doc]
    except (ValueError, TypeError, KeyError):
        raise AwsError("InvalidParameterValue", "dims is a JSON list of {Name, Value}") from None


async def metrics(page: Page) -> HttpResponse:
    q = page.query
    if q.get("metric"):
        return await _chart(page)
    params: dict[str, Any] = {}
    if q.get("namespace"):
        params["Namespace"] = q["namespace"]
    if q.get("dim"):
        name, _, value = q["dim"].partition("=")
        params["Dimensions"] = [{"Name": name, "Value": value}]
    if q.get("token"):
        params["NextToken"] = q["token"]
    listed = await page.call("cloudwatch", "list_metrics", **params)
    rows = [
        {
            "m": m,
            "href": url(
                "/cloudwatch",
                namespace=m["Namespace"],
                metric=m["MetricName"],
                dims=json.dumps(m.get("Dimensions", []), sort_keys=True),
            ),
        }
        for m in sorted(
            listed.get("Metrics", []),
            key=lambda m: (m["Namespace"], m["MetricName"], json.dumps(m.get("Dimensions", []))),
        )
    ]
    token = listed.get("NextToken")
    return page.render(
        "cloudwatch.html",
        title="CloudWatch metrics",
        q=q,
        rows=rows,
        next_url=url("/cloudwatch", namespace=q.get("namespace"), dim=q.get("dim"), token=token)
        if token
        else "",
    )


async def _chart(page: Page) -> HttpResponse:
    q = page.query
    stat = q.get("stat") if q.get("stat") in STATISTICS else "Average"
    try:
        hours = int(q.get("hours") or 24)
    except ValueError:
        hours = 24
    hours = min(max(hours, 1), 24 * 63)
    period = max(60, (hours * 3600 // POINTS) // 60 * 60)
    end = clock.now()
    dims = _dims(q.get("dims", ""))
    answer = await page.call(
        "cloudwatch",
        "get_metric_statistics",
        Namespace=q.get("namespace", ""),
        MetricName=q["metric"],
        Dimensions=dims,
        StartTime=end - timedelta(hours=hours),
        EndTime=end,
        Period=period,
        Statistics=[stat],
    )
    points = sorted((d["Timestamp"], float(d[stat])) for d in answer.get("Datapoints", []))
    unit = next((d.get("Unit", "") for d in answer.get("Datapoints", [])), "")
    title = f"{q['metric']} ({stat}, {period // 60} min periods)"
    return page.render(
        "cloudwatch_chart.html",
        title=q["metric"],
        q=q,
        dims=dims,
        stat=stat,
        hours=hours,
        statistics=STATISTICS,
        hour_choices=HOURS,
        chart=Markup(line_chart(points, title, unit)),  # noqa: S704 - line_chart escapes its text
        points=points,
    )


ROUTES = {("GET", "/cloudwatch"): metrics}
