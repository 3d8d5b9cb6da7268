"""The bill: AWS's us-east-1 list prices (`prices.json`, with its date and sources) applied to the
meter's events, over a period of simulated time.

Most events carry their billable quantity (byte-hours of S3 storage, request units, node-hours):
their line item is quantity x price, converted from the meter's unit to the price's unit (a month
is 730 hours, a GB 2^30 bytes, as AWS bills). EBS volumes and snapshots are metered as events
that change what is stored (VolumeCreated / Modified / Deleted, SnapshotStored / Deleted); their
GB-months, IOPS-months and throughput-months are the spans between those events, cut at the
period's ends and at each day, so a bill of any period (and a daily breakdown) is exact.

An event with no price is reported (`unpriced`), never silently dropped; events that AWS does not
charge for themselves (a node created, a failover) are listed in the table's `not_billed`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from strata.sim.meter import MeterEvent, meter

GB = float(2**30)
MONTH_HOURS = 730.0
DAY = 86400.0
_PRICES = Path(__file__).with_name("prices.json")
# (meter unit, price unit) -> how many price units one meter unit is
CONVERT: dict[tuple[str, str], float] = {
    ("byte-hour", "GB-Mo"): 1 / (GB * MONTH_HOURS),
    ("byte-hours", "GB-Mo"): 1 / (GB * MONTH_HOURS),
    ("GB-hour", "GB-Mo"): 1 / MONTH_HOURS,
    ("byte", "GB"): 1 / GB,
    ("bytes", "GB"): 1 / GB,
    ("hour", "Hrs"): 1.0,
    ("unit-hour", "Hrs"): 1.0,  # capacity units in force for an hour (DynamoDB provisioned)
    ("request", "Requests"): 1.0,
    ("RCU", "ReadRequestUnits"): 1.0,
    ("WCU", "WriteRequestUnits"): 1.0,
    ("rWCU", "ReplicatedWriteRequestUnits"): 1.0,
    ("MiBps-hours", "MiBps-Mo"): 1 / MONTH_HOURS,
    ("action-minute", "ActionMinutes"): 1.0,
    ("key-hour", "Keys-Mo"): 1 / MONTH_HOURS,
    ("ACU-hour", "ACU-Hr"): 1.0,
    ("GB-hour", "GB-Hrs"): 1.0,
    ("ECPU", "ECPU"): 1.0,
}
_RESOURCE_DIMS = (
    "bucket",
    "table",
    "instance",
    "cache_cluster",
    "replication_group",
    "serverless_cache",
    "cluster",
    "group",
    "file_system",
    "volume",
    "snapshot",
    "key",
    "experiment",
)


@cache
def price_table() -> dict:
    """The price table (read once)."""
    return json.loads(_PRICES.read_text())


@dataclass(frozen=True)
class LineItem:
    at: float  # simulated time the usage belongs to (an event's time, or a span's day)
    service: str  # Strata's service name (s3, dynamodb, ...)
    usage_type: str
    resource: str
    quantity: float  # in `unit`
    unit: str
    cost: float

    def as_dict(self) -> dict:
        return asdict(self)


def service_name(service: str) -> str:
    """AWS's name of a service on a bill and in Cost Explorer's SERVICE dimension."""
    entry = price_table()["services"].get(service)
    return entry["name"] if entry else service


def _resource(dims: dict) -> str:
    for key in _RESOURCE_DIMS:
        if dims.get(key):
            return str(dims[key])
    return ""


def _rule_price(rule: dict, dims: dict) -> float | None:
    """The price of one unit under `rule` for an event with `dims`; None when the table has none."""
    if "families" in rule:
        family = rule["engines"].get(str(dims.get(rule["family_of"])))
        return rule["families"].get(family, {}).get(str(dims.get(rule["by"]))) if family else None
    if "prices" in rule:
        price = rule["prices"].get(str(dims.get(rule["by"])))
        factor = rule.get("engine_factor", {}).get(str(dims.get("engine")), 1.0)
        return price * factor if price is not None else None
    return rule["price"] * rule.get("engine_factor", {}).get(str(dims.get("engine")), 1.0)


def price_event(e: MeterEvent) -> LineItem | None:
    """The line item of one event; None when the event is not billed by itself (see module doc)."""
    table = price_table()
    entry = table["services"].get(e.service)
    not_billed = table["not_billed"].get(e.service, ())
    if isinstance(not_billed, str) or e.event in not_billed:
        return None
    rule = entry["events"].get(e.event) if entry else None
    if rule is None and entry is not None and e.service == "s3" and e.unit == "request":
        rule = _s3_request_rule(entry["requests"], e.event)
        if rule is None:
            return None  # DELETE and CANCEL requests are free
    if rule is None:
        return LineItem(e.at, e.service, f"unpriced:{e.event}", _resource(e.dims), e.quantity, e.unit, 0.0)
    when = rule.get("when", {})
    if any(str(e.dims.get(k)) != v for k, v in when.items()):
        return None  # e.g. DynamoDB consumption on provisioned tables: capacity-hours are billed
    factor = CONVERT.get((e.unit, rule["unit"]))
    price = _rule_price(rule, e.dims)
    if factor is None or price is None:
        return LineItem(e.at, e.service, f"unpriced:{e.event}", _resource(e.dims), e.quantity, e.unit, 0.0)
    quantity = e.quantity * factor
    cost = quantity * price / rule.get("per", 1)
    return LineItem(e.at, e.service, rule["usage_type"], _resource(e.dims), quantity, rule["unit"], cost)


def _s3_request_rule(requests: dict, operation: str) -> dict | None:
    if operation in requests["free"]:
        return None
    tier = requests["tier1"] if operation in requests["tier1"]["operations"] else requests["tier2"]
    return {"usage_type": tier["usage_type"], "unit": "Requests", "price": tier["price"], "per": tier["per"]}


# -- EBS: spans between volume and snapshot events ---------------------------------------------


def _day_cuts(start: float, end: float) -> list[tuple[float, float]]:
    out = []
    t = start
    while t < end:
        nxt = min(end, (math.floor(t / DAY) + 1) * DAY)
        out.append((t, nxt))
        t = nxt
    return out


def _ebs_items(events: list[MeterEvent], start: float, end: float) -> list[LineItem]:
    ec2 = price_table()["services"]["ec2"]
    # resource -> [(at, state or None when gone)]
    changes: dict[str, list[tuple[float, dict | None]]] = defaultdict(list)
    for e in events:
        if e.service != "ec2":
            continue
        if e.event in ("VolumeCreated", "VolumeModified"):
            changes[e.dims.get("volume", "")].append((e.at, {"volume": e.dims, "size": e.quantity}))
        elif e.event == "VolumeDeleted":
            changes[e.dims.get("volume", "")].append((e.at, None))
        elif e.event == "SnapshotStored":
            changes[e.dims.get("snapshot", "")].append((e.at, {"bytes": e.quantity}))
        elif e.event == "SnapshotDeleted":
            changes[e.dims.get("snapshot", "")].append((e.at, None))
    items: list[LineItem] = []
    for resource, steps in changes.items():
        steps.sort(key=lambda s: s[0])
        for i, (at, state) in enumerate(steps):
            if state is None:
                continue
            until = steps[i + 1][0] if i + 1 < len(steps) else end
            lo, hi = max(at, start), min(until, end)
            for a, b in _day_cuts(lo, hi):
                months = (b - a) / 3600.0 / MONTH_HOURS
                items += _ebs_span(ec2, resource, state, a, months)
    return items


def _ebs_span(ec2: dict, resource: str, state: dict, at: float, months: float) -> list[LineItem]:
    if "bytes" in state:  # a snapshot's stored blocks
        gb_months = state["bytes"] / GB * months
        rule = ec2["snapshots"]
        return [
            LineItem(at, "ec2", rule["usage_type"], resource, gb_months, "GB-Mo", gb_months * rule["price"])
        ]
    dims = state["volume"]
    kind = str(dims.get("volume_type"))
    prices = ec2["volumes"].get(kind)
    if prices is None:
        return [LineItem(at, "ec2", f"unpriced:EBS:{kind}", resource, state["size"] * months, "GB-Mo", 0.0)]
    out = [
        LineItem(
            at,
            "ec2",
            f"EBS:VolumeUsage.{kind}",
            resource,
            state["size"] * months,
            "GB-Mo",
            state["size"] * months * prices["storage"],
        )
    ]
    iops = max(0.0, float(dims.get("iops") or 0) - prices.get("free_iops", 0))
    if "iops" in prices and iops:
        out.append(
            LineItem(
                at,
                "ec2",
                f"EBS:VolumeP-IOPS.{kind}",
                resource,
                iops * months,
                "IOPS-Mo",
                iops * months * prices["iops"],
            )
        )
    throughput = max(0.0, float(dims.get("throughput") or 0) - prices.get("free_throughput", 0))
    if "throughput" in prices and throughput:
        out.append(
            LineItem(
                at,
                "ec2",
                f"EBS:VolumeP-Throughput.{kind}",
                resource,
                throughput * months,
                "MiBps-Mo",
                throughput * months * prices["throughput"],
            )
        )
    return out


# -- the bill ----------------------------------------------------------------------------------


def line_items(events: Iterable[MeterEvent], start: float, end: float) -> list[LineItem]:
    """Every line item of usage in [start, end): priced events, and EBS spans cut per day."""
    events = list(events)
    items = [
        item
        for e in events
        if start <= e.at < end and e.service != "ec2"
        for item in [price_event(e)]
        if item is not None
    ]
    return items + _ebs_items(events, start, end)


def daily(items: list[LineItem]) -> dict[str, dict[str, float]]:
    """Cost per service (AWS's name) per UTC day: {service: {"YYYY-MM-DD": cost}}."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for item in items:
        day = datetime.fromtimestamp(item.at, UTC).date().isoformat()
        out[service_name(item.service)][day] += item.cost
    return {k: dict(v) for k, v in out.items()}


def usage(start: float, end: float) -> list[LineItem]:
    """The line items of everything metered in [start, end) (reads the meter: blocking)."""
    return line_items(meter.events(), start, end)


GROUPINGS = {
    "service": ("service",),
    "resource": ("service", "resource"),
    "usage-type": ("service", "usage_type"),
}


def summarize(items: list[LineItem], by: str = "usage-type") -> dict[str, Any]:
    """The bill as a document: per service its lines (grouped `by`) and total, and the total."""
    keys = GROUPINGS[by]
    with_quantity = by == "usage-type"  # quantities of one usage type share a unit; a resource's do not
    services: dict[str, dict] = {}
    lines: dict[tuple, dict] = {}
    for item in items:
        svc = services.setdefault(
            item.service, {"name": service_name(item.service), "total": 0.0, "lines": []}
        )
        svc["total"] += item.cost
        key = tuple(getattr(item, k) for k in keys) + ((item.unit,) if with_quantity else ())
        line = lines.get(key)
        if line is None:
            line = {k: getattr(item, k) for k in keys if k != "service"}
            if with_quantity:
                line["unit"] = item.unit
                line["quantity"] = 0.0
            line["cost"] = 0.0
            lines[key] = line
            svc["lines"].append(line)
        if with_quantity:
            line["quantity"] += item.quantity
        line["cost"] += item.cost
    for svc in services.values():
        svc["lines"].sort(key=lambda line: -line["cost"])
    table = price_table()
    return {
        "currency": table["currency"],
        "prices_as_of": table["as_of"],
        "services": dict(sorted(services.items())),
        "total": sum(s["total"] for s in services.values()),
    }
