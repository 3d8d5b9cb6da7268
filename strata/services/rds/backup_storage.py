"""RDS backup storage on the meter, as RDS bills it: the bytes of every available snapshot
(automated and manual) of a region, less a free allowance of 100% of the storage provisioned for
the region's instances, in byte-hours (`BackupStorage`, per account and region).

A snapshot's size is what its files take on disk (blocks really used), measured once when the
rule first sees it available and kept in its record (`bytes`); RDS bills incremental snapshot
bytes, and Strata's snapshots are full base backups, so a series of automated backups of a large
database costs more here than on AWS — but only beyond the free allowance, which small test
databases never reach. Manual snapshots of a deleted instance have no allowance left: the
case this makes visible on a bill.
"""

from __future__ import annotations

import os
from pathlib import Path

from strata.services.owned_docs import OwnedDocs
from strata.sim.meter import meter

GIB = 1024**3


def disk_bytes(path: Path) -> int:
    """Bytes a file or directory tree really occupies (sparse files count their blocks)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:  # removed while walked
                continue
    return total


def meter_backup_storage(store: OwnedDocs, since: float, until: float) -> int:
    """Meter (since, until] of chargeable backup storage per (account, region); how many scopes
    were charged. Runs unscoped (the scheduler's rule): it sees every account's records."""
    hours = (until - since) / 3600.0
    if hours <= 0:
        return 0
    stored: dict[tuple[str, str], int] = {}
    for snap in store.list_docs("snapshot"):
        if snap.get("status") != "available":
            continue
        if "bytes" not in snap:
            snap["bytes"] = disk_bytes(Path(snap["path"]))
            with store.acting_for(snap):
                store.put_doc("snapshot", snap["id"], snap)
        scope = (store.owner(snap), store.region_of(snap))
        stored[scope] = stored.get(scope, 0) + snap["bytes"]
    free: dict[tuple[str, str], int] = {}
    for doc in store.list_docs("instance"):
        scope = (store.owner(doc), store.region_of(doc))
        free[scope] = free.get(scope, 0) + int(doc.get("allocated_storage") or 0) * GIB
    charged = 0
    for (account, region), size in stored.items():
        over = size - free.get((account, region), 0)
        if over > 0:
            meter.record("rds", "BackupStorage", over * hours, "byte-hour", account=account, region=region)
            charged += 1
    return charged
