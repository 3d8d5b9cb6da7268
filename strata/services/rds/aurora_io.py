"""Aurora I/O on the meter (Aurora Standard bills $0.20 per million I/O requests), measured on
each member's real engine by the `rds.backups` rule: the storage reads the member's engine counted
(rds.io_counters) and, on the writer, its writes, since the rule last looked (`io_mark` in the
instance's record: the engine's pid and its counters then). An engine that restarted counts from
zero again. Event `AuroraIORequests` (unit request) per instance and cluster.

Aurora counts a read I/O per 8 KB page read from the cluster volume and a write I/O per 4 KB of
log; PostgreSQL's counters here are 8 KB pages read and written plus WAL writes, which is close
for reads and undercounts large log writes.
"""

from __future__ import annotations

import logging
from typing import Any

from strata.services.rds.io_counters import io_counters
from strata.sim.meter import meter

log = logging.getLogger("strata.rds")


def meter_aurora_io(provider: Any, since: float, until: float) -> int:
    """Meter the I/O of every available Aurora member since its mark; how many were metered
    (blocking; runs unscoped, as the scheduler's rule)."""
    metered = 0
    for doc in provider.store.list_docs("instance"):
        if not doc.get("cluster") or doc.get("status") != "available":
            continue
        with provider.store.acting_for(doc):
            if provider._is_busy(doc["id"]):  # its work may rewrite the record: next run
                continue
            cluster = provider.store.get_doc("cluster", doc["cluster"])
            if cluster is None:
                continue
            try:
                node = provider.fleet.primary(doc)
                pid = node.proc.pid
                reads, writes = io_counters(node, doc["kind"] == "postgres")
            except Exception as e:  # noqa: BLE001 - an engine restarting is measured next run
                log.debug("no I/O counters of %s: %s", doc["id"], e)
                continue
            mark = doc.get("io_mark")
            if mark and mark[0] == pid and reads >= mark[1] and writes >= mark[2]:
                read_ios, write_ios = reads - mark[1], writes - mark[2]
            else:  # first look, or a restarted engine: everything it counted so far
                read_ios, write_ios = reads, writes
            ios = read_ios + (write_ios if cluster.get("writer") == doc["id"] else 0)
            if ios > 0:
                meter.record(
                    "rds", "AuroraIORequests", ios, "request", instance=doc["id"], cluster=doc["cluster"]
                )
                metered += 1
            doc["io_mark"] = [pid, reads, writes]
            provider._save(doc, "io_mark")
    return metered
