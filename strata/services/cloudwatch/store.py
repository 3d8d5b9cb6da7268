"""Where metric data lives: one SQLite file of metrics, their datapoints, and alarms.

A metric is (namespace, name, dimensions); its data is kept as statistic sets per time bucket —
sum, sample count, minimum, maximum — plus the raw values (for percentiles) while a bucket holds
few enough of them. Buckets are 1 second wide for high-resolution data and 60 seconds for standard
data, and are rolled up as they age, as CloudWatch keeps them (its documented retention):

    < 60 s periods    3 hours      then kept as 1-minute buckets
    1 minute          15 days      then 5 minutes
    5 minutes         63 days      then 1 hour
    1 hour            455 days     then deleted
    1 day             455 days     then deleted (S3's daily storage metrics)

Writes come in batches (`add`): one transaction per PutMetricData call or per collection run, so
an acknowledged PutMetricData survives kill -9 and collected metrics cost one commit a minute.

Metrics and alarms are regional, as in CloudWatch: they belong to a scope, `<account>:<region>`
(`scope_of`); dashboards are global to the account. A store from before regions (an `account`
column) is moved to the default region when opened.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_VALUES = 500  # raw values kept per bucket for percentiles; beyond this, percentiles are omitted
# (age in seconds after which a bucket of this width is rolled up, the next width or 0 = delete)
ROLLUPS: tuple[tuple[int, int, int], ...] = (
    (1, 3 * 3600, 60),
    (60, 15 * 86400, 300),
    (300, 63 * 86400, 3600),
    (3600, 455 * 86400, 0),
    (86400, 455 * 86400, 0),  # daily metrics (S3 storage)
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    dims TEXT NOT NULL,
    last_at REAL NOT NULL,
    UNIQUE (scope, namespace, name, dims)
);
CREATE TABLE IF NOT EXISTS datapoints (
    metric INTEGER NOT NULL,
    width INTEGER NOT NULL,
    t INTEGER NOT NULL,
    unit TEXT NOT NULL,
    sum REAL NOT NULL,
    n REAL NOT NULL,
    lo REAL NOT NULL,
    hi REAL NOT NULL,
    vals TEXT,
    PRIMARY KEY (metric, t, width, unit)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS datapoints_width_t ON datapoints(width, t);
CREATE TABLE IF NOT EXISTS alarms (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE TABLE IF NOT EXISTS alarm_history (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_history_name ON alarm_history(scope, name, at);
CREATE TABLE IF NOT EXISTS dashboards (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    modified REAL NOT NULL,
    PRIMARY KEY (account, name)
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

Dims = tuple[tuple[str, str], ...]
_SCOPED = ("metrics", "alarms", "alarm_history")


def scope_of(account: str, region: str) -> str:
    """Where a metric or alarm lives: one account in one region."""
    return f"{account}:{region}"


def dims_key(dimensions: Iterable[dict] | None) -> str:
    """Dimensions in one canonical text (sorted by name): the same set is always the same metric."""
    pairs = sorted((d["Name"], d["Value"]) for d in dimensions or ())
    return json.dumps(pairs, separators=(",", ":"))


def dims_list(key: str) -> list[dict]:
    return [{"Name": n, "Value": v} for n, v in json.loads(key)]


@dataclass
class Bucket:
    """A statistic set over one time bucket (or a merge of several)."""

    sum: float
    n: float
    lo: float
    hi: float
    vals: list[float] | None  # None: more values than kept, or data sent as statistic sets

    def merge(self, other: Bucket) -> None:
        self.sum += other.sum
        self.n += other.n
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)
        if self.vals is None or other.vals is None or len(self.vals) + len(other.vals) > MAX_VALUES:
            self.vals = None
        else:
            self.vals = self.vals + other.vals


@dataclass(frozen=True)
class Point:
    """One datum to store: a metric, the instant, its unit and a statistic set."""

    scope: str
    namespace: str
    name: str
    dims: str  # dims_key(...)
    at: float
    unit: str
    bucket: Bucket
    width: int = 60  # 1 for high-resolution data


class MetricStore:
    """The SQLite file; every method is blocking (callers run long ones off the event loop)."""

    def __init__(self, path: Path, default_region: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._add_regions(default_region)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._alarm_lock = threading.Lock()  # one read-modify-write of alarms at a time
        self._ids: dict[tuple[str, str, str, str], int] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _add_regions(self, region: str) -> None:
        """A store from before regions keyed metrics and alarms by account: they move to `region`."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(metrics)")}
        if "account" not in columns:
            return
        self._db.execute("BEGIN IMMEDIATE")
        for table in _SCOPED:
            self._db.execute(f"ALTER TABLE {table} RENAME COLUMN account TO scope")
            self._db.execute(f"UPDATE {table} SET scope = scope || ':' || ?", (region,))
        self._db.execute("COMMIT")

    # -- writing ---------------------------------------------------------------------------------

    def add(self, points: list[Point]) -> None:
        """Store points in one transaction, merging each into its bucket's statistic set."""
        if not points:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for p in points:
                    self._add_one(p)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._ids.clear()  # ids of metrics created in the rolled-back transaction
                raise

    def _metric_id(self, scope: str, namespace: str, name: str, dims: str, at: float) -> int:
        key = (scope, namespace, name, dims)
        mid = self._ids.get(key)
        if mid is None:
            row = self._db.execute(
                "SELECT id FROM metrics WHERE scope=? AND namespace=? AND name=? AND dims=?", key
            ).fetchone()
            if row is None:
                mid = self._db.execute(
                    "INSERT INTO metrics(scope, namespace, name, dims, last_at) VALUES (?,?,?,?,?)",
                    (*key, at),
                ).lastrowid
            else:
                mid = row[0]
            assert mid is not None
            self._ids[key] = mid
        self._db.execute("UPDATE metrics SET last_at=max(last_at, ?) WHERE id=?", (at, mid))
        return mid

    def _add_one(self, p: Point) -> None:
        mid = self._metric_id(p.scope, p.namespace, p.name, p.dims, p.at)
        t = int(p.at // p.width * p.width)
        self._merge_row(mid, p.width, t, p.unit, p.bucket)

    def _merge_row(self, mid: int, width: int, t: int, unit: str, b: Bucket) -> None:
        row = self._db.execute(
            "SELECT sum, n, lo, hi, vals FROM datapoints WHERE metric=? AND t=? AND width=? AND unit=?",
            (mid, t, width, unit),
        ).fetchone()
        if row is not None:
            have = Bucket(row[0], row[1], row[2], row[3], json.loads(row[4]) if row[4] else None)
            have.merge(b)
            b = have
        vals = json.dumps(b.vals) if b.vals is not None else None
        self._db.execute(
            "INSERT OR REPLACE INTO datapoints(metric, width, t, unit, sum, n, lo, hi, vals) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (mid, width, t, unit, b.sum, b.n, b.lo, b.hi, vals),
        )

    # -- reading ---------------------------------------------------------------------------------

    def metric(self, scope: str, namespace: str, name: str, dims: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM metrics WHERE scope=? AND namespace=? AND name=? AND dims=?",
                (scope, namespace, name, dims),
            ).fetchone()
        return row[0] if row else None

    def buckets(self, mid: int, start: float, end: float) -> Iterator[tuple[int, int, str, Bucket]]:
        """(t, width, unit, bucket) of a metric with start <= t < end, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT t, width, unit, sum, n, lo, hi, vals FROM datapoints "
                "WHERE metric=? AND t>=? AND t<? ORDER BY t",
                (mid, int(start), end),
            ).fetchall()
        for t, width, unit, s, n, lo, hi, vals in rows:
            yield t, width, unit, Bucket(s, n, lo, hi, json.loads(vals) if vals else None)

    def list_metrics(
        self, scope: str, namespace: str | None, name: str | None, since: float
    ) -> list[tuple[str, str, str]]:
        sql = "SELECT namespace, name, dims FROM metrics WHERE scope=? AND last_at >= ?"
        args: list = [scope, since]
        if namespace is not None:
            sql += " AND namespace=?"
            args.append(namespace)
        if name is not None:
            sql += " AND name=?"
            args.append(name)
        with self._lock:
            return self._db.execute(sql + " ORDER BY namespace, name, dims", args).fetchall()

    # -- ageing ----------------------------------------------------------------------------------

    def roll_up(self, now: float) -> int:
        """Merge buckets past their resolution's retention into wider ones; how many were merged."""
        merged = 0
        with self._lock:
            for width, keep, wider in ROLLUPS:
                cutoff = int(now - keep)
                rows = self._db.execute(
                    "SELECT metric, t, unit, sum, n, lo, hi, vals FROM datapoints WHERE width=? AND t<?",
                    (width, cutoff),
                ).fetchall()
                if not rows:
                    continue
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute("DELETE FROM datapoints WHERE width=? AND t<?", (width, cutoff))
                    if wider:
                        for mid, t, unit, s, n, lo, hi, vals in rows:
                            b = Bucket(s, n, lo, hi, json.loads(vals) if vals else None)
                            self._merge_row(mid, wider, t // wider * wider, unit, b)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                merged += len(rows)
        return merged

    # -- alarms and small state ------------------------------------------------------------------

    def alarms(self, scope: str) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT doc FROM alarms WHERE scope=? ORDER BY name", (scope,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def all_alarms(self) -> list[tuple[str, dict]]:
        with self._lock:
            rows = self._db.execute("SELECT scope, doc FROM alarms ORDER BY scope, name").fetchall()
        return [(a, json.loads(d)) for a, d in rows]

    def put_alarm(self, scope: str, doc: dict, history: list[tuple] = ()) -> None:  # type: ignore[assignment]
        """Store an alarm and the history items of its change, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO alarms(scope, name, doc) VALUES (?,?,?)",
                (scope, doc["AlarmName"], json.dumps(doc)),
            )
            for at, kind, summary, data in history:
                self._db.execute(
                    "INSERT INTO alarm_history(scope, name, at, kind, summary, data) VALUES (?,?,?,?,?,?)",
                    (scope, doc["AlarmName"], at, kind, summary, data),
                )
            self._db.execute("COMMIT")

    def update_alarm(self, scope: str, name: str, change: Callable[[dict | None], tuple[dict, list]]) -> None:
        """Read an alarm (None if there is none), let `change` give its new doc and history items,
        and store them; alarm updates (requests, evaluation) never overwrite each other."""
        with self._alarm_lock:
            with self._lock:
                row = self._db.execute(
                    "SELECT doc FROM alarms WHERE scope=? AND name=?", (scope, name)
                ).fetchone()
            doc, items = change(json.loads(row[0]) if row else None)
            self.put_alarm(scope, doc, items)

    def delete_alarms(self, scope: str, names: list[str]) -> None:
        with self._alarm_lock, self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM alarms WHERE scope=? AND name=?", [(scope, n) for n in names])
            self._db.execute("COMMIT")

    def history(self, scope: str, name: str | None, start: float, end: float) -> list[tuple]:
        sql = "SELECT name, at, kind, summary, data FROM alarm_history WHERE scope=? AND at>=? AND at<?"
        args: list = [scope, start, end]
        if name is not None:
            sql += " AND name=?"
            args.append(name)
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def put_dashboard(self, account: str, name: str, body: str, at: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO dashboards(account, name, body, modified) VALUES (?,?,?,?)",
                (account, name, body, at),
            )

    def dashboards(self, account: str) -> list[tuple[str, str, float]]:
        """(name, body, modified) of every dashboard of the account, by name."""
        with self._lock:
            return self._db.execute(
                "SELECT name, body, modified FROM dashboards WHERE account=? ORDER BY name", (account,)
            ).fetchall()

    def delete_dashboards(self, account: str, names: list[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "DELETE FROM dashboards WHERE account=? AND name=?", [(account, n) for n in names]
            )
            self._db.execute("COMMIT")

    def get_state(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO state(key, value) VALUES (?,?)", (key, value))
