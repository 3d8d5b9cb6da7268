"""The meter: every billable event goes through `meter.record`.

Events are appended to a SQLite table in the data directory in batches (the hot path only appends
to a list); pricing with AWS's price tables reads this table later.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from strata.sim.clock import clock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meter_events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    service TEXT NOT NULL,
    event TEXT NOT NULL,
    quantity REAL NOT NULL,
    unit TEXT NOT NULL,
    dims TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS meter_events_service_at ON meter_events(service, at);
"""


@dataclass(frozen=True)
class MeterEvent:
    at: float
    service: str
    event: str
    quantity: float
    unit: str
    dims: dict


class Meter:
    """Buffers events in memory and flushes them to SQLite every `flush_every` events or on demand."""

    def __init__(self, db_path: Path | None = None, flush_every: int = 512) -> None:
        self._pending: list[tuple] = []
        self._lock = threading.Lock()  # guards _pending and _inflight
        self._db_lock = threading.Lock()  # one writer of the database at a time
        self._flush_every = flush_every
        self._db: sqlite3.Connection | None = None
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

    def record(
        self, service: str, event: str, quantity: float = 1, unit: str = "count", **dims: object
    ) -> None:
        """Record one billable event, e.g. record("s3", "PutObject", 1, "request", bucket="b")."""
        # dims stay a dict until the batch is written: encoding them here would cost a request
        # more than everything else this method does.
        row = (clock.time(), service, event, float(quantity), unit, dims)
        with self._lock:
            self._pending.append(row)
            if len(self._pending) >= self._flush_every and self._db is not None:
                rows, self._pending = self._pending, []
                if self._writer is None:
                    self._writer = ThreadPoolExecutor(1, thread_name_prefix="meter")
                self._inflight = [f for f in self._inflight if not f.done()]
                self._inflight.append(self._writer.submit(self._write, rows))

    def flush(self) -> None:
        """Write everything recorded so far (waits for batches being written in the background)."""
        with self._lock:
            rows, self._pending = self._pending, []
            inflight, self._inflight = self._inflight, []
        for f in inflight:
            f.result()
        self._write(rows)

    def _write(self, rows: list[tuple]) -> None:
        if not rows or self._db is None:
            return
        encoded = [(*r[:5], json.dumps(r[5], default=str) if r[5] else "{}") for r in rows]
        with self._db_lock:
            # One transaction per batch: in autocommit mode every row would be its own fsync'd commit.
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO meter_events(at, service, event, quantity, unit, dims) VALUES (?,?,?,?,?,?)",
                encoded,
            )
            self._db.execute("COMMIT")

    def events(self, service: str | None = None, event: str | None = None) -> list[MeterEvent]:
        """Recorded events, oldest first (flushes first so callers see everything recorded so far)."""
        self.flush()
        if self._db is None:
            return []
        sql, args = "SELECT at, service, event, quantity, unit, dims FROM meter_events WHERE 1=1", []
        if service:
            sql += " AND service = ?"
            args.append(service)
        if event:
            sql += " AND event = ?"
            args.append(event)
        rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [MeterEvent(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._db is not None:
            self._db.close()
            self._db = None


meter = Meter()
