"""Consumed capacity by DynamoDB's rules, reported to the client and recorded on the meter.

Reads: one unit per 4 KB (rounded up) for a strongly consistent read, half for eventually
consistent, double for transactional; Query/Scan round the *sum* of the item sizes read.
Writes: one unit per 1 KB (rounded up) of the larger of the old and new item, double for
transactional, plus the writes to every index the change touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strata.sim.meter import meter

READ_UNIT = 4096
WRITE_UNIT = 1024


def read_units(size: int, consistent: bool, transactional: bool = False) -> float:
    units = float(max(1, -(-size // READ_UNIT)))
    if transactional:
        return units * 2
    return units if consistent else units / 2


def write_units(size: int, transactional: bool = False) -> float:
    units = float(max(1, -(-size // WRITE_UNIT)))
    return units * 2 if transactional else units


@dataclass
class Consumed:
    """Units consumed by one request on one table, split by table and index."""

    table: str
    read: bool
    table_units: float = 0.0
    gsi: dict[str, float] = field(default_factory=dict)
    lsi: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.table_units + sum(self.gsi.values()) + sum(self.lsi.values())

    def add_index(self, name: str, is_global: bool, units: float) -> None:
        target = self.gsi if is_global else self.lsi
        target[name] = target.get(name, 0.0) + units

    def report(self, mode: str | None) -> dict | None:
        """The ConsumedCapacity member for ReturnConsumedCapacity TOTAL / INDEXES (None: NONE)."""
        if mode not in ("TOTAL", "INDEXES"):
            return None
        out: dict = {"TableName": self.table, "CapacityUnits": self.total}
        if mode == "INDEXES":
            out["Table"] = {"CapacityUnits": self.table_units}
            if self.gsi:
                out["GlobalSecondaryIndexes"] = {k: {"CapacityUnits": v} for k, v in self.gsi.items()}
            if self.lsi:
                out["LocalSecondaryIndexes"] = {k: {"CapacityUnits": v} for k, v in self.lsi.items()}
        return out

    def record(self, billing_mode: str, scope: str) -> None:
        """Every billable read or write goes on the meter, per table (`scope`: its account and
        region, as `account:region`)."""
        key, dims = _meter_dims(self.table, billing_mode, scope)
        if self.read:
            meter.record_keyed("dynamodb", "ReadCapacityUnits", self.total, "RCU", key, dims)
        else:
            meter.record_keyed("dynamodb", "WriteCapacityUnits", self.total, "WCU", key, dims)
        if self.gsi:  # CloudWatch's per-index consumption (billed within the total above)
            event, unit = (
                ("IndexReadCapacityUnits", "RCU") if self.read else ("IndexWriteCapacityUnits", "WCU")
            )
            for index, units in self.gsi.items():
                meter.record("dynamodb", event, units, unit, table=self.table, index=index, scope=scope)


_DIMS: dict[tuple[str, str, str], tuple[tuple, dict]] = {}


def _meter_dims(table: str, billing_mode: str, scope: str) -> tuple[tuple, dict]:
    """The meter dimensions of a table's capacity events and their key, made once per table, mode
    and scope (never mutated: the meter keeps the dict of a tally's first event)."""
    found = _DIMS.get((table, billing_mode, scope))
    if found is None:
        if len(_DIMS) >= 4096:
            _DIMS.clear()
        dims = {"table": table, "billing_mode": billing_mode, "scope": scope}
        found = _DIMS[(table, billing_mode, scope)] = (tuple(dims.items()), dims)
    return found
