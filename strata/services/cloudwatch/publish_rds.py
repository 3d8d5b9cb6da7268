"""AWS/RDS metrics per DBInstanceIdentifier, measured on each instance's real engine:

- DatabaseConnections: client sessions (pg_stat_activity / Threads_connected), without the
  publisher's own;
- FreeStorageSpace: AllocatedStorage minus the size of the databases, in bytes (or the space left
  on an encrypted instance's own volume, when less: none while FIS's strata:rds:disk-full holds it);
- CPUUtilization: CPU time the engine's processes used since the last sample, as a percentage of
  the machine's CPUs over the real time between the samples (none at the first sample);
- ReadThroughput / WriteThroughput: bytes the engine's processes read from / wrote to storage
  (the kernel's per-process I/O accounting) per real second between the samples;
- ReadIOPS / WriteIOPS: storage reads and writes the engine itself counted (rds.io_counters),
  per real second between the samples;
- ReplicaLag (read replicas): seconds between the source's last commit and the replica's replay
  (0 when it has replayed all it received), Seconds_Behind_Master on MariaDB; AuroraReplicaLag
  (milliseconds) on an Aurora cluster's readers.

Aurora clusters are published per DBClusterIdentifier too, and per (DBClusterIdentifier, Role =
WRITER / READER): each member's figures above go into its cluster's statistic sets (so Average,
Maximum ... are over the members, as CloudWatch aggregates them), plus VolumeBytesUsed (the
writer's databases), VolumeReadIOPs / VolumeWriteIOPs (the members' reads and the writer's writes
in the minute, as Aurora counts billed I/O), ServerlessDatabaseCapacity (ACUs the db.serverless
members hold now, as billed: rds/serverless.py; 0 while paused) and ACUUtilization (that capacity
as a percentage of the cluster's MaxCapacity); per instance too.
"""

from __future__ import annotations

import logging
from typing import Any

import psutil

from strata.services.cloudwatch.store import Bucket, Point, dims_key, scope_of
from strata.services.rds.io_counters import io_counters
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
# figures of a member that its cluster's statistic sets take in (by role and for the cluster)
_CLUSTER_FIGURES = frozenset(
    {
        "CPUUtilization",
        "DatabaseConnections",
        "FreeStorageSpace",
        "ReadIOPS",
        "WriteIOPS",
        "ReadThroughput",
        "WriteThroughput",
        "AuroraReplicaLag",
        "ServerlessDatabaseCapacity",
        "ACUUtilization",
    }
)


class RdsSampler:
    """Samples every available instance; keeps the last CPU reading of each engine process."""

    def __init__(self) -> None:
        # (instance, pid) -> (real s, cpu s, bytes read, bytes written) at the last sample
        self._last: dict[tuple[str, int], tuple[float, float, float, float]] = {}
        # (instance, pid) -> (real s, read operations, write operations) at the last sample
        self._io: dict[tuple[str, int], tuple[float, float, float]] = {}

    def points(self, provider: Any, at: float) -> list[Point]:
        out: list[Point] = []
        clusters: dict[tuple[str, str], dict] = {}  # (scope, cluster id) -> the cluster's record
        for doc in provider.store.list_docs("instance"):
            if doc.get("status") != "available":
                continue
            scope = scope_of(provider.store.owner(doc), provider.store.region_of(doc))
            try:
                with provider.store.acting_for(doc):
                    cluster = (
                        provider.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
                    )
                    if doc.get("paused"):  # a paused Serverless v2 engine is stopped: its 0 ACUs only
                        values: dict[str, tuple[float, str]] = {}
                    else:
                        values = self._sample(doc, provider.fleet.primary(doc), cluster)
                    if cluster is not None and doc["class"] == "db.serverless":
                        values.update(_capacity(provider._serverless_capacity(doc), cluster))
                    if "FreeStorageSpace" in values and doc.get("dek"):
                        # an encrypted instance's own volume can really be full (strata:rds:disk-full)
                        left = provider.fleet.volumes.free_bytes(provider.fleet.volume_id(doc["id"]))
                        if left is not None and left < values["FreeStorageSpace"][0]:
                            values["FreeStorageSpace"] = (float(left), "Bytes")
            except Exception as e:  # noqa: BLE001 - an engine restarting has no sample this minute
                log.debug("no metrics from %s: %s", doc.get("id"), e)
                continue
            dims = dims_key([{"Name": "DBInstanceIdentifier", "Value": doc["id"]}])
            out += [
                _point(scope, name, dims, at, value, unit)
                for name, (value, unit) in values.items()
                if not name.startswith("_")
            ]
            if cluster is not None:
                clusters[scope, cluster["id"]] = cluster
                role = "WRITER" if cluster.get("writer") == doc["id"] else "READER"
                out += self._cluster_points(scope, cluster["id"], role, values, at)
        return out

    def _cluster_points(
        self, scope: str, cluster: str, role: str, values: dict[str, tuple[float, str]], at: float
    ) -> list[Point]:
        by_cluster = dims_key([{"Name": "DBClusterIdentifier", "Value": cluster}])
        by_role = dims_key(
            [{"Name": "DBClusterIdentifier", "Value": cluster}, {"Name": "Role", "Value": role}]
        )
        out = []
        for name, (value, unit) in values.items():
            if name in _CLUSTER_FIGURES:
                out.append(_point(scope, name, by_cluster, at, value, unit))
                out.append(_point(scope, name, by_role, at, value, unit))
        if "_read_ops" in values:  # the I/O operations of the minute, as Aurora bills them
            out.append(_point(scope, "VolumeReadIOPs", by_cluster, at, values["_read_ops"][0], "Count"))
            if role == "WRITER":  # a reader's replay writes its own copy here; on Aurora nothing
                out.append(_point(scope, "VolumeWriteIOPs", by_cluster, at, values["_write_ops"][0], "Count"))
        if role == "WRITER" and "_used" in values:
            out.append(_point(scope, "VolumeBytesUsed", by_cluster, at, values["_used"][0], "Bytes"))
        return out

    def _sample(self, doc: dict, node: Any, cluster: dict | None) -> dict[str, tuple[float, str]]:
        """The instance's figures by metric name (names starting with `_` feed its cluster's only)."""
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
        values.update(self._process_rates(doc["id"], node))
        values.update(self._io_rates(doc["id"], node, postgres))
        if cluster is not None:
            values["_used"] = (used, "Bytes")
            if cluster.get("writer") != doc["id"]:
                lag = _replica_lag(node, postgres)
                if lag is not None:
                    values["AuroraReplicaLag"] = (lag * 1000.0, "Milliseconds")
        elif doc.get("source"):
            lag = _replica_lag(node, postgres)
            if lag is not None:
                values["ReplicaLag"] = (lag, "Seconds")
        return values

    def _io_rates(self, ident: str, node: Any, postgres: bool) -> dict[str, tuple[float, str]]:
        """ReadIOPS / WriteIOPS from the engine's own counters since the last sample (none at the
        first, nor after an engine restart: its counters start again)."""
        pid = node.proc.pid
        if pid is None:
            return {}
        reads, writes = io_counters(node, postgres)
        now = clock.monotonic()
        last = self._io.get((ident, pid))
        self._io[(ident, pid)] = (now, reads, writes)
        if last is None or now <= last[0] or reads < last[1] or writes < last[2]:
            return {}
        seconds = now - last[0]
        read_ops, write_ops = reads - last[1], writes - last[2]
        return {
            "ReadIOPS": (read_ops / seconds, "Count/Second"),
            "WriteIOPS": (write_ops / seconds, "Count/Second"),
            "_read_ops": (read_ops, "Count"),
            "_write_ops": (write_ops, "Count"),
        }

    def _process_rates(self, ident: str, node: Any) -> dict[str, tuple[float, str]]:
        """CPU and storage I/O of the engine's process tree since the last sample (none at the first)."""
        pid = node.proc.pid
        if pid is None:
            return {}
        try:
            proc = psutil.Process(pid)
            tree = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return {}
        cpu = read = written = 0.0
        for p in tree:
            try:  # a backend may exit while it is read (the sampling connection's own, for one)
                times, io = p.cpu_times(), p.io_counters()
            except psutil.Error:
                continue
            # a process's own time and its exited children's (backends end with their sessions)
            cpu += times.user + times.system + times.children_user + times.children_system
            read += io.read_bytes
            written += io.write_bytes
        now = clock.monotonic()
        last = self._last.get((ident, pid))
        self._last[(ident, pid)] = (now, cpu, read, written)
        if last is None or now <= last[0]:
            return {}
        seconds = now - last[0]
        share = (cpu - last[1]) / seconds / (psutil.cpu_count() or 1)
        return {
            "CPUUtilization": (min(100.0, max(0.0, 100.0 * share)), "Percent"),
            "ReadThroughput": (max(0.0, read - last[2]) / seconds, "Bytes/Second"),
            "WriteThroughput": (max(0.0, written - last[3]) / seconds, "Bytes/Second"),
        }


def _capacity(acus: float, cluster: dict) -> dict[str, tuple[float, str]]:
    """ServerlessDatabaseCapacity, and ACUUtilization: that capacity as a share of the cluster's
    MaxCapacity (AWS's definition)."""
    values = {"ServerlessDatabaseCapacity": (acus, "Count")}
    top = float((cluster.get("serverless_v2") or {}).get("MaxCapacity") or 0)
    if top > 0:
        values["ACUUtilization"] = (100.0 * acus / top, "Percent")
    return values


def _point(scope: str, name: str, dims: str, at: float, value: float, unit: str) -> Point:
    return Point(scope, "AWS/RDS", name, dims, at, unit, Bucket(value, 1.0, value, value, [value]))


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
