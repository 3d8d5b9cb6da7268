"""Provisioned throughput enforced: token buckets per table and per global secondary index.

A provisioned table (and each of its GSIs) has a read and a write bucket that fill at the
provisioned rate (units per second of simulated time, strata.sim.clock) and hold at most 300
seconds of it: DynamoDB's burst capacity ("up to five minutes of unused read and write
capacity"). A bucket starts full. A request is admitted while its bucket is above zero and then
charged what it really consumed (capacity.py's units, known only once it ran), so a large item
can take the bucket below zero and later requests wait until it has refilled: DynamoDB charges
reads and large writes the same way, after the fact. A request not admitted gets
ProvisionedThroughputExceededException, which every AWS SDK retries with back-off.

Writes to a table are throttled when the table's write bucket, or the write bucket of any of its
GSIs, is empty (an under-provisioned GSI throttles the table's writes, with the GSI message);
reads of a GSI draw from the GSI's read bucket; local secondary indexes share the table's.

On-demand tables have a capacity too (warm.py): their warm throughput at once, double their
previous peak once it is 30 minutes old, never more than the per-table quota; each dimension a
bucket holding one second of it. Past it: ThrottlingException (reason
`Table...KeyRangeThroughputExceeded`, "DynamoDB is automatically scaling your table"), or, once
the quota is what limits, RequestLimitExceeded (`Table...AccountLimitExceeded`). A peak is the
units served in one simulated second, at most the capacity of that second (a request is admitted
and then charged, so one second can take more: that debt is not traffic the table could serve).
A new peak raises the table's warm throughput at once (kept in its metadata, saved by the hourly
rule); the settling peaks themselves are in memory, so a restart forgets the doubling not yet
reflected in warm throughput. A provisioned table's bucket levels are saved with its metadata
(`levels`) by the hourly rule and at a clean stop, so a restart does not hand out a fresh burst
(after a kill -9 they are those of the last save).
A maximum throughput the table was given (OnDemandThroughput: MaxReadRequestUnits /
MaxWriteRequestUnits, table level) is enforced the same way, with DynamoDB's ThrottlingException
(reason `Table...MaxOnDemandThroughputExceeded`). An on-demand GSI has all of this of its own
(warm throughput, settling peaks, quota, OnDemandThroughput maximum): a read of the GSI draws on
it, and a table write is refused while any GSI's write capacity is spent (GSI back-pressure),
with the same errors naming the index (`Index...`, resource `<table arn>/index/<name>`). The consumption of every provisioned table is
kept per simulated minute for the last hour (`minutes`), which auto scaling's target tracking reads.
`STRATA_DYNAMODB_THROTTLING=off` turns enforcement off (consumption is still kept).

Several gateways on one PostgreSQL (`--metadata`): every limit above is the table's, not a
server's, so each gateway admits its share of it: the rate, the burst and the maximum divided by
the live gateways (strata.storage.shared.live, counted by strata.storage.coordination), read per
request as one attribute, no round trip. A balancer spreading requests evenly then admits the
provisioned rate in all; a gateway taking all of a table's traffic admits only its share (the
price of no shared counter on the hot path). A peak an on-demand table reached is this gateway's
served units times the gateway count (the table's, estimated). The per-minute consumption
(`minutes`) is this gateway's own, and the control-plane rates (control.py) stay per gateway.
"""

from __future__ import annotations

import os
from collections import deque

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.capacity import Consumed
from strata.services.dynamodb.tables import IndexMeta, TableMeta
from strata.services.dynamodb.warm import SETTLE_SECONDS, Quota
from strata.services.dynamodb.warm import current as warm_of
from strata.services.dynamodb.warm import index_current as warm_of_index
from strata.sim.clock import clock
from strata.storage.shared import live

BURST_SECONDS = 300.0
KEEP_MINUTES = 60  # per-minute consumption kept per table (target tracking looks back 15)

TABLE_EXCEEDED = (
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API."
)
GSI_EXCEEDED = (
    "The level of configured provisioned throughput for one or more global secondary indexes of "
    "the table was exceeded. Consider increasing your provisioning level for the under-provisioned "
    "global secondary indexes with the UpdateTable API"
)


def enforced() -> bool:
    return os.environ.get("STRATA_DYNAMODB_THROTTLING", "on").lower() not in ("off", "0", "false", "no")


def exceeded(arn: str, read: bool, index: str | None = None) -> ServiceError:
    """The error, with the ThrottlingReasons DynamoDB names the throttled table or index by."""
    kind = "Index" if index else "Table"
    reason = {
        "reason": f"{kind}{'Read' if read else 'Write'}ProvisionedThroughputExceeded",
        "resource": f"{arn}/index/{index}" if index else arn,
    }
    return ServiceError(
        "ProvisionedThroughputExceededException",
        GSI_EXCEEDED if index else TABLE_EXCEEDED,
        400,
        fields={"ThrottlingReasons": [reason]},
    )


class Bucket:
    """Units available now: refilled at `rate` per simulated second, capped at `burst` seconds of
    it (300 for provisioned capacity)."""

    __slots__ = ("rate", "tokens", "at", "burst")

    def __init__(self, rate: float, now: float, burst: float = BURST_SECONDS) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = rate * burst
        self.at = now

    def level(self, now: float) -> float:
        if now > self.at:
            self.tokens = min(self.rate * self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
        return self.tokens

    def set_rate(self, rate: float, now: float) -> None:
        """A new provisioned rate (UpdateTable): what is stored stays, up to the new cap."""
        self.level(now)
        self.rate = rate
        self.tokens = min(self.tokens, rate * self.burst)


def _restore(bucket: Bucket, saved: list | None) -> Bucket:
    """A bucket as `levels` saved it ([tokens, at]): it refills from then, not full again."""
    if saved:
        bucket.tokens = min(float(saved[0]), bucket.rate * bucket.burst)
        bucket.at = min(float(saved[1]), bucket.at)
    return bucket


class Minutes:
    """Units consumed per simulated minute (minute index -> units), the last KEEP_MINUTES."""

    __slots__ = ("read", "write")

    def __init__(self) -> None:
        self.read: deque[list] = deque(maxlen=KEEP_MINUTES)  # [minute, units]
        self.write: deque[list] = deque(maxlen=KEEP_MINUTES)

    @staticmethod
    def add(series: deque[list], minute: int, units: float) -> None:
        if series and series[-1][0] == minute:
            series[-1][1] += units
        else:
            series.append([minute, units])

    def total(self, read: bool, first: int, last: int) -> float:
        """Units consumed in minutes first..last (inclusive)."""
        return sum(u for m, u in (self.read if read else self.write) if first <= m <= last)


class _Buckets:
    """A provisioned table's (or GSI's) read and write buckets: this gateway's share (1/`n`)."""

    __slots__ = ("read", "write", "tp", "n")

    def __init__(self, tp: dict, now: float, n: int = 1) -> None:
        self.read = Bucket(float(tp["ReadCapacityUnits"]) / n, now)
        self.write = Bucket(float(tp["WriteCapacityUnits"]) / n, now)
        self.tp = tp
        self.n = n

    def sync(self, tp: dict | None, now: float, n: int = 1) -> None:
        # UpdateTable publishes a new metadata object (and throughput dict): compare identity
        # first, so the hot path pays one `is` per request.
        if tp is None or (tp is self.tp and n == self.n):
            return
        self.tp, self.n = tp, n
        r, w = tp["ReadCapacityUnits"] / n, tp["WriteCapacityUnits"] / n
        if self.read.rate != r:
            self.read.set_rate(float(r), now)
        if self.write.rate != w:
            self.write.set_rate(float(w), now)


class _Maximum:
    """An on-demand table's maximum throughput: a bucket per limited dimension holding one
    second of it (DynamoDB answers requests past the maximum with quick throttles)."""

    __slots__ = ("spec", "read", "write")

    def __init__(self, spec: dict, now: float, n: int = 1) -> None:
        self.spec = spec
        r, w = spec.get("MaxReadRequestUnits", -1), spec.get("MaxWriteRequestUnits", -1)
        self.read = Bucket(float(r) / n, now, 1.0) if r > 0 else None
        self.write = Bucket(float(w) / n, now, 1.0) if w > 0 else None

    def regroup(self, n: int, now: float) -> None:
        for bucket, units in ((self.read, "MaxReadRequestUnits"), (self.write, "MaxWriteRequestUnits")):
            if bucket is not None:
                bucket.set_rate(float(self.spec[units]) / n, now)


class _Capacity:
    """An on-demand table's capacity (see the module doc): a one-second bucket per dimension at
    min(quota, max(warm, 2 x the highest settled peak)), and the peaks still settling."""

    __slots__ = ("warm", "quota", "buckets", "second", "used", "settling", "settled", "n")

    def __init__(self, warm: list[int], quota: int, now: float, n: int = 1) -> None:
        self.warm = warm  # the table's own list (provisioning["warm"]): new peaks raise it in place
        self.quota = quota
        self.n = n  # live gateways: this one's buckets hold 1/n of the table's capacity
        self.second = int(now)
        self.used = [0.0, 0.0]
        self.settling: tuple[deque, deque] = (deque(), deque())  # (second, units) of new highs
        self.settled = [0.0, 0.0]
        self.buckets = (Bucket(self._rate(0), now, 1.0), Bucket(self._rate(1), now, 1.0))

    def _rate(self, i: int) -> float:
        return float(min(self.quota, max(self.warm[i], 2 * self.settled[i]))) / self.n

    def bucket(self, read: bool, now: float) -> Bucket:
        if int(now) != self.second:
            self._next_second(now)
        return self.buckets[0 if read else 1]

    def admits(self, read: bool, now: float) -> bool:
        """Whether a request may draw on the bucket now. What the bucket held at its last charge
        it still holds or more (only charges take; a new second's rate is set by the roll), so the
        refill sum is needed only when that was spent: every on-demand request asks this."""
        if int(now) != self.second:
            self._next_second(now)
        bucket = self.buckets[0 if read else 1]
        return bucket.tokens > 0 or bucket.level(now) > 0

    def take(self, read: bool, served: float, now: float) -> None:
        """Charge what a request served (one call: every on-demand request makes it)."""
        if int(now) != self.second:
            self._next_second(now)
        i = 0 if read else 1
        bucket = self.buckets[i]
        if now > bucket.at:
            bucket.level(now)
        bucket.tokens -= served
        self.used[i] += served

    def _next_second(self, now: float) -> None:
        for i in (0, 1):
            bucket = self.buckets[i]
            served = min(self.used[i], bucket.rate) * self.n  # the table's, estimated
            highs = self.settling[i]
            if served > max(self.settled[i], highs[-1][1] if highs else 0.0):
                highs.append((self.second, served))
                if served > self.warm[i]:
                    self.warm[i] = int(served)
            while highs and highs[0][0] <= now - SETTLE_SECONDS:
                self.settled[i] = max(self.settled[i], highs.popleft()[1])
            rate = self._rate(i)
            if rate != bucket.rate:
                full = bucket.level(now) >= bucket.rate * bucket.burst
                bucket.set_rate(rate, now)
                if full:  # idle for a second or more: it is full at the new rate too
                    bucket.tokens = rate * bucket.burst
        self.second = int(now)
        self.used = [0.0, 0.0]

    def rebind(self, warm: list[int], now: float, n: int | None = None) -> None:
        """The table's metadata was replaced (UpdateTable), or the gateways are `n` now: follow
        its warm throughput and the share, keeping the peaks and what the buckets hold."""
        self.warm = warm
        self.n = self.n if n is None else n
        for i in (0, 1):
            self.buckets[i].set_rate(self._rate(i), now)

    def limited_by_quota(self, read: bool) -> bool:
        return self.buckets[0 if read else 1].rate * self.n >= self.quota


def _reason(arn: str, read: bool, limit: str, index: str | None) -> dict:
    """A ThrottlingReason: ResourceType + OperationType + LimitType, and the ARN of the table or
    index that was throttled (a GSI throttles its table's writes under its own name)."""
    kind = "Index" if index else "Table"
    resource = f"{arn}/index/{index}" if index else arn
    return {"reason": f"{kind}{'Read' if read else 'Write'}{limit}", "resource": resource}


def capacity_exceeded(arn: str, read: bool, quota: bool, index: str | None = None) -> ServiceError:
    """An on-demand table (or GSI) past its capacity: DynamoDB's scaling throttle, or its quota."""
    if quota:
        return ServiceError(
            "RequestLimitExceeded",
            "Throughput exceeds the current throughput limit for your account. Please contact AWS "
            "Support at https://aws.amazon.com/support request a limit increase",
            400,
            fields={"ThrottlingReasons": [_reason(arn, read, "AccountLimitExceeded", index)]},
        )
    return ServiceError(
        "ThrottlingException",
        "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically "
        "scaling your table or index so please try again shortly. If exceptions persist, check if you "
        "have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
        "bp-partition-key-design.html",
        400,
        fields={"throttlingReasons": [_reason(arn, read, "KeyRangeThroughputExceeded", index)]},
    )


def on_demand_exceeded(arn: str, read: bool, index: str | None = None) -> ServiceError:
    return ServiceError(
        "ThrottlingException",
        "Rate of requests exceeds the allowed throughput.",
        400,
        fields={"throttlingReasons": [_reason(arn, read, "MaxOnDemandThroughputExceeded", index)]},
    )


class Throttle:
    """The buckets and consumption history of every table, by table id (see the module doc)."""

    def __init__(self, enforce: bool | None = None, quota: Quota | None = None) -> None:
        self.enforce = enforced() if enforce is None else enforce
        self.quota = quota or Quota()
        self._capacities: dict[int, _Capacity] = {}  # on-demand tables (warm.py)
        self._tables: dict[int, _Buckets] = {}
        self._indexes: dict[int, _Buckets] = {}
        self.minutes: dict[int, Minutes] = {}  # by table id
        self.index_minutes: dict[int, Minutes] = {}  # by GSI id
        self._maxima: dict[int, _Maximum] = {}  # on-demand tables with a maximum throughput
        self._index_capacities: dict[int, _Capacity] = {}  # on-demand GSIs, by GSI id
        self._index_maxima: dict[int, _Maximum] = {}
        self.n = 1  # the live gateways every bucket is divided among (see the module doc)

    def _regroup(self) -> None:
        """The number of live gateways changed: every bucket takes its new share (what a bucket
        holds stays, up to its new cap; a larger share refills at its new rate)."""
        n, now = live.count, clock.time()
        self.n = n
        for b in (*self._tables.values(), *self._indexes.values()):
            b.sync(b.tp, now, n)
        for m in (*self._maxima.values(), *self._index_maxima.values()):
            m.regroup(n, now)
        for c in (*self._capacities.values(), *self._index_capacities.values()):
            c.rebind(c.warm, now, n)

    def _table(self, meta: TableMeta, now: float) -> _Buckets:
        b = self._tables.get(meta.tid)
        if b is None:
            b = self._tables[meta.tid] = _Buckets(meta.throughput, now, self.n)
            saved = meta.provisioning.get("buckets", {}).get("table")
            if saved:
                _restore(b.read, saved[0])
                _restore(b.write, saved[1])
        elif b.tp is not meta.throughput:
            b.sync(meta.throughput, now, self.n)
        return b

    def _maximum(self, meta: TableMeta, now: float) -> _Maximum:
        m = self._maxima.get(meta.tid)
        if m is None or m.spec is not meta.on_demand:
            m = self._maxima[meta.tid] = _Maximum(meta.on_demand or {}, now, self.n)
        return m

    def _capacity(self, meta: TableMeta, now: float) -> _Capacity:
        c = self._capacities.get(meta.tid)
        if c is None:
            warm = warm_of(meta, self.quota)
            c = self._capacities[meta.tid] = _Capacity(warm, self.quota.table_max, now, self.n)
        elif meta.provisioning.get("warm") is not c.warm:  # a new metadata object (UpdateTable)
            c.rebind(warm_of(meta, self.quota), now)
        return c

    def _on_demand_refusal(self, meta: TableMeta, read: bool, index: str | None) -> ServiceError | None:
        if not self.enforce:
            return None
        if live.count != self.n:  # (one attribute per request: the gateways rarely change)
            self._regroup()
        now = clock.time()
        if index is not None:  # a read of a GSI draws on the GSI's capacity (an LSI's: the table's)
            for ix in meta.indexes:
                if ix.name == index and ix.is_global:
                    return self._index_refusal(meta, ix, read, now)
        if meta.on_demand is not None:
            m = self._maximum(meta, now)
            bucket = m.read if read else m.write
            if bucket is not None and bucket.level(now) <= 0:
                return on_demand_exceeded(meta.arn, read)
        c = self._capacities.get(meta.tid)
        if c is None or meta.provisioning.get("warm") is not c.warm:
            c = self._capacity(meta, now)
        if not c.admits(read, now):
            return capacity_exceeded(meta.arn, read, c.limited_by_quota(read))
        if not read and meta.indexes:  # a GSI short of capacity throttles the table's writes
            for ix in meta.indexes:
                if ix.is_global:
                    error = self._index_refusal(meta, ix, False, now)
                    if error is not None:
                        return error
        return None

    def _index_refusal(self, meta: TableMeta, ix: IndexMeta, read: bool, now: float) -> ServiceError | None:
        """An on-demand GSI past its maximum or its capacity (its own, as a table's)."""
        if ix.on_demand is not None:
            m = self._index_maxima.get(ix.iid)
            if m is None or m.spec is not ix.on_demand:
                m = self._index_maxima[ix.iid] = _Maximum(ix.on_demand, now, self.n)
            bucket = m.read if read else m.write
            if bucket is not None and bucket.level(now) <= 0:
                return on_demand_exceeded(meta.arn, read, ix.name)
        c = self._index_capacity(meta, ix, now)
        if c.admits(read, now):
            return None
        return capacity_exceeded(meta.arn, read, c.limited_by_quota(read), ix.name)

    def _index_capacity(self, meta: TableMeta, ix: IndexMeta, now: float) -> _Capacity:
        c = self._index_capacities.get(ix.iid)
        if c is None:
            warm = warm_of_index(ix, meta.billing_mode, self.quota)
            c = self._index_capacities[ix.iid] = _Capacity(warm, self.quota.table_max, now, self.n)
        elif ix.provisioning.get("warm") is not c.warm:  # a new metadata object (UpdateTable)
            c.rebind(warm_of_index(ix, meta.billing_mode, self.quota), now)
        return c

    def _charge_indexes(self, meta: TableMeta, consumed: Consumed, now: float) -> None:
        """What an on-demand request served on each GSI, from the GSI's maximum and capacity."""
        for ix in meta.indexes:
            units = consumed.gsi.get(ix.name)
            if units and ix.is_global:
                if ix.on_demand is not None:
                    m = self._index_maxima.get(ix.iid)
                    bucket = None if m is None else (m.read if consumed.read else m.write)
                    if bucket is not None:
                        bucket.level(now)
                        bucket.tokens -= units
                self._index_capacity(meta, ix, now).take(consumed.read, units, now)

    def _index(self, iid: int, tp: dict | None, now: float, saved: dict | None = None) -> _Buckets:
        b = self._indexes.get(iid)
        if b is None:
            b = self._indexes[iid] = _Buckets(
                tp or {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}, now, self.n
            )
            levels = (saved or {}).get(str(iid))
            if levels:
                _restore(b.read, levels[0])
                _restore(b.write, levels[1])
        else:
            b.sync(tp, now, self.n)
        return b

    def read_refusal(self, meta: TableMeta, index: str | None = None) -> ServiceError | None:
        """The error a read of the table (or of its GSI `index`) would get now; None: admitted."""
        if meta.billing_mode != "PROVISIONED":
            return self._on_demand_refusal(meta, True, index)
        if not self.enforce:
            return None
        if live.count != self.n:  # (one attribute per request: the gateways rarely change)
            self._regroup()
        now = clock.time()
        if index is not None:
            for ix in meta.indexes:
                if ix.name == index and ix.is_global:
                    saved = meta.provisioning.get("buckets", {}).get("gsi")
                    if self._index(ix.iid, ix.throughput, now, saved).read.level(now) <= 0:
                        return exceeded(meta.arn, True, ix.name)
                    return None
        if self._table(meta, now).read.level(now) <= 0:
            return exceeded(meta.arn, True)
        return None

    def admit_read(self, meta: TableMeta, index: str | None = None) -> None:
        """ProvisionedThroughputExceededException if the read bucket (table's or GSI's) is empty."""
        error = (
            self.read_refusal(meta, index)
            if meta.billing_mode == "PROVISIONED"
            else self._on_demand_refusal(meta, True, index)  # (every on-demand read: one call less)
        )
        if error is not None:
            raise error

    def write_refusal(self, meta: TableMeta) -> ServiceError | None:
        """The error a write to the table would get now, or None when it is admitted."""
        if meta.billing_mode != "PROVISIONED":
            return self._on_demand_refusal(meta, False, None)
        if not self.enforce:
            return None
        if live.count != self.n:  # (one attribute per request: the gateways rarely change)
            self._regroup()
        now = clock.time()
        if self._table(meta, now).write.level(now) <= 0:
            return exceeded(meta.arn, False)
        saved = meta.provisioning.get("buckets", {}).get("gsi")
        for ix in meta.indexes:
            if ix.is_global and self._index(ix.iid, ix.throughput, now, saved).write.level(now) <= 0:
                return exceeded(meta.arn, False, ix.name)
        return None

    def admit_write(self, meta: TableMeta) -> None:
        error = self.write_refusal(meta)
        if error is not None:
            raise error

    def charge(self, meta: TableMeta, consumed: Consumed) -> None:
        """Take what a request consumed from its buckets and add it to the minute's history."""
        if live.count != self.n:
            self._regroup()
        now = clock.time()
        if meta.billing_mode != "PROVISIONED":
            served = (
                consumed.table_units + sum(consumed.lsi.values()) if consumed.lsi else consumed.table_units
            )
            if meta.on_demand is not None:
                m = self._maximum(meta, now)
                bucket = m.read if consumed.read else m.write
                if bucket is not None:
                    bucket.level(now)
                    bucket.tokens -= served
            c = self._capacities.get(meta.tid)
            if c is None or meta.provisioning.get("warm") is not c.warm:
                c = self._capacity(meta, now)
            c.take(consumed.read, served, now)
            if consumed.gsi:
                self._charge_indexes(meta, consumed, now)
            return
        table_units = (
            consumed.table_units + sum(consumed.lsi.values()) if consumed.lsi else consumed.table_units
        )
        buckets = self._table(meta, now)
        bucket = buckets.read if consumed.read else buckets.write
        bucket.level(now)
        bucket.tokens -= table_units
        history = self.minutes.get(meta.tid)
        if history is None:
            history = self.minutes[meta.tid] = Minutes()
        series = history.read if consumed.read else history.write
        minute = int(now // 60)
        if series and series[-1][0] == minute:
            series[-1][1] += table_units
        else:
            series.append([minute, table_units])
        if consumed.gsi:
            for ix in meta.indexes:
                units = consumed.gsi.get(ix.name)
                if units:
                    b = self._index(
                        ix.iid, ix.throughput, now, meta.provisioning.get("buckets", {}).get("gsi")
                    )
                    bucket = b.read if consumed.read else b.write
                    bucket.level(now)
                    bucket.tokens -= units
                    history = self.index_minutes.get(ix.iid)
                    if history is None:
                        history = self.index_minutes[ix.iid] = Minutes()
                    Minutes.add(history.read if consumed.read else history.write, int(now // 60), units)

    def levels(self, meta: TableMeta) -> dict | None:
        """What a provisioned table's buckets (and its GSIs') hold now, to be saved with its
        metadata (`provisioning["buckets"]`) so a restart does not refill them: DynamoDB's
        capacity does not come back because a server restarted."""
        table = self._tables.get(meta.tid)
        if meta.billing_mode != "PROVISIONED" or table is None:
            return None
        now = clock.time()

        def pair(b: _Buckets) -> list:
            return [[b.read.level(now), now], [b.write.level(now), now]]

        gsi = {str(ix.iid): pair(self._indexes[ix.iid]) for ix in meta.indexes if ix.iid in self._indexes}
        return {"table": pair(table), "gsi": gsi}

    def forget(self, meta: TableMeta) -> None:
        self._tables.pop(meta.tid, None)
        self._maxima.pop(meta.tid, None)
        self._capacities.pop(meta.tid, None)
        self.minutes.pop(meta.tid, None)
        for ix in meta.indexes:
            self._indexes.pop(ix.iid, None)
            self.index_minutes.pop(ix.iid, None)
            self._index_capacities.pop(ix.iid, None)
            self._index_maxima.pop(ix.iid, None)
