"""Time and cost: the simulated clock with advance buttons, the bill over time per service; health.

The bill comes from Cost Explorer (GetCostAndUsage, DAILY, grouped by SERVICE) called as the
signed-in identity, like any AWS cost tool. The clock and the services' health are Strata's own,
not AWS APIs: like the admin API (strata.gateway.admin), the console moves the clock and shows
health only to a browser on a loopback address, and moves it only on a CSRF-checked POST.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from datetime import timedelta
from typing import Any

from markupsafe import Markup

from strata.console.web import Page, url
from strata.engines.process import EngineProcess
from strata.protocol.http import HttpResponse
from strata.sim.chart import cost_chart
from strata.sim.clock import clock, parse_duration
from strata.sim.scheduler import scheduler

STEPS = ("1h", "1d", "30d")
BILL_DAYS = 31


def _local(page: Page) -> bool:
    try:
        return ipaddress.ip_address(page.request.client).is_loopback
    except ValueError:
        return False


async def _bill(page: Page) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """({service: {day: cost}}, {service: total}) of the last BILL_DAYS simulated days."""
    end = clock.now().date() + timedelta(days=1)
    start = end - timedelta(days=BILL_DAYS)
    answer = await page.call(
        "ce",
        "get_cost_and_usage",
        TimePeriod={"Start": start.isoformat(), "End": end.isoformat()},
        Granularity="DAILY",
        Metrics=["UnblendedCost"],
        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}],
    )
    daily: dict[str, dict[str, float]] = defaultdict(dict)
    totals: dict[str, float] = defaultdict(float)
    for period in answer.get("ResultsByTime", []):
        day = period["TimePeriod"]["Start"]
        for group in period.get("Groups", []):
            cost = float(group["Metrics"]["UnblendedCost"]["Amount"])
            daily[group["Keys"][0]][day] = cost
            totals[group["Keys"][0]] += cost
    return dict(daily), dict(sorted(totals.items(), key=lambda kv: -kv[1]))


async def time_page(page: Page) -> HttpResponse:
    daily, totals = await _bill(page)
    chart = Markup(cost_chart(daily)) if daily else Markup("")  # noqa: S704 - cost_chart escapes its text
    return page.render(
        "time.html",
        title="Time and cost",
        now=clock.now(),
        offset=timedelta(seconds=round(clock.offset)),
        rules=scheduler.status(),
        local=_local(page),
        steps=STEPS,
        chart=chart,
        totals=totals,
        total=sum(totals.values()),
        days=BILL_DAYS,
    )


async def advance(page: Page) -> HttpResponse:
    if not _local(page):
        page.say("error", "The clock moves only for a browser on this machine (a loopback address).")
        return page.redirect(url("/time"))
    step = page.form.get("step", "").strip()
    try:
        clock.advance(parse_duration(step))
    except ValueError as e:
        page.say("error", str(e))
        return page.redirect(url("/time"))
    ran = await scheduler.catch_up()
    done = "; ".join(
        f"{rule}: " + ", ".join(f"{k} {v}" for k, v in what.items())
        for rule, what in (ran or {}).items()
        if what
    )
    page.say(
        "ok",
        f"Moved the clock forward {step}; it is now {clock.now():%Y-%m-%d %H:%M:%S} UTC."
        + (f" {done}" if done else ""),
    )
    return page.redirect(url("/time"))


def _engines() -> list[dict[str, Any]]:
    """Each engine process Strata supervises: name, pid, running, where it runs."""
    rows = [
        {"name": e.spec.name, "pid": e.pid or "", "running": e.running(), "dir": str(e.spec.run_dir)}
        for e in list(EngineProcess.instances)
    ]
    return sorted(rows, key=lambda r: (r["dir"], r["name"]))


async def health(page: Page) -> HttpResponse:
    local = _local(page)
    states: dict[str, Any] = page.app.services.health() if local else {}
    return page.render(
        "health.html",
        title="Health",
        local=local,
        states=states,
        engines=_engines() if local else [],
        uptime=timedelta(seconds=round(clock.monotonic() - page.app.started_at)),
    )


ROUTES = {
    ("GET", "/time"): time_page,
    ("POST", "/time/advance"): advance,
    ("GET", "/health"): health,
}
