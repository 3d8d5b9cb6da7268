"""Warm throughput and the per-table throughput quota, as DynamoDB documents and answers them.

Warm throughput is what a table can serve instantly (DescribeTable `WarmThroughput`, always
present). It never decreases; it starts at the on-demand initial throughput (12,000 read and
4,000 write units per second) for an on-demand table and at the provisioned capacity for a
provisioned one; it grows with every higher provisioned capacity, with a switch to on-demand
(to at least the initial throughput), with the traffic an on-demand table really serves
(throttle.py), and on request (CreateTable/UpdateTable `WarmThroughput`: pre-warming, never
below the current value). It is kept as `[read, write]` in `TableMeta.provisioning["warm"]`.
Each global secondary index has its own, by the same rules (`IndexMeta.provisioning["warm"]`;
GSI-level WarmThroughput in CreateTable's GlobalSecondaryIndexes and UpdateTable's Create and
Update actions), as it has partitions of its own. A raise by UpdateTable leaves the table
UPDATING and the raised WarmThroughput (the table's, or the GSI's and the GSI) `Status: UPDATING`
for the table-update span (provisioning.py) of simulated time; the capacity is served at once.

An on-demand table serves up to its warm throughput at once and up to double its previous peak
once that peak is 30 minutes old (an on-demand GSI the same, on its own traffic), never more than
the per-table quota (which applies to each GSI too: 40,000 read and 40,000
write units per second, the `TableMaxRead/WriteCapacityUnits` of DescribeLimits); throttle.py
enforces it. A new table's provisioned capacity (its own and its GSIs' together: the per-table
quota bounds only creations), OnDemandThroughput maximums and warm throughput above the quota
are refused with the LimitExceededException texts AWS answers with.

The provisioned capacity of all an account's tables and GSIs in a region is bounded too (80,000
read and 80,000 write units, DescribeLimits' `AccountMaxRead/WriteCapacityUnits`): CreateTable,
UpdateTable, restores and imports that would pass it get LimitExceededException (check_account;
on-demand tables do not count, as AWS's quota is of provisioned capacity).

`Quota` holds the numbers; a deployment (or a test) can change them with
STRATA_LIMIT_DYNAMODB_TABLE_MAX_UNITS, STRATA_LIMIT_DYNAMODB_ACCOUNT_MAX_UNITS,
STRATA_LIMIT_DYNAMODB_ON_DEMAND_READ_UNITS and STRATA_LIMIT_DYNAMODB_ON_DEMAND_WRITE_UNITS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.errors import invalid_parameter
from strata.services.dynamodb.tables import IndexMeta, TableMeta

MEMBERS = ("ReadUnitsPerSecond", "WriteUnitsPerSecond")
_CAPACITY = ("ReadCapacityUnits", "WriteCapacityUnits")
_MAXIMA = ("MaxReadRequestUnits", "MaxWriteRequestUnits")
SETTLE_SECONDS = 1800.0  # a peak doubles what an on-demand table can serve 30 minutes later


@dataclass(frozen=True)
class Quota:
    table_max: int = 40000  # read (and write) units per second of one table
    account_max: int = 80000  # provisioned read (and write) units of all tables of an account/region
    initial_read: int = 12000  # a new on-demand table's warm throughput
    initial_write: int = 4000

    @property
    def initial(self) -> tuple[int, int]:
        return self.initial_read, self.initial_write


def limit_exceeded(message: str) -> ServiceError:
    return ServiceError("LimitExceededException", message, 400)


def region_of(meta: TableMeta) -> str:
    return meta.arn.split(":")[3]


def check_capacity(meta: TableMeta, quota: Quota) -> None:
    """A new table's provisioned capacity, its own and its GSIs' together, above the per-table
    maximum: LimitExceededException. DescribeLimits' documentation: "The per-table quotas apply
    only when you are creating a new table. They restrict the sum of the provisioned capacity of
    the new table itself and all its global secondary indexes." (An existing table is bounded by
    the account quota only: check_account.)"""
    for key, total in zip(_CAPACITY, provisioned(meta), strict=True):
        if total > quota.table_max:
            raise limit_exceeded(
                f"The requested {key}, {total}, is above the per table maximum for the account in "
                f"{region_of(meta)}. Per table maximum: {quota.table_max}."
            )


def check_maximum(on_demand: dict | None, quota: Quota, region: str, index: str | None = None) -> None:
    """An OnDemandThroughput maximum above the per-table quota: LimitExceededException."""
    what = f"index {index}" if index else "table"
    for key, dim in zip(_MAXIMA, ("Read", "Write"), strict=True):
        if (on_demand or {}).get(key, -1) > quota.table_max:
            raise limit_exceeded(
                f"Subscriber limit exceeded: Requested {key} for OnDemandThroughput for {what} exceeds "
                f"TableMax{dim}CapacityUnits of the account in region {region}"
            )


def check_table(meta: TableMeta, quota: Quota, creating: bool) -> None:
    """Everything of a table being created (or updated) that the per-table quotas bound:
    provisioned capacity (at creation), maxima and warm throughput of the table and each GSI
    (GSIs' requested warm throughput is applied here: settle_indexes)."""
    region = region_of(meta)
    if creating:
        check_capacity(meta, quota)
    check_maximum(meta.on_demand, quota, region)
    for ix in meta.indexes:
        if ix.on_demand:
            check_maximum(ix.on_demand, quota, region, ix.name)
    settle_indexes(meta, quota)


def provisioned(meta: TableMeta) -> tuple[int, int]:
    """The read and write units a table and its GSIs have provisioned (0 when on-demand)."""
    if meta.billing_mode != "PROVISIONED":
        return 0, 0
    read, write = meta.throughput["ReadCapacityUnits"], meta.throughput["WriteCapacityUnits"]
    for ix in meta.indexes:
        if ix.is_global and ix.throughput:
            read += ix.throughput["ReadCapacityUnits"]
            write += ix.throughput["WriteCapacityUnits"]
    return read, write


def check_account(meta: TableMeta, others: Iterable[TableMeta], quota: Quota) -> None:
    """The provisioned capacity of all the account's tables and GSIs in the region, with `meta`
    as it would be, above the account quota (AccountMaxRead/WriteCapacityUnits of
    DescribeLimits): LimitExceededException. `others` are the account's tables there (`meta` as
    it is now among them, when it exists): a change that does not raise a dimension is allowed."""
    mine = provisioned(meta)
    if mine == (0, 0):
        return
    totals, before = list(mine), (0, 0)
    for other in others:
        if other.tid == meta.tid:
            before = provisioned(other)
        elif other.scope == meta.scope:
            r, w = provisioned(other)
            totals[0] += r
            totals[1] += w
    for i, (key, total) in enumerate(zip(_CAPACITY, totals, strict=True)):
        if total > quota.account_max and mine[i] > before[i]:
            raise limit_exceeded(
                f"The requested {key}, {mine[i]}, would bring the account's provisioned "
                f"{key} to {total}, above the per account maximum for the account in {region_of(meta)}. "
                f"Per account maximum: {quota.account_max}."
            )


def current(meta: TableMeta, quota: Quota) -> list[int]:
    """The table's warm throughput [read, write], set up from its capacity when not yet kept."""
    warm = meta.provisioning.get("warm")
    if warm is None:
        warm = meta.provisioning["warm"] = list(baseline(meta, quota))
    return warm


def index_current(ix: IndexMeta, billing: str, quota: Quota) -> list[int]:
    """A GSI's warm throughput [read, write]: a GSI has partitions, and so a warm throughput, of
    its own (an on-demand GSI starts at the on-demand initial throughput, as a table does)."""
    warm = ix.provisioning.get("warm")
    if warm is None:
        warm = ix.provisioning["warm"] = list(_baseline(billing, ix.throughput, quota))
    return warm


def baseline(meta: TableMeta, quota: Quota) -> tuple[int, int]:
    """What the table's mode and capacity alone make warm."""
    return _baseline(meta.billing_mode, meta.throughput, quota)


def _baseline(billing: str, tp: dict | None, quota: Quota) -> tuple[int, int]:
    if billing == "PAY_PER_REQUEST" or not tp:
        return quota.initial
    return tp["ReadCapacityUnits"], tp["WriteCapacityUnits"]


def grow(meta: TableMeta, quota: Quota) -> None:
    """After a capacity or billing-mode change: warm throughput rises to cover it (never falls),
    the table's and each GSI's."""
    warm = current(meta, quota)
    base = baseline(meta, quota)
    meta.provisioning["warm"] = [max(warm[0], base[0]), max(warm[1], base[1])]
    for ix in meta.indexes:
        if ix.is_global:
            warm = index_current(ix, meta.billing_mode, quota)
            base = _baseline(meta.billing_mode, ix.throughput, quota)
            ix.provisioning["warm"] = [max(warm[0], base[0]), max(warm[1], base[1])]


def apply_request(meta: TableMeta, spec: dict | None, quota: Quota, creating: bool) -> None:
    """CreateTable/UpdateTable `WarmThroughput` (pre-warming), validated as DynamoDB does."""
    if spec:
        meta.provisioning["warm"] = _asked(
            current(meta, quota), spec, quota, region_of(meta), creating, meta.billing_mode, "table"
        )


def settle_indexes(meta: TableMeta, quota: Quota) -> None:
    """Apply the WarmThroughput each GSI of the request asked for (tables.ask_warm): validated
    as the table's, against the GSI's own warm throughput and capacity."""
    for ix in meta.indexes:
        asked = ix.provisioning.pop("warm_asked", None)
        if asked is not None:
            spec, creating = asked
            ix.provisioning["warm"] = _asked(
                index_current(ix, meta.billing_mode, quota),
                spec,
                quota,
                region_of(meta),
                creating,
                meta.billing_mode,
                f"index {ix.name}",
            )


def _asked(
    warm: list[int], spec: dict, quota: Quota, region: str, creating: bool, billing: str, what: str
) -> list[int]:
    out = list(warm)
    for i, member in enumerate(MEMBERS):
        value = spec.get(member)
        if value is None:
            continue
        if value > quota.table_max:
            dim = "Read" if i == 0 else "Write"
            raise limit_exceeded(
                f"Subscriber limit exceeded: Requested {member} for WarmThroughput for {what} exceeds "
                f"TableMax{dim}CapacityUnits of the account in region {region}"
            )
        if value < warm[i]:
            if not creating:
                reason = "lower than current WarmThroughput, decreasing WarmThroughput is not supported"
            elif billing == "PAY_PER_REQUEST":
                reason = (
                    "lower than initial throughput for OnDemand. See: https://docs.aws.amazon.com/"
                    "amazondynamodb/latest/developerguide/on-demand-capacity-mode.html"
                    "#on-demand-capacity-mode-initial"
                )
            else:
                reason = f"lower than {_CAPACITY[i]} of ProvisionedThroughput"
            raise invalid_parameter(f"Requested {member} for WarmThroughput for {what} is {reason}")
        out[i] = value
    return out


def snapshot(meta: TableMeta, quota: Quota) -> dict[int | None, list[int]]:
    """The warm throughput of the table (key None) and of each GSI (by id), to compare after a
    request (note_raises)."""
    out: dict[int | None, list[int]] = {None: list(current(meta, quota))}
    for ix in meta.indexes:
        if ix.is_global:
            out[ix.iid] = list(index_current(ix, meta.billing_mode, quota))
    return out


def note_raises(meta: TableMeta, before: dict[int | None, list[int]], until: float) -> bool:
    """An UpdateTable that raised a warm throughput (pre-warming): the table, or the GSI, shows
    it UPDATING until `until`, as DynamoDB does while it prepares the partitions (the table is
    UPDATING meanwhile: the caller starts the update). True when anything was raised."""
    raised = False
    if meta.provisioning["warm"] != before[None]:
        meta.provisioning["warm_until"] = until
        raised = True
    for ix in meta.indexes:
        if ix.is_global and ix.iid in before and ix.provisioning["warm"] != before[ix.iid]:
            ix.provisioning["warm_until"] = until
            raised = True
    return raised


def _status(prov: dict, now: float) -> str:
    return "UPDATING" if now < prov.get("warm_until", 0.0) else "ACTIVE"


def description(meta: TableMeta, quota: Quota, now: float) -> dict:
    """The WarmThroughput member of a TableDescription."""
    read, write = current(meta, quota)
    return {
        "ReadUnitsPerSecond": int(read),
        "WriteUnitsPerSecond": int(write),
        "Status": _status(meta.provisioning, now),
    }


def describe_indexes(meta: TableMeta, gsis: list[dict], quota: Quota, now: float) -> None:
    """The WarmThroughput member of each GlobalSecondaryIndexDescription (in place); a GSI whose
    warm throughput is being raised is UPDATING."""
    by_name = {ix.name: ix for ix in meta.indexes if ix.is_global}
    for desc in gsis:
        ix = by_name.get(desc["IndexName"])
        if ix is not None:
            read, write = index_current(ix, meta.billing_mode, quota)
            status = _status(ix.provisioning, now)
            desc["WarmThroughput"] = {
                "ReadUnitsPerSecond": int(read),
                "WriteUnitsPerSecond": int(write),
                "Status": status,
            }
            if status == "UPDATING" and desc.get("IndexStatus") == "ACTIVE":
                desc["IndexStatus"] = "UPDATING"
