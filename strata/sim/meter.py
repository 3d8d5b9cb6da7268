"""The meter: every billable event goes through `meter.record`.

Events are kept in a SQLite table in the data directory (or, with several gateways on one
PostgreSQL, in its `meter` store: `share`, so a bill counts every gateway's events); pricing with AWS's price tables reads it
later. The hot path only adds to an in-memory tally: events alike in service, name, unit, dimensions
and simulated second become one row whose quantity is their sum and `count` their number. Writing a
row (and encoding its dimensions) per event cost a DynamoDB GetItem a third of its CPU.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.sim.clock import clock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meter_events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    service TEXT NOT NULL,
    event TEXT NOT NULL,
    quantity REAL NOT NULL,
    unit TEXT NOT NULL,
    dims TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS meter_events_service_at ON meter_events(service, at);
"""


SCHEMA = _SCHEMA
_INSERT = "INSERT INTO meter_events(at, service, event, quantity, unit, dims, count) VALUES (?,?,?,?,?,?,?)"


@dataclass(frozen=True)
class MeterEvent:
    at: float
    service: str
    event: str
    quantity: float
    unit: str
    dims: dict
    count: int = 1  # how many events this row sums (alike ones in the same second are one row)


class Meter:
    """Tallies events in memory; writes the tally to SQLite every `flush_every` rows or on demand."""

    def __init__(self, db_path: Path | None = None, flush_every: int = 512) -> None:
        # (service, event, unit, second, dims key) -> [at of the first, quantity, count, dims]
        self._pending: dict[tuple, list] = {}
        self._events = 0  # events tallied since the last write
        self._lock = threading.Lock()  # guards _pending and _inflight
        self._db_lock = threading.Lock()  # one writer of the database at a time
        self._flush_every = flush_every
        self._db: sqlite3.Connection | None = None
        self._store: Any = None  # a shared metadata store (strata.storage.interface) instead
        # Full batches are written by a background thread: their INSERT and fsync'd COMMIT must
        # not stall the event loop that happened to record the 512th event.
        self._writer: ThreadPoolExecutor | None = None
        self._inflight: list[Future] = []
        if db_path is not None:
            self.open(db_path)

    def open(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(meter_events)")}
        if "count" not in columns:  # a data directory from before events were tallied
            self._db.execute("ALTER TABLE meter_events ADD COLUMN count INTEGER NOT NULL DEFAULT 1")

    def share(self, store: Any) -> None:
        """Keep events in `store` (a metadata store several gateways share, whose schema is
        `SCHEMA`) instead of this gateway's SQLite file."""
        self.flush()
        self._store = store

    def record(
        self, service: str, event: str, quantity: float = 1, unit: str = "count", **dims: object
    ) -> None:
        """Record one billable event, e.g. record("s3", "PutObject", 1, "request", bucket="b")."""
        if dims:
            try:
                dims_key: object = tuple(dims.items())
                hash(dims_key)
            except TypeError:  # an unhashable dimension value: keep the event on a row of its own
                dims_key = object()
        else:
            dims_key = ()
        self.record_keyed(service, event, quantity, unit, dims_key, dims)

    def record_keyed(
        self, service: str, event: str, quantity: float, unit: str, dims_key: object, dims: dict
    ) -> None:
        """`record` for a caller that keeps its dimensions and their hashable key (`dims_key`,
        the dict's items as a tuple) from one event to the next: DynamoDB's capacity, recorded for
        every item read and write, saves building both each time."""
        now = clock.time()
        key = (service, event, unit, int(now), dims_key)
        with self._lock:
            tally = self._pending.get(key)
            if tally is None:
                self._pending[key] = [now, float(quantity), 1, dims]
            else:
                tally[1] += quantity
                tally[2] += 1
            self._events += 1
            if (len(self._pending) >= self._flush_every or self._events >= 64 * self._flush_every) and (
                self._db is not None or self._store is not None
            ):
                rows = self._take()
                if self._writer is None:
                    self._writer = ThreadPoolExecutor(1, thread_name_prefix="meter")
                self._inflight = [f for f in self._inflight if not f.done()]
                self._inflight.append(self._writer.submit(self._write, rows))

    def _take(self) -> list[tuple]:
        """The tally as rows, emptied (caller holds the lock)."""
        rows = [(t[0], k[0], k[1], t[1], k[2], t[3], t[2]) for k, t in self._pending.items()]
        self._pending = {}
        self._events = 0
        return rows

    def flush(self) -> None:
        """Write everything recorded so far (waits for batches being written in the background)."""
        with self._lock:
            rows = self._take()
            inflight, self._inflight = self._inflight, []
        for f in inflight:
            f.result()
        self._write(rows)

    def _write(self, rows: list[tuple]) -> None:
        db, store = self._db, self._store
        if not rows or (db is None and store is None):
            return
        encoded = [(*r[:5], json.dumps(r[5], default=str) if r[5] else "{}", r[6]) for r in rows]
        if store is not None:
            with store.transaction():
                store.executemany(_INSERT, encoded)
            return
        assert db is not None
        with self._db_lock:
            # One transaction per batch: in autocommit mode every row would be its own fsync'd commit.
            db.execute("BEGIN")
            db.executemany(_INSERT, encoded)
            db.execute("COMMIT")

    def events(self, service: str | None = None, event: str | None = None) -> list[MeterEvent]:
        """Recorded events, oldest first (flushes first so callers see everything recorded so far)."""
        self.flush()
        if self._db is None and self._store is None:
            return []
        sql = "SELECT at, service, event, quantity, unit, dims, count FROM meter_events WHERE 1=1"
        args: list = []
        if service:
            sql += " AND service = ?"
            args.append(service)
        if event:
            sql += " AND event = ?"
            args.append(event)
        rows = self._query(sql + " ORDER BY id", args)
        return [MeterEvent(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    def between(self, since: float, until: float, services: tuple[str, ...]) -> list[MeterEvent]:
        """Events of `services` recorded at simulated times in (since, until], oldest first (what
        CloudWatch's publisher turns into AWS/* metrics once a simulated minute)."""
        self.flush()
        if (self._db is None and self._store is None) or not services:
            return []
        marks = ",".join("?" * len(services))
        rows = self._query(
            "SELECT at, service, event, quantity, unit, dims, count FROM meter_events "
            f"WHERE service IN ({marks}) AND at > ? AND at <= ? ORDER BY at",
            [*services, since, until],
        )
        return [MeterEvent(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    @property
    def unwritten(self) -> bool:
        """Whether events are tallied (or being written) that `flush` would wait for."""
        return bool(self._pending or self._inflight)

    @property
    def shared(self) -> bool:
        """Whether several gateways write these events (`share`)."""
        return self._store is not None

    def after(self, last: int | None, services: tuple[str, ...]) -> tuple[list[MeterEvent], int]:
        """Events of `services` written after row `last` (None: none yet; only rows from now on
        count), and the last row's id: what a reader of a shared meter has not read yet, whenever
        a gateway wrote it. Complete on PostgreSQL: rows are numbered inside the store's write
        lock, so a row committed later always has a higher id than every row read before."""
        self.flush()
        if self._db is None and self._store is None:
            return [], last or 0
        top = int(self._query("SELECT COALESCE(MAX(id), 0) FROM meter_events", [])[0][0])
        if last is None or not services:
            return [], top
        marks = ",".join("?" * len(services))
        rows = self._query(
            "SELECT at, service, event, quantity, unit, dims, count FROM meter_events "
            f"WHERE service IN ({marks}) AND id > ? AND id <= ? ORDER BY id",
            [*services, last, top],
        )
        return [MeterEvent(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows], top

    def _query(self, sql: str, args: list) -> list:
        if self._store is not None:
            return self._store.query(sql, args)
        assert self._db is not None
        with self._db_lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        self.flush()
        self._store = None  # (closed by its owner)
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._db is not None:
            self._db.close()
            self._db = None


meter = Meter()
