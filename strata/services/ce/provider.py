"""Cost Explorer: GetCostAndUsage over the bill Strata prices from its meter (strata.sim.pricing),
so cost tooling written for AWS reads what the same usage would cost there.

Granularity DAILY or MONTHLY; metrics UnblendedCost, BlendedCost, AmortizedCost, NetUnblendedCost,
NetAmortizedCost (all one figure: on-demand list prices, no reservations, savings plans, credits
or discounts exist here) and UsageQuantity; GroupBy the SERVICE and USAGE_TYPE dimensions.
Filters, tags, cost categories, billing views and HOURLY granularity are refused.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime, run_blocking
from strata.services.parameters import refusing
from strata.sim import pricing
from strata.sim.clock import clock

COST_METRICS = {"AmortizedCost", "BlendedCost", "NetAmortizedCost", "NetUnblendedCost", "UnblendedCost"}
METRICS = {*COST_METRICS, "UsageQuantity", "NormalizedUsageAmount"}
GROUP_KEYS = {
    "SERVICE": lambda item: pricing.service_name(item.service),
    "USAGE_TYPE": lambda item: item.usage_type,
}


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


def _day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text[:10]) if len(text) in (10, 20) else date.fromisoformat(text)
    except ValueError:
        raise validation(f"{what} date is not a valid date: {text}") from None


def _epoch(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def _periods(start: date, end: date, granularity: str) -> list[tuple[date, date]]:
    out = []
    cur = start
    while cur < end:
        if granularity == "DAILY":
            nxt = cur + timedelta(days=1)
        else:
            nxt = date(cur.year + (cur.month == 12), cur.month % 12 + 1, 1)
        out.append((cur, min(nxt, end)))
        cur = min(nxt, end)
    return out


def _amount(value: float, metric: str) -> dict:
    if metric in COST_METRICS:
        return {"Amount": f"{value:.10f}".rstrip("0").rstrip(".") or "0", "Unit": "USD"}
    return {"Amount": f"{value:.10f}".rstrip("0").rstrip(".") or "0", "Unit": "N/A"}


@refusing("ce")
class CostExplorerProvider:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    async def get_cost_and_usage(self, ctx: RequestContext, req: dict) -> dict:
        period = req["TimePeriod"]
        start, end = _day(period["Start"], "Start"), _day(period["End"], "End")
        if start >= end:
            raise validation("Start date (and hour) should be before end date (and hour)")
        granularity = req["Granularity"]
        if granularity not in ("DAILY", "MONTHLY"):
            raise validation(f"Granularity {granularity} is not supported by Strata (DAILY or MONTHLY)")
        metrics = req["Metrics"]
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            raise validation(f"Invalid metrics: {unknown or metrics}")
        if "NormalizedUsageAmount" in metrics:
            raise validation(
                "NormalizedUsageAmount is not supported by Strata (it has no reserved instances)"
            )
        groups = req.get("GroupBy") or []
        if len(groups) > 2:
            raise validation("You can group by at most two dimensions")
        for g in groups:
            if g.get("Type") != "DIMENSION" or g.get("Key") not in GROUP_KEYS:
                raise validation(f"Strata groups by the dimensions SERVICE and USAGE_TYPE only, not {g}")
        if req.get("NextPageToken"):
            raise ServiceError("InvalidNextTokenException", "The NextPageToken is invalid.", 400)
        items = await run_blocking(pricing.usage, _epoch(start), _epoch(end))
        today = clock.now().date()
        results = []
        for lo, hi in _periods(start, end, granularity):
            a, b = _epoch(lo), _epoch(hi)
            inside = [i for i in items if a <= i.at < b]
            result: dict = {
                "TimePeriod": {"Start": lo.isoformat(), "End": hi.isoformat()},
                "Total": {},
                "Groups": [],
                "Estimated": hi > today,
            }
            if groups:
                sums: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
                for item in inside:
                    key = tuple(GROUP_KEYS[g["Key"]](item) for g in groups)
                    sums[key][0] += item.cost
                    sums[key][1] += item.quantity
                result["Groups"] = [
                    {
                        "Keys": list(key),
                        "Metrics": {m: _amount(v[0] if m in COST_METRICS else v[1], m) for m in metrics},
                    }
                    for key, v in sorted(sums.items())
                ]
            else:
                cost = sum(i.cost for i in inside)
                quantity = sum(i.quantity for i in inside)
                result["Total"] = {m: _amount(cost if m in COST_METRICS else quantity, m) for m in metrics}
            results.append(result)
        return {
            "ResultsByTime": results,
            "GroupDefinitions": [{"Type": g["Type"], "Key": g["Key"]} for g in groups],
            "DimensionValueAttributes": [],
        }
