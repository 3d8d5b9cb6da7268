"""AWS/RDS metrics per DBInstanceIdentifier, measured on each instance's real engine:

- DatabaseConnections: client sessions (pg_stat_activity / Threads_connected), without the
  publisher's own;
- FreeStorageSpace: AllocatedStorage minus the size of the databases, in bytes;
- CPUUtilization: CPU time the engine's processes used since the last sample, as a percentage of
  the machine's CPUs over the real time between the samples (none at the first sample);
- ReplicaLag (read replicas): seconds between the source's last commit and the replica's replay
  (0 when it has replayed all it received), Seconds_Behind_Master on MariaDB.
"""

from __future__ import annotations

import logging
from typing import Any

import psutil

from strata.services.cloudwatch.store import Bucket, Point, dims_key
from strata.sim.clock import clock

log = logging.getLogger("strata.cloudwatch")
GIB = 1024**3

_PG_CONNECTIONS = (
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
)
_PG_SIZE = "SELECT COALESCE(sum(pg_database_size(datname)), 0) FROM pg_database"
_PG_LAG = (
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL "
    "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)
_MARIA_SIZE = "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables"


class RdsSampler:
    """Samples every available instance; keeps the last CPU reading of each engine process."""

    def __init__(self) -> None:
        self._cpu: dict[tuple[str, int], tuple[float, float]] = {}  # (instance, pid) -> (cpu s, real s)

    def points(self, provider: Any, account_default: str, at: float) -> list[Point]:
        out: list[Point] = []
        for doc in provider.store.list_docs("instance"):
            if doc.get("status") != "available":
                continue
            account = provider.store.owner(doc) or account_default
            try:
                with provider.store.acting_for(doc):
                    node = provider.fleet.primary(doc)
                    values = self._sample(doc, node)
            except Exception as e:  # noqa: BLE001 - an engine restarting has no sample this minute
                log.debug("no metrics from %s: %s", doc.get("id"), e)
                continue
            dims = dims_key([{"Name": "DBInstanceIdentifier", "Value": doc["id"]}])
            for name, (value, unit) in values.items():
                out.append(
                    Point(account, "AWS/RDS", name, dims, at, unit, Bucket(value, 1.0, value, value, [value]))
                )
        return out

    def _sample(self, doc: dict, node: Any) -> dict[str, tuple[float, str]]:
        postgres = doc["kind"] == "postgres"
        if postgres:
            connections = float(node.sql(_PG_CONNECTIONS)[0][0])
            used = float(node.sql(_PG_SIZE)[0][0])
        else:
            rows = node.sql("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
            connections = max(0.0, float(rows[0][1]) - 1) if rows else 0.0
            used = float(node.sql(_MARIA_SIZE)[0][0])
        values = {
            "DatabaseConnections": (connections, "Count"),
            "FreeStorageSpace": (max(0.0, doc["allocated_storage"] * GIB - used), "Bytes"),
        }
        cpu = self._cpu_percent(doc["id"], node)
        if cpu is not None:
            values["CPUUtilization"] = (cpu, "Percent")
        if doc.get("source"):
            lag = _replica_lag(node, postgres)
            if lag is not None:
                values["ReplicaLag"] = (lag, "Seconds")
        return values

    def _cpu_percent(self, ident: str, node: Any) -> float | None:
        pid = node.proc.pid
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
            spent = sum(sum(p.cpu_times()[:2]) for p in [proc, *proc.children(recursive=True)])
        except psutil.Error:
            return None
        now = clock.monotonic()
        last = self._cpu.get((ident, pid))
        self._cpu[(ident, pid)] = (spent, now)
        if last is None or now <= last[1]:
            return None
        share = (spent - last[0]) / (now - last[1]) / (psutil.cpu_count() or 1)
        return min(100.0, max(0.0, 100.0 * share))


def _replica_lag(node: Any, postgres: bool) -> float | None:
    if postgres:
        value = node.sql(_PG_LAG)[0][0]
        return float(value) if value is not None else None
    conn = node.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SLAVE STATUS")
            names = [d[0] for d in cur.description]
            row = cur.fetchone()
    finally:
        conn.close()
    behind = dict(zip(names, row, strict=False)).get("Seconds_Behind_Master") if row else None
    return float(behind) if behind is not None else None
