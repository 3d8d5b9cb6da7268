"""A DB instance's life after creation: RebootDBInstance (with failover), Stop/StartDBInstance,
and the recoveries that keep it serving.

A reboot restarts every engine node (and applies a parameter group's pending-reboot settings); one
with ForceFailover promotes the Multi-AZ standby and builds a new standby in the old primary's AZ.
The health check (core.py) calls `_recover_crash` / `_recover_standby` when an engine dies, and
a Strata restart calls `_resume` for each instance that was running. A DB cluster's members stop
and start with their cluster (cluster_stop.py), which reuses `_start` and `_resume`.
"""

from __future__ import annotations

import logging

from strata.context import RequestContext
from strata.services.rds import model as m
from strata.services.rds.instances import InstanceOperations
from strata.sim import timings
from strata.sim.clock import clock

log = logging.getLogger("strata.rds")


class InstanceLifecycleOperations(InstanceOperations):
    # -- reboot / failover -------------------------------------------------------------------------

    async def reboot_db_instance(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._get_instance(req.get("DBInstanceIdentifier"))
        if doc["status"] != "available":
            raise m.invalid_state(doc["id"], doc["status"])
        force = bool(req.get("ForceFailover"))
        if force and not doc["multi_az"]:
            raise m.fault(
                "InvalidParameterCombination",
                "Cannot perform a reboot with failover on a DB instance that is not Multi-AZ.",
            )
        doc = self._set_status(doc["id"], "rebooting")
        self._spawn(doc["id"], self._failover if force else self._reboot, doc["id"])
        return {"DBInstance": self._instance_out(doc)}

    def _reboot(self, ident: str) -> None:
        doc = self._get_instance(ident)
        self._event(ident, "db-instance", "DB instance restarted", ["availability"])
        for name in list(doc["nodes"]):
            self.fleet.node(doc, name).stop()
        self.fleet.start(doc, self._params_for(doc))
        doc["params_pending_reboot"] = False  # the engines now run with every setting of the groups
        self._save(doc, "nodes", "params_pending_reboot")
        self._set_status(ident, "available")

    def _failover(self, ident: str, planned: bool = True) -> None:
        doc = self._get_instance(ident)
        self._event(ident, "db-instance", "Multi-AZ instance failover started.", ["failover"])
        t0 = clock.monotonic()
        replicas = [self._get_instance(r) for r in doc.get("replicas", [])]
        hold = timings.seconds(self.settings, "rds_multi_az_failover")
        old_az = self.fleet.failover(doc, replicas, planned, hold)
        doc["az"], doc["secondary_az"] = doc["nodes"][doc["primary"]]["az"], old_az
        self._save(doc, "nodes", "primary", "az", "secondary_az")
        self._set_status(ident, "available", last_failover_seconds=round(clock.monotonic() - t0, 3))
        self._event(ident, "db-instance", "Multi-AZ instance failover completed.", ["failover"])
        # A new standby in the old primary's AZ, built while the instance serves.
        doc = self._get_instance(ident)
        self.fleet.add_standby(doc, old_az, self._params_for(doc))
        self._save(doc, "nodes", "next_node")

    def _recover_crash(self, ident: str) -> None:
        doc = self._get_instance(ident)
        if doc["status"] != "available" or self.fleet.primary(doc).running():
            return
        if doc["multi_az"] and self.fleet.standby_name(doc):
            self._set_status(ident, "rebooting")
            self._failover(ident, planned=False)
        else:
            self._event(
                ident, "db-instance", "DB instance restarted after an engine failure", ["availability"]
            )
            self.fleet.start(doc, self._params_for(doc))
            self._save(doc, "nodes")
            self._replace_failed_writer(doc)

    def _replace_failed_writer(self, doc: dict) -> None:
        """Aurora fails over to a reader when its writer fails, losing nothing: the cluster's storage
        outlives the instance. Here the restarted writer's own crash-recovered data plays that part:
        the reader catches up from it, then takes over (a planned failover)."""
        cluster = self.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
        if not cluster or cluster.get("writer") != doc["id"] or cluster["status"] != "available":
            return
        readers = self._by_promotion_tier(
            r
            for r in cluster["members"]
            if r != doc["id"] and (self.store.get_doc("instance", r) or {}).get("status") == "available"
        )
        if readers:
            cluster["status"] = "failing-over"
            self.store.put_doc("cluster", cluster["id"], cluster)
            try:
                self._failover_cluster(cluster["id"], readers[0])
            except Exception as e:  # noqa: BLE001 - the restarted writer keeps serving
                log.exception("failover of cluster %s after its writer failed", cluster["id"])
                self._fail(f"cluster:{cluster['id']}", str(e))

    def _recover_standby(self, ident: str) -> None:
        doc = self._get_instance(ident)
        name = self.fleet.standby_name(doc)
        if doc["status"] != "available" or name is None or self.fleet.node(doc, name).running():
            return
        self._event(
            ident, "db-instance", "Multi-AZ standby restarted after an engine failure", ["availability"]
        )
        self.fleet.restart_standby(doc, self._params_for(doc))
        self._save(doc, "nodes")

    # -- stop / start ------------------------------------------------------------------------------

    async def stop_db_instance(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._get_instance(req.get("DBInstanceIdentifier"))
        self._check_not_cluster_member(doc)
        if doc["status"] != "available":
            raise m.invalid_state(doc["id"], doc["status"])
        if doc.get("source") or doc.get("replicas"):
            raise m.fault(
                "InvalidDBInstanceState", "Cannot stop a DB instance that has read replicas or is one."
            )
        if req.get("DBSnapshotIdentifier"):
            self._create_snapshot_record(doc, req["DBSnapshotIdentifier"], [], "manual")
        doc = self._set_status(doc["id"], "stopping")
        self._spawn(doc["id"], self._stop, doc["id"], req.get("DBSnapshotIdentifier"))
        return {"DBInstance": self._instance_out(doc)}

    @staticmethod
    def _check_not_cluster_member(doc: dict) -> None:
        """A DB cluster's instances stop and start with their cluster (cluster_stop.py), as on AWS."""
        if doc.get("multi_az_cluster"):
            raise m.fault(
                "InvalidParameterCombination",
                f"DB instance {doc['id']} belongs to the Multi-AZ DB cluster {doc['cluster']}: "
                "stop or start the DB cluster.",
            )
        if doc.get("cluster"):
            raise m.fault(
                "InvalidParameterCombination",
                f"{doc['engine']} DB instances are not eligible for stopping and starting.",
            )

    def _stop(self, ident: str, snapshot: str | None) -> None:
        doc = self._get_instance(ident)
        if snapshot:
            self._fill_snapshot(snapshot)
        self.fleet.stop(doc)
        self._set_status(ident, "stopped", stopped_at=clock.time())
        self._event(ident, "db-instance", "DB instance stopped", ["notification"])

    async def start_db_instance(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._get_instance(req.get("DBInstanceIdentifier"))
        self._check_not_cluster_member(doc)
        if doc["status"] != "stopped":
            raise m.invalid_state(doc["id"], doc["status"])
        doc = self._set_status(doc["id"], "starting")
        self._spawn(doc["id"], self._start, doc["id"])
        return {"DBInstance": self._instance_out(doc)}

    def _start(self, ident: str) -> None:
        doc = self._get_instance(ident)
        self.fleet.start(doc, self._params_for(doc))
        doc["params_pending_reboot"] = False  # stopped engines start with every setting of the groups
        self._save(doc, "nodes", "params_pending_reboot")
        self._set_status(ident, "available", metered_at=clock.time())
        self._event(ident, "db-instance", "DB instance started", ["notification"])

    def _resume(self, ident: str) -> None:
        """After a Strata restart: start the engines of an instance that was running."""
        doc = self._get_instance(ident)
        if not doc.get("primary"):
            self._set_status(ident, "failed", failure="interrupted before its engine was created")
            return
        self.fleet.start(doc, self._params_for(doc))
        self._save(doc, "nodes")
        cluster = self.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
        if cluster and cluster.get("multi_az_cluster") and doc["kind"] == "mariadb":
            self._semi_sync_again(cluster, doc)
        if cluster:  # a reader counts as ready before "available", as when it was built
            self._route_cluster(cluster, ready={ident})
        if doc["status"] not in ("available",):
            self._set_status(ident, "available")
        if cluster:  # again: a member resuming meanwhile routed without this one, not yet available
            self._route_cluster(self.store.get_doc("cluster", doc["cluster"]))

    def _semi_sync_again(self, cluster: dict, doc: dict) -> None:
        """MariaDB's semi-synchronous replication is a runtime setting, gone with a restart: a
        Multi-AZ DB cluster's writer waits for a standby again, and each standby, following the
        writer anew, acknowledges again (PostgreSQL keeps its synchronous_standby_names)."""
        if cluster.get("writer") == doc["id"]:
            self.fleet.primary(doc).set_sync_standby(True)
            return
        writer = self.store.get_doc("instance", cluster.get("writer") or "")
        if writer is not None and writer.get("primary"):
            self.fleet.primary(doc).follow(self.fleet.primary(writer), doc["id"])
