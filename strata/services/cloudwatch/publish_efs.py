"""AWS/EFS metrics per FileSystemId:

- StorageBytes per StorageClass (Total, Standard, IA, Archive): the file system's last measured
  size (its SizeInBytes);
- ClientConnections: the NFS clients connected now, counted on the real servers behind the file
  system's mount targets (established TCP connections to each mount target's ganesha processes,
  ports 2049 and 2050);
- BurstCreditBalance (Bursting) and PermittedThroughput (Bursting, Provisioned), as the
  throughput limits hold them (strata.services.efs.throughput).
"""

from __future__ import annotations

import logging
from typing import Any

import psutil

from strata.services.cloudwatch.store import Bucket, Point, dims_key, scope_of
from strata.services.efs.throughput_ops import throughput_now
from strata.services.efs.usage import stored_size

log = logging.getLogger("strata.cloudwatch")
MIB = 1024 * 1024


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
