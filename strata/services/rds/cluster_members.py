"""Aurora DB cluster members: instances joining a cluster, and FailoverDBCluster.

An instance created with DBClusterIdentifier becomes the cluster's writer when it has none (initdb,
or the cluster's restore source) and otherwise a reader streaming from the writer. A failover
promotes a reader only once it has everything the writer committed (`_hand_over`), re-points both
endpoints, and rebuilds the old writer as a reader of the new one. Global databases
(global_clusters.py) and Multi-AZ DB clusters (multi_az_clusters.py) build on these.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from strata.context import RequestContext
from strata.engines.postgres import PgNode
from strata.engines.process import EngineError, wait_until
from strata.services.base import run_blocking
from strata.services.rds import model as m
from strata.services.rds import security
from strata.services.rds.clusters import ClusterOperations
from strata.services.rds.fleet import Node
from strata.sim import timings
from strata.sim.clock import clock

log = logging.getLogger("strata.rds")


class ClusterMemberOperations(ClusterOperations):
    # global databases' part in a member's life (global_clusters.py)
    _global_source: Callable[[dict], tuple[dict, Node, threading.RLock]]
    _secondaries_follow: Callable[[dict, Node], None]
    # Multi-AZ DB clusters (multi_az_clusters.py)
    _semi_sync: Callable[[dict], None]

    # -- instances in a cluster --------------------------------------------------------------------

    async def _create_cluster_instance(self, ctx: RequestContext, req: dict, info: m.EngineInfo) -> dict:
        c = self._get_cluster(req["DBClusterIdentifier"])
        if c.get("multi_az_cluster"):
            raise m.fault(
                "InvalidParameterCombination",
                f"DB cluster {c['id']} is a Multi-AZ DB cluster: its three DB instances are its own.",
            )
        if info.name != c["engine"]:
            raise m.fault(
                "InvalidParameterCombination", f"The engine must be {c['engine']}, the cluster's engine."
            )
        if c["status"] in ("stopping", "stopped", "starting"):  # its writer's engine is down
            raise m.fault(
                "InvalidDBClusterStateFault",
                f"DbCluster {c['id']} is in {c['status']} state but expected it to be one of available.",
            )
        if len(c["members"]) > m.MAX_AURORA_READERS:
            raise m.fault("InvalidParameterCombination", "A DB cluster has at most 1 writer and 15 readers.")
        if req.get("StorageEncrypted") is not None or req.get("KmsKeyId"):
            raise m.fault(
                "InvalidParameterCombination",
                "The requested DB Instance will be a member of a DB Cluster and its storage "
                "encryption key should not be set directly.",
            )
        req = self._same_version(req, c["engine_version"], c["engine"])
        tier = m.check_promotion_tier(req.get("PromotionTier"), info.aurora)
        groups = security.member_groups(self, c, req.get("VpcSecurityGroupIds"))
        doc = self._new_instance_doc(
            {**req, "BackupRetentionPeriod": 0, "VpcSecurityGroupIds": groups},
            info,
            c["master_username"],
            inherited_key=c.get("kms_key_id"),
        )
        await self._encrypt_instance(doc)
        c = self._get_cluster(c["id"])  # as it is now: making the volume took a while
        doc.update(
            cluster=c["id"],
            db_name=c.get("db_name"),
            archive_dir=str(self._cluster_dir(c["id"]) / "archive"),
            # a global database's secondary cluster has only readers (global_clusters.py)
            cluster_role="writer"
            if not c.get("writer") and c.get("global_role") != "secondary"
            else "reader",
            promotion_tier=tier,
            storage_type="aurora",
            vpc_groups=c.get("vpc_groups") or doc["vpc_groups"],  # a ModifyDBCluster meanwhile
        )
        self.fleet.new_node(doc, "primary", doc["az"])
        doc["primary"] = next(iter(doc["nodes"]))
        self._save(doc)
        await run_blocking(security.guard, self, doc)
        c["members"].append(doc["id"])
        if doc["cluster_role"] == "writer":
            c["writer"] = doc["id"]
        self.store.put_doc("cluster", c["id"], c)
        self._spawn(doc["id"], self._build_cluster_instance, doc["id"], c["id"])
        return {"DBInstance": self._instance_out(doc)}

    def _build_cluster_instance(self, ident: str, cid: str) -> None:
        doc = self._get_instance(ident)
        c = self._get_cluster(cid)
        params = self._params_for(doc)
        if doc["cluster_role"] == "writer":
            seed = c.get("seed")
            if seed:
                self.fleet.restore(
                    doc,
                    Path(seed["backup"]),
                    params,
                    archive=Path(seed["archive"]) if seed.get("archive") else None,
                    target_time=seed.get("target"),
                )
            else:
                self.fleet.create_primary(doc, c["master_password"], params)
            self._save(doc, "nodes")
            self._route_cluster(self._get_cluster(cid))  # before "available": the endpoint works then
            self._hold_creation(doc)  # --timings aws
            self._set_status(ident, "available")
            if c["backup_retention"] > 0 and not self._cluster_backups(cid):
                self._fill_cluster_snapshot(self._take_cluster_backup(cid, automated=True)["id"])
        else:
            if c.get("global_role") == "secondary":  # the primary cluster's writer, in its region
                writer, node, lock = self._global_source(c)
            else:
                writer = self._get_instance(c["writer"])
                node, lock = self.fleet.primary(writer), self.fleet.lock(writer["id"])
            with lock:
                self.fleet.create_replica(writer, doc, params, node)
            self._save(doc, "nodes")
            self._route_cluster(self._get_cluster(cid), ready={ident})  # before "available", as above
            self._hold_creation(doc)  # --timings aws
            self._set_status(ident, "available")
        self._route_cluster(self._get_cluster(cid))
        self._event(
            ident, "db-instance", f"DB instance added to cluster {cid} as {doc['cluster_role']}", ["creation"]
        )

    def _cluster_member_removed(self, cid: str, ident: str) -> None:
        c = self.store.get_doc("cluster", cid)
        if c is None:
            return
        c["members"] = [i for i in c["members"] if i != ident]
        if c.get("writer") == ident:
            c["writer"] = None
        self.store.put_doc("cluster", cid, c)
        self._route_cluster(c)

    # -- failover ----------------------------------------------------------------------------------

    async def failover_db_cluster(self, ctx: RequestContext, req: dict) -> dict:
        c = self._get_cluster(req.get("DBClusterIdentifier"))
        readers = self._by_promotion_tier(i for i in c["members"] if i != c.get("writer"))
        target = (req.get("TargetDBInstanceIdentifier") or "").lower() or (readers[0] if readers else None)
        if not c.get("writer") or not target or target not in readers:
            raise m.fault(
                "InvalidDBClusterStateFault",
                f"Cluster {c['id']} has no reader instance to fail over to."
                if not readers
                else f"{target} is not a reader of cluster {c['id']}.",
            )
        if c["status"] != "available":
            raise m.fault("InvalidDBClusterStateFault", f"Cluster {c['id']} is not available.")
        for ident in (c["writer"], target):  # e.g. a reader still being created: AWS names the instance
            status = self._get_instance(ident)["status"]
            if status != "available":
                raise m.invalid_state(ident, status)
        c["status"] = "failing-over"
        self.store.put_doc("cluster", c["id"], c)
        self._spawn(f"cluster:{c['id']}", self._failover_cluster, c["id"], target)
        return {"DBCluster": self._cluster_out(c)}

    def _failover_cluster(self, cid: str, target: str, rebuild: bool = True) -> None:
        c = self._get_cluster(cid)
        old_id = c["writer"]
        t0 = clock.monotonic()
        self._event(cid, "db-cluster", f"Started cluster failover to DB instance {target}", ["failover"])
        with self.fleet.lock(old_id), self.fleet.lock(target):
            old, new = self._get_instance(old_id), self._get_instance(target)
            old_node, new_node = self.fleet.primary(old), self.fleet.primary(new)
            if old_node.running():  # a planned failover loses nothing: the reader gets every commit
                self._hand_over(old_node, new_node, old_id, target)
            timings.wait(timings.seconds(self.settings, "aurora_failover"))  # --timings aws
            new_node.promote()
            new["cluster_role"], old["cluster_role"] = "writer", "reader"
            self._save(new, "cluster_role")
            self._set_status(old_id, "rebooting" if rebuild else "deleting", cluster_role="reader")
            c["writer"] = target
            self._route_cluster(c)  # before "available": a client told so must reach the new writer
            c["status"] = "available"
            c["last_failover_seconds"] = round(clock.monotonic() - t0, 3)
            self.store.put_doc("cluster", cid, c)
        self._event(cid, "db-cluster", f"Completed failover to DB instance {target}", ["failover"])
        for rid in c["members"]:
            if rid not in (old_id, target):
                with self.fleet.lock(rid):
                    self.fleet.primary(self._get_instance(rid)).follow(self.fleet.primary(new), rid)
        if c.get("global_role") == "primary":  # secondary clusters in other regions too
            self._secondaries_follow(c, self.fleet.primary(new))
        if c.get("multi_az_cluster"):  # the new writer's commits wait for a standby
            with self.fleet.lock(target):
                self._semi_sync(self._get_cluster(cid))
        if not rebuild:
            return
        with self.fleet.lock(old_id):  # the old writer comes back as a reader of the new one
            old = self._get_instance(old_id)
            self.fleet.drop_node(old, old["primary"])
            old["primary"] = self.fleet.new_node(old, "primary", old["az"])
            self.fleet.create_replica(self._get_instance(target), old, self._params_for(old))
            self._save(old, "nodes", "primary", "next_node")
            self._route_cluster(self._get_cluster(cid), ready={old_id})
            self._set_status(old_id, "available")

    def _hand_over(self, old_node, new_node, old_id: str, target: str) -> None:  # noqa: ANN001
        """Stop the writer once the reader has all it wrote. The writer's clean shutdown passes
        its last commits only to readers connected at that moment, so the reader must be streaming
        first (a reconnecting one missed the commits of the last moments); with PostgreSQL the
        reader's WAL is then checked against the stopped writer's end of WAL, and a reader that
        lacks any of it is not promoted: the writer is started again instead. A MariaDB writer is
        made read-only first and stops once the reader has applied its final position."""
        for attempt in range(3):
            if attempt:
                log.warning("reader %s lacked the last WAL of %s: writer restarted, again", target, old_id)
                old_node.start()
            # (re)connect it now: after a writer restart, MariaDB's replica retries only each minute
            new_node.follow(old_node, target)
            if not wait_until(lambda: new_node.streaming_from(old_node), 120):
                raise EngineError(f"the reader {target} does not stream from the writer {old_id}")
            # Most of the lag goes before the writer stops (its clean stop then has little left to
            # pass on); the position is taken once, as commits go on and a moving one may never be
            # reached by a reader on a busy machine.
            position = old_node.log_position()
            if not wait_until(lambda: new_node.applied(position), 120):  # noqa: B023 - called here
                raise EngineError(f"the reader {target} did not catch up with the writer {old_id}")
            if not isinstance(old_node, PgNode):
                # Writes stop, so the position is final; the writer goes only once the reader has
                # applied all of it (its shutdown's hand-over to connected replicas is not relied on).
                old_node.set_read_only(True)
                final = old_node.log_position()
                if not wait_until(lambda: new_node.applied(final), 120):  # noqa: B023 - called here
                    old_node.set_read_only(False)
                    raise EngineError(f"the reader {target} did not apply the last commits of {old_id}")
                old_node.stop_handing_over()
                return
            old_node.stop_handing_over()
            end = old_node.final_lsn()
            if wait_until(lambda: new_node.received_past(end), 30):  # noqa: B023 - called here
                return
        old_node.start()
        raise EngineError(f"the reader {target} lacks the last WAL of the writer {old_id}")
