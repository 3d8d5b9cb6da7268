"""Warm throughput and the per-table throughput quota, as DynamoDB documents and answers them.

Warm throughput is what a table can serve instantly (DescribeTable `WarmThroughput`, always
present). It never decreases; it starts at the on-demand initial throughput (12,000 read and
4,000 write units per second) for an on-demand table and at the provisioned capacity for a
provisioned one; it grows with every higher provisioned capacity, with a switch to on-demand
(to at least the initial throughput), with the traffic an on-demand table really serves
(throttle.py), and on request (CreateTable/UpdateTable `WarmThroughput`: pre-warming, never
below the current value). It is kept as `[read, write]` in `TableMeta.provisioning["warm"]`.

An on-demand table serves up to its warm throughput at once and up to double its previous peak
once that peak is 30 minutes old, never more than the per-table quota (40,000 read and 40,000
write units per second, the `TableMaxRead/WriteCapacityUnits` of DescribeLimits); throttle.py
enforces it. Provisioned capacity, OnDemandThroughput maximums and warm throughput above the
quota are refused with the LimitExceededException texts AWS answers with.

`Quota` holds the numbers; a deployment (or a test) can change them with
STRATA_LIMIT_DYNAMODB_TABLE_MAX_UNITS, STRATA_LIMIT_DYNAMODB_ON_DEMAND_READ_UNITS and
STRATA_LIMIT_DYNAMODB_ON_DEMAND_WRITE_UNITS.
"""

from __future__ import annotations

from dataclasses import dataclass

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.errors import invalid_parameter
from strata.services.dynamodb.tables import TableMeta

MEMBERS = ("ReadUnitsPerSecond", "WriteUnitsPerSecond")
_CAPACITY = ("ReadCapacityUnits", "WriteCapacityUnits")
_MAXIMA = ("MaxReadRequestUnits", "MaxWriteRequestUnits")
SETTLE_SECONDS = 1800.0  # a peak doubles what an on-demand table can serve 30 minutes later


@dataclass(frozen=True)
class Quota:
    table_max: int = 40000  # read (and write) units per second of one table
    initial_read: int = 12000  # a new on-demand table's warm throughput
    initial_write: int = 4000

    @property
    def initial(self) -> tuple[int, int]:
        return self.initial_read, self.initial_write


def limit_exceeded(message: str) -> ServiceError:
    return ServiceError("LimitExceededException", message, 400)


def region_of(meta: TableMeta) -> str:
    return meta.arn.split(":")[3]


def check_capacity(tp: dict, quota: Quota, region: str, index: str | None = None) -> None:
    """Provisioned capacity above the per-table (per-index) maximum: LimitExceededException."""
    for key in _CAPACITY:
        if tp.get(key, 0) > quota.table_max:
            what = f"{key} for index {index}" if index else key
            kind = "index" if index else "table"
            raise limit_exceeded(
                f"The requested {what}, {tp[key]}, is above the per {kind} maximum for the account in "
                f"{region}. Per {kind} maximum: {quota.table_max}."
            )


def check_maximum(on_demand: dict | None, quota: Quota, region: str) -> None:
    """An OnDemandThroughput maximum above the per-table quota: LimitExceededException."""
    for key, dim in zip(_MAXIMA, ("Read", "Write"), strict=True):
        if (on_demand or {}).get(key, -1) > quota.table_max:
            raise limit_exceeded(
                f"Subscriber limit exceeded: Requested {key} for OnDemandThroughput for table exceeds "
                f"TableMax{dim}CapacityUnits of the account in region {region}"
            )


def current(meta: TableMeta, quota: Quota) -> list[int]:
    """The table's warm throughput [read, write], set up from its capacity when not yet kept."""
    warm = meta.provisioning.get("warm")
    if warm is None:
        warm = meta.provisioning["warm"] = list(baseline(meta, quota))
    return warm


def baseline(meta: TableMeta, quota: Quota) -> tuple[int, int]:
    """What the table's mode and capacity alone make warm."""
    if meta.billing_mode == "PAY_PER_REQUEST":
        return quota.initial
    return meta.throughput["ReadCapacityUnits"], meta.throughput["WriteCapacityUnits"]


def grow(meta: TableMeta, quota: Quota) -> None:
    """After a capacity or billing-mode change: warm throughput rises to cover it (never falls)."""
    warm = current(meta, quota)
    base = baseline(meta, quota)
    meta.provisioning["warm"] = [max(warm[0], base[0]), max(warm[1], base[1])]


def apply_request(meta: TableMeta, spec: dict | None, quota: Quota, creating: bool) -> None:
    """CreateTable/UpdateTable `WarmThroughput` (pre-warming), validated as DynamoDB does."""
    if not spec:
        return
    region = region_of(meta)
    warm = current(meta, quota)
    out = list(warm)
    for i, member in enumerate(MEMBERS):
        value = spec.get(member)
        if value is None:
            continue
        if value > quota.table_max:
            dim = "Read" if i == 0 else "Write"
            raise limit_exceeded(
                f"Subscriber limit exceeded: Requested {member} for WarmThroughput for table exceeds "
                f"TableMax{dim}CapacityUnits of the account in region {region}"
            )
        if value < warm[i]:
            if not creating:
                reason = "lower than current WarmThroughput, decreasing WarmThroughput is not supported"
            elif meta.billing_mode == "PAY_PER_REQUEST":
                reason = (
                    "lower than initial throughput for OnDemand. See: https://docs.aws.amazon.com/"
                    "amazondynamodb/latest/developerguide/on-demand-capacity-mode.html"
                    "#on-demand-capacity-mode-initial"
                )
            else:
                reason = f"lower than {_CAPACITY[i]} of ProvisionedThroughput"
            raise invalid_parameter(f"Requested {member} for WarmThroughput for table is {reason}")
        out[i] = value
    meta.provisioning["warm"] = out


def description(meta: TableMeta, quota: Quota) -> dict:
    """The WarmThroughput member of a TableDescription."""
    read, write = current(meta, quota)
    return {"ReadUnitsPerSecond": int(read), "WriteUnitsPerSecond": int(write), "Status": "ACTIVE"}
