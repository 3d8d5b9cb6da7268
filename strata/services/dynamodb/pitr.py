"""Point-in-time recovery: a change history from which a table is rebuilt as it was at any second
of its recovery window (35 days by default, RecoveryPeriodInDays 1-35).

The history is an undo log. Every change to an item of a table with PITR on adds one row
`(seq, tid, at, pk, sk, before)` in the same SQLite write as the change, `before` being the item's
stored bytes just before the change (NULL: it did not exist), copied by SQL from the item row
itself — no decoding or encoding in Python, one INSERT into one B-tree per write (rows are kept
in the order they were written, `seq`, which is also time order: no second index to maintain),
nothing for tables without PITR.

The table as it was at T is then its current items, except every key changed after T, which
takes the before-image of its first change after T (absent when NULL). `export` merges both
streams in key order from one read transaction of a private connection (a consistent snapshot)
in a worker thread, writing the result as a backup file (backups.py) that a restore loads.

Space is bounded by the window: the `dynamodb.backups` scheduler rule deletes history older than
the longest recovery period (the history of a table whose PITR was turned off, or that was
deleted, ages out the same way; a table's restorable window never reaches back before PITR was
last turned on, so what is left of an earlier period is never used). The latest restorable time
lags the clock by five minutes, as in DynamoDB.

The restored table has the source table's current indexes, capacity and encryption, whatever the
instant chosen: DynamoDB documents these settings as coming "from the current settings of the
source table at the time of restore" (RestoreTableToPointInTime).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from strata.services.dynamodb.store import ItemStore
from strata.services.dynamodb.tables import TableMeta
from strata.sim.clock import clock

SCHEMA = """
CREATE TABLE IF NOT EXISTS ddb_history (
    seq INTEGER PRIMARY KEY,
    tid INTEGER NOT NULL,
    at REAL NOT NULL,
    pk BLOB NOT NULL,
    sk BLOB NOT NULL,
    before BLOB
);
"""

DAY = 86400.0
MAX_DAYS = 35
LAG_SECONDS = 300.0  # LatestRestorableDateTime is about five minutes before now
SKEW_SECONDS = 300.0  # how far the machine's clock may step back (NTP) without losing a change
_LOG = (
    "INSERT INTO ddb_history(tid, at, pk, sk, before) VALUES "
    "(?, ?, ?, ?, (SELECT item FROM ddb_items WHERE tid = ? AND pk = ? AND sk = ?))"
)


def log_change(store: ItemStore, tid: int, pk: bytes, sk: bytes) -> None:
    """Keep the item's current bytes as the before-image of the change about to be written."""
    store.w.execute(_LOG, (tid, clock.time(), pk, sk, tid, pk, sk))


def window(meta: TableMeta, now: float) -> tuple[float, float]:
    """(earliest, latest) restorable instants of a table with PITR on."""
    days = meta.pitr_days or MAX_DAYS
    earliest = max(meta.pitr_since, now - days * DAY)
    latest = max(earliest, now - LAG_SECONDS)
    return earliest, latest


def snapshot(source: Path | str) -> Any:
    """A private connection holding a read transaction: the database as it is now, for
    `export_from` (in WAL mode the first read fixes what the transaction sees; it costs one
    short read, so a request can take the snapshot and leave the export to a worker thread).

    `source` is the store's `snapshot_source`: the SQLite file, or the PostgreSQL URL (a
    REPEATABLE READ transaction, pg_snapshot.py)."""
    if isinstance(source, str):
        from strata.services.dynamodb.pg_snapshot import PgSnapshot

        return PgSnapshot(source)
    conn = sqlite3.connect(source, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("BEGIN")
    conn.execute("SELECT 1 FROM ddb_items LIMIT 1").fetchall()
    return conn


# The first change of each key (a history range's before-images): SQLite returns the bare
# columns of the min(seq) row; PostgreSQL says the same with DISTINCT ON (pg_snapshot.py).
FIRST_CHANGES = (
    "SELECT pk, sk, before, min(seq) FROM ddb_history WHERE {where} GROUP BY pk, sk ORDER BY pk, sk"
)
FIRST_CHANGES_PG = (
    "SELECT DISTINCT ON (pk, sk) pk, sk, before, seq FROM ddb_history WHERE {where} ORDER BY pk, sk, seq"
)


def first_changes(conn: Any, where: str) -> str:
    """FIRST_CHANGES for the snapshot `conn`'s backend."""
    return (FIRST_CHANGES_PG if getattr(conn, "postgres", False) else FIRST_CHANGES).format(where=where)


def export(db_path: Path | str, tid: int, at: float, write: Callable[[bytes, bytes, bytes], None]) -> None:
    """Call write(pk, sk, item bytes) for every item of the table as it was at `at`, in key order.

    Blocking: run it in a worker thread. One read transaction of its own connection makes the
    items and the history one consistent snapshot however long the export takes.
    """
    export_from(snapshot(db_path), tid, at, write)


def export_from(
    conn: sqlite3.Connection, tid: int, at: float, write: Callable[[bytes, bytes, bytes], None]
) -> None:
    """`export` from a `snapshot` connection, which it closes."""
    try:
        items = conn.execute("SELECT pk, sk, item FROM ddb_items WHERE tid = ? ORDER BY pk, sk", (tid,))
        # The first change after `at` of each key (SQLite returns the row of the min() for the
        # bare columns), in key order; only the history from about `at` on is read.
        changes = conn.execute(
            first_changes(conn, "seq >= ? AND tid = ? AND at > ?"),
            (first_seq_after(conn, at - SKEW_SECONDS), tid, at),
        )
        for pk, sk, blob in _merge(items, changes):
            write(pk, sk, blob)
        conn.execute("COMMIT")
    finally:
        conn.close()


def first_seq_after(conn: sqlite3.Connection, at: float) -> int:
    """The first history row written after `at`, by binary search over seq (time order)."""
    lo, hi = conn.execute("SELECT min(seq), max(seq) FROM ddb_history").fetchone()
    if lo is None or not math.isfinite(at):
        return (hi or 0) + 1
    hi += 1
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute(
            "SELECT seq, at FROM ddb_history WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,)
        ).fetchone()
        if row is None or row[1] > at:
            hi = mid
        else:
            lo = row[0] + 1
    return lo


def _merge(items: Iterator, changes: Iterator) -> Iterator[tuple[bytes, bytes, bytes]]:
    """Current items, with every key changed after the instant replaced by its before-image."""
    change = next(changes, None)
    for pk, sk, blob in items:
        while change is not None and (change[0], change[1]) < (pk, sk):
            if change[2] is not None:  # deleted (or replaced) since, it existed then
                yield change[0], change[1], change[2]
            change = next(changes, None)
        if change is not None and (change[0], change[1]) == (pk, sk):
            if change[2] is not None:
                yield pk, sk, change[2]
            change = next(changes, None)
        else:
            yield pk, sk, blob
    while change is not None:
        if change[2] is not None:
            yield change[0], change[1], change[2]
        change = next(changes, None)


def prune_chunk(store: ItemStore, before: float, n: int) -> int:
    """Delete up to n of the oldest history rows older than `before` (inside a write); how many.

    Rows are appended in time order, so the oldest are the first by seq: only the first n are
    looked at, and a history with nothing to prune costs one short read.
    """
    row = store.w.execute(
        "SELECT max(seq) FROM (SELECT seq, at FROM ddb_history ORDER BY seq LIMIT ?) AS h WHERE at < ?",
        (n, before),
    ).fetchone()
    if row is None or row[0] is None:
        return 0
    return store.w.execute("DELETE FROM ddb_history WHERE seq <= ? AND at < ?", (row[0], before)).rowcount
