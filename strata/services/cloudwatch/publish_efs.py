"""AWS/EFS metrics per FileSystemId:

- StorageBytes per StorageClass (Total, Standard, IA, Archive): the file system's last measured
  size (its SizeInBytes);
- ClientConnections: the NFS clients connected now, counted on the real servers behind the file
  system's mount targets (established TCP connections to each mount target's ganesha processes,
  ports 2049 and 2050);
- BurstCreditBalance (Bursting) and PermittedThroughput, as the throughput limits hold them
  (strata.services.efs.throughput);
- DataReadIOBytes, DataWriteIOBytes, MetadataIOBytes, TotalIOBytes, MeteredIOBytes: what the
  file system's NFS servers served in the minute, from ganesha's own counters
  (strata.engines.ganesha_stats), published for minutes with operations. Each is one statistic
  set: Sum the bytes, SampleCount the operations. ganesha counts operations and bytes, not the
  size of each operation, so Minimum and Maximum are the minute's mean size (of each kind; for
  TotalIOBytes and MeteredIOBytes the smallest and largest of the kinds' means). A metadata
  operation (GETATTR, LOOKUP, OPEN, CREATE, REMOVE, ... not the session plumbing: SEQUENCE,
  PUTFH) counts `METADATA_BYTES`, the unit EFS meters metadata in (2 KiB an inode, 4 KiB of
  data: Strata's reading of AWS's metering, which states no per-operation size). MeteredIOBytes
  meters reads at a third, as AWS does.
- PercentIOLimit (General Purpose file systems only, as AWS submits it): the minute's operations
  per second against the file system's IOPS limits (strata.services.efs.throughput.iops_limits),
  reads and writes each against their own, as a percent (at most 100).

Counters are differenced per ganesha process: a minute's I/O served by a process that stopped
before the sample (a deleted mount target, a Strata stop) is not published.
"""

from __future__ import annotations

import logging
from typing import Any

import psutil

from strata.engines.ganesha_stats import Counters
from strata.services.cloudwatch.store import Bucket, Point, dims_key, scope_of
from strata.services.efs.throughput import iops_limits
from strata.services.efs.throughput_ops import throughput_now
from strata.services.efs.usage import stored_size

log = logging.getLogger("strata.cloudwatch")
MIB = 1024 * 1024
METADATA_BYTES = 4096
READ_METERED = 1 / 3  # reads are metered at a third


class EfsSampler:
    """The AWS/EFS points of every file system, I/O counters differenced between samples."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int | None, Counters]] = {}  # server name -> (pid, counters)

    def points(self, provider: Any, default_account: str, default_region: str, at: float) -> list[Point]:
        out = points(provider, default_account, default_region, at)
        served: dict[str, Counters] = {}
        seen = set()
        for mt_id, servers in provider.exports.served().items():
            mt = provider.store.get_doc("mt", mt_id)
            for name, pid, now in servers:
                seen.add(name)
                last_pid, last = self._last.get(name, (None, Counters()))
                self._last[name] = (pid, now)
                if mt is None:
                    continue
                delta = now.since(last if last_pid == pid else Counters())
                served[mt["fs"]] = served.get(mt["fs"], Counters()).plus(delta)
        for name in set(self._last) - seen:
            del self._last[name]
        for doc in provider.store.list_docs("fs"):
            scope = scope_of(doc.get("account") or default_account, doc.get("region") or default_region)
            out += io_points(scope, doc, at, served.get(doc["id"], Counters()))
        return out


def io_points(scope: str, fs: dict, at: float, c: Counters) -> list[Point]:
    """The I/O metrics of one file system for one minute's counters."""
    dims = dims_key([{"Name": "FileSystemId", "Value": fs["id"]}])
    metadata = c.metadata_reads + c.metadata_writes
    kinds = [  # (operations, actual bytes, metered bytes)
        (c.read_ops, c.read_bytes, c.read_bytes * READ_METERED),
        (c.write_ops, c.write_bytes, c.write_bytes),
        (metadata, metadata * METADATA_BYTES, metadata * METADATA_BYTES),
    ]
    out = []
    for name, (ops, size, _) in zip(
        ("DataReadIOBytes", "DataWriteIOBytes", "MetadataIOBytes"), kinds, strict=True
    ):
        if ops:
            out.append(Point(scope, "AWS/EFS", name, dims, at, "Bytes", _sized([(ops, size)])))
    if any(k[0] for k in kinds):
        total = _sized([(ops, size) for ops, size, _ in kinds])
        metered = _sized([(ops, m) for ops, _, m in kinds])
        out.append(Point(scope, "AWS/EFS", "TotalIOBytes", dims, at, "Bytes", total))
        out.append(Point(scope, "AWS/EFS", "MeteredIOBytes", dims, at, "Bytes", metered))
    if fs.get("performance", "generalPurpose") == "generalPurpose":
        read_limit, write_limit = iops_limits(fs)
        reads = c.read_ops + c.metadata_reads
        writes = c.write_ops + c.metadata_writes
        percent = min(100.0, 100.0 * (reads / 60 / read_limit + writes / 60 / write_limit))
        out.append(_point(scope, "PercentIOLimit", {"FileSystemId": fs["id"]}, at, percent, "Percent"))
    return out


def _sized(kinds: list[tuple[int, float]]) -> Bucket:
    """One statistic set over operations of several kinds: (operations, bytes) each."""
    ops = sum(n for n, _ in kinds)
    means = [size / n for n, size in kinds if n]
    return Bucket(float(sum(size for _, size in kinds)), float(ops), min(means), max(means), None)


def _point(scope: str, name: str, dims: dict, at: float, value: float, unit: str) -> Point:
    key = dims_key({"Name": k, "Value": v} for k, v in dims.items())
    return Point(scope, "AWS/EFS", name, key, at, unit, Bucket(value, 1.0, value, value, [value]))


def points(provider: Any, default_account: str, default_region: str, at: float) -> list[Point]:
    """The AWS/EFS points of every file system now (blocking: reads the servers' sockets)."""
    connections: dict[str, int] = {}
    for mt in provider.store.list_docs("mt"):
        for server in provider.exports.servers.get(mt["id"], ()):
            connections[mt["fs"]] = connections.get(mt["fs"], 0) + _clients(server.process.pid)
    out = []
    throughput = throughput_now(provider)
    for doc in provider.store.list_docs("fs"):
        scope = scope_of(doc.get("account") or default_account, doc.get("region") or default_region)
        fs = {"FileSystemId": doc["id"]}
        size = stored_size(provider.store, doc["id"])
        if size:
            classes = {
                "Total": size["Value"],
                "Standard": size["ValueInStandard"],
                "IA": size["ValueInIA"],
                "Archive": size["ValueInArchive"],
            }
            for storage_class, value in classes.items():
                out.append(
                    _point(
                        scope,
                        "StorageBytes",
                        {**fs, "StorageClass": storage_class},
                        at,
                        float(value),
                        "Bytes",
                    )
                )
        out.append(_point(scope, "ClientConnections", fs, at, float(connections.get(doc["id"], 0)), "Count"))
        credits, rate = throughput.get(doc["id"], (None, None))
        if rate is None and doc.get("throughput") == "provisioned" and doc.get("provisioned"):
            rate = float(doc["provisioned"]) * MIB  # (limits not enforced here: what was provisioned)
        if credits is not None:
            out.append(_point(scope, "BurstCreditBalance", fs, at, float(credits), "Bytes"))
        if rate is not None:
            out.append(_point(scope, "PermittedThroughput", fs, at, float(rate), "Bytes/Second"))
    return out


def _clients(pid: int | None) -> int:
    """Established TCP connections an NFS server process holds (its clients)."""
    if pid is None:
        return 0
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error as e:  # exited, or not ours to inspect
        log.debug("no connections of %s: %s", pid, e)
        return 0
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.raddr)
