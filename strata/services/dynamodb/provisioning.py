"""UpdateTable's capacity rules, as DynamoDB documents them, on the simulated clock.

- Decreases of a table's (or a GSI's) ReadCapacityUnits/WriteCapacityUnits: any four in a UTC
  day, then one more whenever no decrease happened in the past hour — at most 27 a day.
  Beyond that: LimitExceededException. Increases are not limited.
- Switching PROVISIONED -> PAY_PER_REQUEST: at most four times in a rolling 24 hours;
  PAY_PER_REQUEST -> PROVISIONED at any time.
- A capacity or billing-mode change leaves the table UPDATING for `UPDATE_SECONDS` of simulated
  time (STRATA_LIMIT_DYNAMODB_UPDATE_SECONDS); meanwhile another UpdateTable, and a DeleteTable, get ResourceInUseException (the messages
  AWS answers with). Items can be read and written throughout, as in DynamoDB.

Provisioned capacity is billed by the hour whether used or not: `meter_hours` puts a table's
(and its GSIs') provisioned units times the simulated time they were in force on the meter
(`ProvisionedReadCapacityUnit-Hrs` / `ProvisionedWriteCapacityUnit-Hrs`), up to each capacity
change and up to each run of the hourly `dynamodb.backups` rule, so no span is counted twice.

What these rules need is kept in `TableMeta.provisioning` / `IndexMeta.provisioning` (a dict,
persisted with the table): decreases of the current UTC day, last increase/decrease instants,
the switches to on-demand of the last day, and the end of the UPDATING state.
"""

from __future__ import annotations

from datetime import UTC, datetime

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.errors import limit_exceeded, resource_in_use, validation
from strata.services.dynamodb.tables import TableMeta, check_throughput
from strata.sim.meter import meter

UPDATE_SECONDS = 10.0
FREE_DECREASES = 4
MAX_DECREASES = 27
DECREASE_GAP = 3600.0
ON_DEMAND_SWITCHES = 4
DAY = 86400.0


def _day(t: float) -> int:
    return int(t // DAY)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%A, %B %d, %Y %I:%M:%S %p UTC")


def decreases_today(prov: dict, now: float) -> list[float]:
    return [t for t in prov.get("decreases", []) if _day(t) == _day(now)]


def check_decrease(prov: dict, now: float) -> None:
    """LimitExceededException unless one more decrease is allowed now."""
    today = decreases_today(prov, now)
    if len(today) < FREE_DECREASES:
        return
    last = max(today)
    if len(today) < MAX_DECREASES and now - last >= DECREASE_GAP:
        return
    nxt = last + DECREASE_GAP if len(today) < MAX_DECREASES else (_day(now) + 1) * DAY
    if _day(nxt) != _day(now):
        nxt = max(nxt, (_day(now) + 1) * DAY)
    raise limit_exceeded(
        "Subscriber limit exceeded: Provisioned throughput decreases are limited within a given UTC day. "
        f"After the first {FREE_DECREASES} decreases, each subsequent decrease in the same UTC day can be "
        f"performed at most once every {int(DECREASE_GAP)} seconds. Number of decreases today: {len(today)}. "
        f"Last decrease at {_when(last)}. Next decrease can be made at {_when(nxt)}"
    )


def note_change(prov: dict, old: dict, new: dict, now: float) -> None:
    """Record an increase and/or a decrease of a throughput (one decrease per UpdateTable)."""
    keys = ("ReadCapacityUnits", "WriteCapacityUnits")
    if any(new[k] > old[k] for k in keys):
        prov["last_increase"] = now
    if any(new[k] < old[k] for k in keys):
        prov["decreases"] = [*decreases_today(prov, now), now]
        prov["last_decrease"] = now


def check_not_updating(meta: TableMeta, now: float) -> None:
    if now < meta.provisioning.get("updating_until", 0.0):
        raise resource_in_use(
            "Attempt to change a resource which is still in use: Table IOPS are currently being updated. "
            f"Table: {meta.name}"
        )


def check_deletable(meta: TableMeta, now: float) -> None:
    """DeleteTable is refused while a capacity or billing-mode change is in progress."""
    if now < meta.provisioning.get("updating_until", 0.0):
        raise resource_in_use(
            f"Attempt to change a resource which is still in use: Table: {meta.name} is in the process "
            "of being updated."
        )


def unchanged(old: dict, new: dict) -> ServiceError:
    return validation(
        "The provisioned throughput for the table will not change. The requested value equals the current value. "
        f"Current ReadCapacityUnits provisioned for the table: {old['ReadCapacityUnits']}. "
        f"Requested ReadCapacityUnits: {new['ReadCapacityUnits']}. "
        f"Current WriteCapacityUnits provisioned for the table: {old['WriteCapacityUnits']}. "
        f"Requested WriteCapacityUnits: {new['WriteCapacityUnits']}. "
        "Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits."
    )


def check_to_on_demand(meta: TableMeta, now: float) -> None:
    recent = [t for t in meta.provisioning.get("to_on_demand", []) if now - t < DAY]
    if len(recent) >= ON_DEMAND_SWITCHES:
        # AWS's text (seen when the limit was once a day) names the last switch and the next
        # allowed one, in Java's Date format.
        def java(t: float) -> str:
            return datetime.fromtimestamp(t, UTC).strftime("%a %b %d %H:%M:%S UTC %Y")

        raise limit_exceeded(
            f"Subscriber limit exceeded: Update to PayPerRequest mode are limited to {ON_DEMAND_SWITCHES} "
            f"times in 1 day(s). Last update at {java(max(recent))}. Next update can be made at "
            f"{java(min(recent) + DAY)}"
        )


def note_to_on_demand(meta: TableMeta, now: float) -> None:
    prov = meta.provisioning
    prov["to_on_demand"] = [*(t for t in prov.get("to_on_demand", []) if now - t < DAY), now]
    prov["last_to_on_demand"] = now


def meter_hours(meta: TableMeta, until: float) -> None:
    """Meter the provisioned capacity in force since it was last metered, up to `until`; the
    caller saves `meta` (its `metered_to` mark) in the same write."""
    since = meta.provisioning.get("metered_to", meta.created)
    if meta.billing_mode == "PROVISIONED" and until > since:
        hours = (until - since) / 3600.0
        for key, event in (
            ("ReadCapacityUnits", "ProvisionedReadCapacityUnit-Hrs"),
            ("WriteCapacityUnits", "ProvisionedWriteCapacityUnit-Hrs"),
        ):
            units = meta.throughput[key] + sum(
                (ix.throughput or {}).get(key, 0) for ix in meta.indexes if ix.is_global
            )
            meter.record("dynamodb", event, units * hours, "unit-hour", table=meta.name)
    meta.provisioning["metered_to"] = max(until, since)


def start_update(meta: TableMeta, now: float, seconds: float = UPDATE_SECONDS) -> None:
    meta.provisioning["updating_until"] = now + seconds


def status(meta: TableMeta, now: float) -> str:
    return "UPDATING" if now < meta.provisioning.get("updating_until", 0.0) else "ACTIVE"


def throughput_description(tp: dict, prov: dict, now: float) -> dict:
    """The ProvisionedThroughputDescription of a table or GSI."""
    out: dict = {
        "NumberOfDecreasesToday": len(decreases_today(prov, now)),
        "ReadCapacityUnits": tp["ReadCapacityUnits"],
        "WriteCapacityUnits": tp["WriteCapacityUnits"],
    }
    if prov.get("last_increase"):
        out["LastIncreaseDateTime"] = datetime.fromtimestamp(prov["last_increase"], UTC)
    if prov.get("last_decrease"):
        out["LastDecreaseDateTime"] = datetime.fromtimestamp(prov["last_decrease"], UTC)
    return out


def apply_throughput(meta: TableMeta, billing: str, requested: dict | None, now: float) -> bool:
    """Apply UpdateTable's BillingMode/ProvisionedThroughput to `meta` (a copy) under the rules
    above; True when the table's capacity changed (it is then UPDATING for a while)."""
    old_billing, old_tp = meta.billing_mode, dict(meta.throughput)
    if billing == "PAY_PER_REQUEST":
        new_tp = check_throughput(requested, billing)
        if old_billing == "PROVISIONED":
            check_to_on_demand(meta, now)
            note_to_on_demand(meta, now)
            meta.billing_mode, meta.throughput = billing, new_tp
            for ix in meta.indexes:
                if ix.is_global:
                    ix.throughput = {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}
            return True
        return False
    new_tp = check_throughput(requested or (old_tp if old_billing == "PROVISIONED" else None), billing)
    if old_billing == "PAY_PER_REQUEST":
        meta.billing_mode, meta.throughput = billing, new_tp
        return True
    if requested is None:
        return False
    if new_tp == {k: old_tp[k] for k in new_tp}:
        raise unchanged(old_tp, new_tp)
    if any(new_tp[k] < old_tp[k] for k in new_tp):
        check_decrease(meta.provisioning, now)
    note_change(meta.provisioning, old_tp, new_tp, now)
    meta.throughput = new_tp
    return True
