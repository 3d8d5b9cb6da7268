"""Global tables (version 2019.11.21): every change to one replica reaches the others.

Every replica of a global table is an ordinary table of its region in the one item store, with
its stream enabled (NEW_AND_OLD_IMAGES) and `TableMeta.group` naming the regions of all of
them. A replica's changes are its stream records (streams.py), written in the same SQLite write
as the change, so an acknowledged write's record survives kill -9: the stream is the durable
outbox. The `Replicator` reads each replica's stream after a cursor per (source, target) pair
and applies the records to the target in one write with the cursor's advance, so a record is
applied exactly once, across restarts too.

    ddb_counters 'rep:<source tid>:<target tid>'   the last source record applied to the target

A replicated change is written to the target as a change of its own (its indexes, counts,
point-in-time history, and a stream record flagged REPLICATED, which is not sent back) unless
the target's item has a later version (lww.py: last writer wins). Records are applied once
they are `lag` seconds old on the simulated clock (the `dynamodb_replication_lag_seconds`
limit, 0 by default: as soon as the replicator looks, every POLL seconds); stream records are
kept until every replica has them (streams.rule's `held`).

A new replica is CREATING while the replicator copies the source's items in chunks (each
with its version), then ACTIVE once `create_seconds` of simulated time have passed (the
`dynamodb_replica_create_seconds` limit, CREATE_SECONDS by default); changes
made meanwhile wait behind its cursors and follow the copy. Replicated writes go on the meter
as `ReplicatedWriteCapacityUnits` (rWCU/rWRU), per target table, and each record's time from
its write to its arrival as `ReplicationLatency` (CloudWatch's metric of that name).

FIS's aws:dynamodb:global-table-pause-replication pauses a replica (`pause`): no change is sent
to it or taken from it while paused; its changes and the others' wait in the streams behind the
cursors and are applied when the pause is lifted (`resume`). Pauses live in memory only: a
restart lifts them, as it ends the experiment that made them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from strata.protocol.errors import ServiceError
from strata.services.dynamodb import items as itm
from strata.services.dynamodb import lww
from strata.services.dynamodb.capacity import Consumed, _meter_dims
from strata.services.dynamodb.errors import resource_in_use
from strata.services.dynamodb.state import State
from strata.services.dynamodb.store import loads
from strata.services.dynamodb.streams import REPLICATED, current_seq
from strata.services.dynamodb.tables import TableMeta
from strata.services.dynamodb.throttle import Throttle
from strata.services.dynamodb.types import item_size
from strata.sim.clock import clock
from strata.sim.meter import meter

log = logging.getLogger("strata")

POLL = 0.05  # seconds between the replicator's looks at the streams
IDLE = 1.0  # ... while no table is global
BATCH = 500  # records applied per write
CREATE_SECONDS = 30.0  # a new replica is CREATING at least this long (simulated time)
VERSION = "2019.11.21"


def cursor_name(source: int, target: int) -> str:
    return f"rep:{source}:{target}"


def region_of(meta: TableMeta) -> str:
    return meta.scope.split(":", 1)[1]


def scope_in(meta: TableMeta, region: str) -> str:
    return f"{meta.scope.split(':', 1)[0]}:{region}"


@dataclass
class Replicator:
    """The background task that carries changes between the replicas of global tables."""

    state: State
    chunk: int = 1000
    lag: float = 0.0
    create_seconds: float = CREATE_SECONDS

    def __post_init__(self) -> None:
        self.state.store.db.executescript(lww.SCHEMA)
        rows = self.state.store.r.execute(
            "SELECT name, value FROM ddb_counters WHERE name LIKE 'rep:%'"
        ).fetchall()
        self.cursors: dict[tuple[int, int], int] = {}
        for name, value in rows:
            _, src, dst = name.split(":")
            self.cursors[(int(src), int(dst))] = value
        self._task: asyncio.Task | None = None
        self._woken = asyncio.Event()
        self._busy = True  # some table is global (a look every POLL seconds, else every IDLE)
        self._seen = -1  # the last committed stream record when a look found nothing left to do
        # FIS pauses: fault key -> the replicas, as (scope, table name), that neither send nor receive
        self.paused: dict[str, frozenset[tuple[str, str]]] = {}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def _loop(self) -> None:
        while True:
            # Without global tables the replicator only checks now and then (wake() cuts it short).
            try:
                await asyncio.wait_for(self._woken.wait(), POLL if self._busy else IDLE)
            except TimeoutError:
                pass
            self._woken.clear()
            try:
                self._busy = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next look tries again; nothing is lost (the cursors)
                log.exception("dynamodb replication")

    # -- the group -----------------------------------------------------------------------------

    def member(self, meta: TableMeta, region: str) -> TableMeta | None:
        """The replica of `meta`'s global table in `region` (ACTIVE or CREATING), or None."""
        key = (scope_in(meta, region), meta.name)
        return self.state.tables.get(key) or self.state.creating.get(key)

    def others(self, meta: TableMeta) -> list[TableMeta]:
        own = region_of(meta)
        found = (self.member(meta, r) for r in meta.group if r != own)
        return [m for m in found if m is not None]

    def held(self) -> dict[int, int]:
        """Per stream id, the last record every replica has (the streams rule keeps the rest)."""
        out: dict[int, int] = {}
        every = (*self.state.tables.values(), *self.state.creating.values())
        tables = {m.tid: m for m in every if m.group and m.streams}
        for (src, _dst), seq in self.cursors.items():
            meta = tables.get(src)
            if meta is not None:
                sid = meta.streams[-1]["sid"]
                out[sid] = min(out.get(sid, seq), seq)
        return out

    def check_detachable(self, meta: TableMeta) -> None:
        """ResourceInUseException while another replica of the table is being created."""
        if meta.group and any(m.status == "CREATING" for m in self.others(meta)):
            raise resource_in_use(
                f"Attempt to change a resource which is still in use: Table is being updated: {meta.name}"
            )

    async def detach(self, meta: TableMeta) -> None:
        """A replica leaves its global table (ReplicaUpdates Delete, DeleteTable): the others stop
        sending it changes; a last one left alone is an ordinary table again."""
        if not meta.group:
            return
        store = self.state.store
        others = self.others(meta)
        self.check_detachable(meta)
        group = [r for r in meta.group if r != region_of(meta)]
        pairs = [p for p in self.cursors if meta.tid in p]

        def write() -> None:
            for m in others:
                m.group = list(group) if len(group) > 1 else []
                if not m.group:
                    lww.forget(store, m.tid)
                store.save_meta(m.to_json())
            meta.group = []
            lww.forget(store, meta.tid)
            store.save_meta(meta.to_json())
            store.w.executemany(
                "DELETE FROM ddb_counters WHERE name = ?", [(cursor_name(*p),) for p in pairs]
            )
            for p in pairs:
                self.cursors.pop(p, None)

        await store.db.write(write)

    async def link(self, members: list[TableMeta], joining: list[TableMeta]) -> None:
        """Make empty tables of one name replicas of one global table with `members` (the
        legacy CreateGlobalTable / UpdateGlobalTable): nothing to copy, every change from now on
        replicated."""
        store = self.state.store
        every = [*members, *joining]
        group = [region_of(m) for m in every]

        def write() -> dict[tuple[int, int], int]:
            for m in every:
                m.group = list(group)
                store.save_meta(m.to_json())
            seq = current_seq(store)
            cursors = {
                (a.tid, b.tid): seq
                for a in every
                for b in every
                if a is not b and (a in joining or b in joining)
            }
            store.w.executemany(
                "INSERT INTO ddb_counters(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                [(cursor_name(*pair), value) for pair, value in cursors.items()],
            )
            return cursors

        self.cursors.update(await store.db.write(write))
        self.wake()

    def wake(self) -> None:
        """Look at every pair again, now (a replica was added, a pause lifted)."""
        self._seen = -1
        self._woken.set()

    def pause(self, key: str, replicas: frozenset[tuple[str, str]]) -> None:
        """Stop replication to and from `replicas` ((scope, name) pairs) until `resume(key)`."""
        self.paused[key] = replicas

    def resume(self, key: str) -> None:
        """Lift the pause `key` made: what waited in the streams is applied at the next look."""
        if self.paused.pop(key, None) is not None:
            self.wake()

    def _is_paused(self, meta: TableMeta) -> bool:
        here = (meta.scope, meta.name)
        return any(here in replicas for replicas in self.paused.values())

    # -- the work ------------------------------------------------------------------------------

    async def step(self) -> bool:
        """One look: copy a chunk into each replica being created, promote the ready ones, apply
        the due records of every pair; whether there is any global table."""
        state = self.state
        groups = [m for m in (*state.tables.values(), *state.creating.values()) if m.group]
        if not groups:
            return False
        for meta in groups:
            if meta.replica is not None and not meta.replica.get("copied"):
                await self._copy(meta)
        self._promote()
        # The last committed record (the in-memory counter runs ahead of commits: a look that
        # went by it could miss a record committed just after).
        seen = state.store.r.execute("SELECT coalesce(max(seq), 0) FROM ddb_stream").fetchone()[0]
        if seen == self._seen:
            return True
        waiting = False
        for src in groups:
            if src.replica is not None or not src.streams:
                continue  # a replica being created takes no writes of its own
            for dst in self.others(src):
                if dst.replica is not None and not dst.replica.get("copied"):
                    waiting = True
                    continue
                if self.paused and (self._is_paused(src) or self._is_paused(dst)):
                    continue  # held in src's stream; resume() looks again
                waiting |= await self._pump(src, dst)
        if not waiting:
            self._seen = seen
        return True

    async def _pump(self, src: TableMeta, dst: TableMeta) -> bool:
        """Apply src's due records to dst; whether some are left for a later look."""
        pair = (src.tid, dst.tid)
        cursor = self.cursors.get(pair)
        if cursor is None:
            return False
        store = self.state.store
        rows = store.r.execute(
            "SELECT seq, at, ev, old, new FROM ddb_stream WHERE sid = ? AND seq > ? ORDER BY seq LIMIT ?",
            (src.streams[-1]["sid"], cursor, BATCH),
        ).fetchall()
        if not rows:
            return False
        due_by = clock.time() - self.lag
        due = [r for r in rows if r[1] <= due_by]
        left = len(due) < len(rows) or len(rows) == BATCH
        if not due:
            return left
        consumed = Consumed(dst.name, False)

        def apply() -> bool:
            if self.cursors.get(pair) != cursor or self.member(src, region_of(dst)) is not dst:
                return False  # dissolved meanwhile, or dst's metadata replaced (UpdateTable): again
            for seq, at, ev, old, new in due:
                if not ev & REPLICATED:
                    self._apply(dst, (at, seq), old, new, consumed)
            store.w.execute(
                "INSERT INTO ddb_counters(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (cursor_name(*pair), due[-1][0]),
            )
            return True

        if not await store.db.write(apply):
            return True
        self.cursors[pair] = due[-1][0]
        _meter(dst, consumed, self.state.throttle)
        now, receiving = clock.time(), region_of(dst)
        for _seq, at, ev, _old, _new in due:  # CloudWatch's ReplicationLatency, from the meter
            if not ev & REPLICATED:
                meter.record(
                    "dynamodb",
                    "ReplicationLatency",
                    max(0.0, now - at) * 1000.0,
                    "ms",
                    table=src.name,
                    receiving_region=receiving,
                    scope=src.scope,
                )
        return left

    def _apply(
        self, dst: TableMeta, version: lww.Version, old: bytes | None, new: bytes | None, consumed: Consumed
    ) -> None:
        """Write one replicated change to dst unless dst's item is newer (inside a write)."""
        store = self.state.store
        image = loads(new if new is not None else old)  # type: ignore[arg-type]
        pk, sk = itm.key_of_item(dst, image)
        current = lww.version_of(store, dst.tid, pk, sk)
        if current is not None and current >= version:
            return
        found = store.get(dst.tid, pk, sk)
        before, before_size = found if found is not None else (None, None)
        item = loads(new) if new is not None else None
        if item is not None or found is not None:
            store.w.execute("SAVEPOINT replicate")
            try:
                itm.write(
                    store,
                    dst,
                    pk,
                    sk,
                    before,
                    before_size,
                    item,
                    item_size(item) if item is not None else 0,
                    consumed,
                    replicated=True,
                )
            except ServiceError as e:  # an item collection over its limit in this replica
                store.w.execute("ROLLBACK TO replicate")
                store.w.execute("RELEASE replicate")
                log.warning("dynamodb replication to %s dropped a change: %s", dst.arn, e.message)
                return
            store.w.execute("RELEASE replicate")
        lww.stamp(store, dst.tid, pk, sk, version)

    async def _copy(self, dst: TableMeta) -> None:
        """Copy the next chunk of the source's items into a replica being created."""
        progress = dict(dst.replica or {})
        src = self.member(dst, progress["from"])
        store = self.state.store
        after = tuple(bytes.fromhex(h) for h in progress["after"]) if progress.get("after") else None
        consumed = Consumed(dst.name, False)

        def copy() -> None:
            rows = store.items_after(src.tid, after, self.chunk) if src is not None else []  # type: ignore[arg-type]
            for pk, sk, blob in rows:
                version = lww.version_of(store, src.tid, pk, sk) or (0.0, 0)  # type: ignore[union-attr]
                self._apply(dst, version, None, blob, consumed)
            if len(rows) < self.chunk:
                progress["copied"] = True
                progress.pop("after", None)
            else:
                progress["after"] = [rows[-1][0].hex(), rows[-1][1].hex()]
            dst.replica = progress
            store.save_meta(dst.to_json())

        await store.db.write(copy)
        _meter(dst, consumed)

    def _promote(self) -> None:
        """Replicas copied and CREATING for `create_seconds` become ACTIVE (durable before visible)."""
        now = clock.time()
        due = [
            m
            for m in self.state.creating.values()
            if m.replica is not None and m.replica.get("copied") and now >= m.replica["ready_at"]
        ]
        if not due:
            return
        with self.state.store.write():
            for meta in due:
                meta.status = "ACTIVE"
                meta.replica = None
                self.state.store.save_meta(meta.to_json())
        for meta in due:
            del self.state.creating[(meta.scope, meta.name)]
            self.state.tables[(meta.scope, meta.name)] = meta


def _meter(dst: TableMeta, consumed: Consumed, throttle: Throttle | None = None) -> None:
    """Replicated writes are billed as replicated write units of the target's region, and (as in
    DynamoDB) use its write capacity: taken from its buckets, seen by its auto scaling."""
    if throttle is not None and consumed.total:
        throttle.charge(dst, consumed)
    if consumed.total:
        key, dims = _meter_dims(dst.name, dst.billing_mode, dst.scope)
        meter.record_keyed("dynamodb", "ReplicatedWriteCapacityUnits", consumed.total, "rWCU", key, dims)
