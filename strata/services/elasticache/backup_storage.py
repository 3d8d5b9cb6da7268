"""ElastiCache backup storage on the meter: byte-hours of the snapshots an account keeps in a
region beyond the one snapshot per running cluster that ElastiCache stores free
(`BackupStorage`, per account and region), metered by the `elasticache.snapshots` rule.

A snapshot's size is the sum of its nodes' CacheSize (the RDB files, in whole MB as ElastiCache
reports them). The free one of a cluster (or replication group) still running is its newest
snapshot; every snapshot of a deleted one is charged, as are the rest.
"""

from __future__ import annotations

from strata.services.owned_docs import OwnedDocs
from strata.sim.meter import meter

MB = 1024 * 1024


def snapshot_bytes(doc: dict) -> int:
    return sum(int(str(n.get("CacheSize", "0")).split()[0]) * MB for n in doc.get("NodeSnapshots", ()))


def meter_backup_storage(store: OwnedDocs, since: float, until: float) -> int:
    """Meter (since, until] of chargeable snapshot storage; how many (account, region) were charged.
    Runs unscoped (the scheduler's rule): it sees every account's records."""
    hours = (until - since) / 3600.0
    if hours <= 0:
        return 0
    running = {
        (store.owner(d), store.region_of(d), d["id"])
        for kind in ("cluster", "group")
        for d in store.list_docs(kind)
        if d.get("status") == "available"
    }
    newest: dict[tuple[str, str, str], dict] = {}  # a running source -> its newest snapshot
    charged: dict[tuple[str, str], int] = {}
    for snap in store.list_docs("snapshot"):
        if snap.get("SnapshotStatus") != "available":
            continue
        scope = (store.owner(snap), store.region_of(snap))
        charged[scope] = charged.get(scope, 0) + snapshot_bytes(snap)
        source = (*scope, snap.get("ReplicationGroupId") or snap.get("CacheClusterId") or "")
        if source in running and str(snap.get("_created")) > str(newest.get(source, {}).get("_created", "")):
            newest[source] = snap
    for (account, region, _source), snap in newest.items():
        charged[account, region] -= snapshot_bytes(snap)
    for snap in store.list_docs("serverless_snapshot"):  # serverless caches keep none free
        if snap.get("status") == "available":
            scope = (store.owner(snap), store.region_of(snap))
            charged[scope] = charged.get(scope, 0) + int(snap.get("bytes") or 0)
    metered = 0
    for (account, region), size in charged.items():
        if size > 0:
            meter.record(
                "elasticache", "BackupStorage", size * hours, "byte-hour", account=account, region=region
            )
            metered += 1
    return metered
