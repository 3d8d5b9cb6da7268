"""Stopping, starting and rebooting DB clusters, and AWS's automatic start after seven days.

StopDBCluster (Aurora and Multi-AZ DB clusters) cuts both cluster endpoints, then stops every
member's engine, the writer first (a stopped writer has passed all it wrote to the readers
streaming from it), each member `stopped`; the cluster is `stopped`. StartDBCluster starts the
writer, routes the writer endpoint, then the readers, which stream from it again, and routes the
reader endpoint; the cluster is `available`. Instance hours are not metered while stopped, storage
is (instances.py `_meter_instance`, from each member's status). As on AWS, a cluster in a global
database stops only when it is the global database's only cluster, a member instance cannot be
stopped or started on its own (instance_lifecycle.py), and a stopped cluster has no automated backups.

RebootDBCluster restarts every member's engine (Multi-AZ DB clusters only, as AWS documents).

The scheduler's `rds.autostart` rule starts a DB instance or DB cluster stopped for seven days
(AWS's RDS-EVENT-0154 / RDS-EVENT-0153), decided from `stopped_at` and the instant the rule runs
to, so it is idempotent and a jump of the clock starts it exactly once.

A Strata restart in the middle: a cluster that was stopping is stopped (no engine runs after a
restart); one that was starting starts again; one that was rebooting is available while its
members resume.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.rds import model as m
from strata.services.rds.clusters import READER_HOST, STOPPED_FOR, ClusterOperations
from strata.sim.clock import clock
from strata.sim.scheduler import scheduler

log = logging.getLogger("strata.rds")

AUTOSTART_RULE_EVERY = 1800.0
SOLE_GLOBAL_MEMBER = (
    "You can only stop and start a cluster that's part of an Aurora global database if it's the only "
    "cluster in the global database."
)


def automatic_restart_time(doc: dict) -> dt.datetime | None:
    """AutomaticRestartTime of a stopped instance or cluster record (None when not stopped)."""
    if doc.get("status") != "stopped" or doc.get("stopped_at") is None:
        return None
    return dt.datetime.fromtimestamp(doc["stopped_at"] + STOPPED_FOR, dt.UTC)


def cluster_state_fault(c: dict, *expected: str) -> ServiceError:
    """AWS's InvalidDBClusterStateFault for a cluster not in one of the `expected` states."""
    return m.fault(
        "InvalidDBClusterStateFault",
        f"DbCluster {c['id']} is in {c['status']} state but expected it to be one of {', '.join(expected)}.",
    )


class ClusterStopOperations(ClusterOperations):
    _members: Callable[[str], list[dict]]  # global_clusters.py
    _event: Callable[..., None]  # groups.py
    _meter_instance: Callable[[dict], None]  # instances.py
    _resume: Callable[[str], None]  # instance_lifecycle.py
    _start: Callable[[str], None]  # instance_lifecycle.py

    # -- server life -------------------------------------------------------------------------------

    async def start(self) -> None:
        restart = []
        for c in self.store.list_docs("cluster"):
            if c["status"] not in ("stopping", "starting", "rebooting"):
                continue
            with self.store.acting_for(c):
                if c["status"] == "rebooting":  # its members resume (core.py)
                    self._set_cluster_status(c["id"], "available")
                    continue
                if c["status"] == "starting":
                    restart.append(c)
                for ident in c["members"]:  # no engine runs after a restart
                    if self.store.get_doc("instance", ident) is not None:
                        self._set_status(ident, "stopped", stopped_at=c.get("stopped_at") or clock.time())
                self._set_cluster_status(c["id"], "stopped", stopped_at=c.get("stopped_at") or clock.time())
        await super().start()
        for c in restart:
            with self.store.acting_for(c):
                self._begin_cluster_start(self._get_cluster(c["id"]), "DB cluster started")
        scheduler.register("rds.autostart", self._autostart_rule, every=AUTOSTART_RULE_EVERY)

    async def stop(self) -> None:
        scheduler.unregister("rds.autostart")
        await super().stop()

    # -- helpers -----------------------------------------------------------------------------------

    def _set_cluster_status(self, cid: str, status: str, **fields: object) -> dict | None:
        c = self.store.get_doc("cluster", cid)
        if c is None:
            return None
        c["status"] = status
        c.update(fields)
        self.store.put_doc("cluster", cid, c)
        return c

    def _writer_first(self, c: dict) -> list[str]:
        writer = c.get("writer")
        return sorted(c["members"], key=lambda i: i != writer)

    def _member_docs(self, c: dict) -> list[dict]:
        return [d for i in self._writer_first(c) if (d := self.store.get_doc("instance", i)) is not None]

    def _check_members(self, c: dict, status: str) -> list[dict]:
        """Every member in `status` (AWS names the instance that is not). Work a member is busy
        with meanwhile (the cluster's backup, taken from the writer) ends first: the cluster's
        work takes each member's lock."""
        docs = self._member_docs(c)
        for d in docs:
            if d["status"] != status:
                raise m.fault(
                    "InvalidDBInstanceState",
                    f"DB instance {d['id']} of DB cluster {c['id']} is in {d['status']} state.",
                )
        return docs

    def _unroute_cluster(self, c: dict) -> None:
        """Both endpoints answer nothing (a connection is refused, as to a stopped cluster)."""
        name = self.store.engine_key(c["id"])
        with self.fleet.lock(f"route:{c['id']}"):
            self.fleet.router.set_route(f"cluster-{name}", c["port"], [])
            self.fleet.router.set_route(f"cluster-ro-{name}", c["port"], [], balance=True, host=READER_HOST)
            self._unroute_custom_endpoints(c)

    # -- StopDBCluster -----------------------------------------------------------------------------

    async def stop_db_cluster(self, ctx: RequestContext, req: dict) -> dict:
        c = self._get_cluster(req.get("DBClusterIdentifier"))
        if c.get("global_cluster") and len(self._members(c["global_cluster"])) > 1:
            raise m.fault("InvalidDBClusterStateFault", SOLE_GLOBAL_MEMBER)
        if c["status"] != "available" or self._is_busy(f"cluster:{c['id']}"):
            raise cluster_state_fault(c, "available")
        for doc in self._check_members(c, "available"):
            self._meter_instance(doc)  # the hours before the stop are billed as they ran
            doc["status"] = "stopping"
            self._save(doc)
        c = self._set_cluster_status(c["id"], "stopping") or c
        self._spawn(f"cluster:{c['id']}", self._stop_cluster, c["id"])
        return {"DBCluster": self._cluster_out(c)}

    def _stop_cluster(self, cid: str) -> None:
        c = self._get_cluster(cid)
        self._unroute_cluster(c)
        now = clock.time()
        writer_port = None
        for ident in self._writer_first(c):
            with self.fleet.lock(ident):
                doc = self.store.get_doc("instance", ident)
                if doc is None or not doc.get("primary"):
                    continue
                if ident == c.get("writer"):
                    writer_port = doc["nodes"][doc["primary"]]["port"]
                self.fleet.stop(doc)
                self._set_status(ident, "stopped", stopped_at=now)
                self._event(ident, "db-instance", "DB instance stopped", ["notification"])
        self._unroute_cluster(c)  # again: a member's work that ended meanwhile may have routed it
        self._event(cid, "db-cluster", "DB cluster stopped", ["notification"])
        self._set_cluster_status(cid, "stopped", stopped_at=now, writer_port=writer_port)

    # -- StartDBCluster ----------------------------------------------------------------------------

    async def start_db_cluster(self, ctx: RequestContext, req: dict) -> dict:
        c = self._get_cluster(req.get("DBClusterIdentifier"))
        if c.get("global_cluster") and len(self._members(c["global_cluster"])) > 1:
            raise m.fault("InvalidDBClusterStateFault", SOLE_GLOBAL_MEMBER)
        if c["status"] != "stopped" or self._is_busy(f"cluster:{c['id']}"):
            raise cluster_state_fault(c, "stopped")
        self._check_members(c, "stopped")
        c = self._begin_cluster_start(c, "DB cluster started")
        return {"DBCluster": self._cluster_out(c)}

    def _begin_cluster_start(self, c: dict, message: str) -> dict:
        for doc in self._member_docs(c):
            self._meter_instance(doc)  # storage only, while it was stopped
            doc["status"] = "starting"
            self._save(doc)
        c = self._set_cluster_status(c["id"], "starting") or c
        self._spawn(f"cluster:{c['id']}", self._start_cluster, c["id"], message)
        return c

    def _start_cluster(self, cid: str, message: str) -> None:
        """The writer first, its endpoint routed, then the readers streaming from it (`_resume`:
        a Multi-AZ DB cluster's semi-synchronous replication set again)."""
        c = self._get_cluster(cid)
        writer = c.get("writer")
        moved = False
        for ident in self._writer_first(c):
            with self.fleet.lock(ident):
                doc = self.store.get_doc("instance", ident)
                if doc is None or not doc.get("primary"):
                    continue
                self._resume(ident)
                doc = self._get_instance(ident)
                if ident == writer:
                    # another program took its engine's port while it was stopped (fleet.start)
                    moved = doc["nodes"][doc["primary"]]["port"] != c.get("writer_port")
                elif moved and writer:
                    self.fleet.primary(doc).follow(self.fleet.primary(self._get_instance(writer)), ident)
                doc["params_pending_reboot"] = False  # stopped engines start with every setting
                doc["metered_at"] = clock.time()
                self._save(doc, "params_pending_reboot", "metered_at")
                self._event(ident, "db-instance", "DB instance started", ["notification"])
        self._route_cluster(self._get_cluster(cid))  # first: a client told "available" connects
        self._event(cid, "db-cluster", message, ["notification"])
        self._set_cluster_status(cid, "available")

    # -- RebootDBCluster ---------------------------------------------------------------------------

    async def reboot_db_cluster(self, ctx: RequestContext, req: dict) -> dict:
        c = self._get_cluster(req.get("DBClusterIdentifier"))
        if not c.get("multi_az_cluster"):
            raise m.fault(
                "InvalidParameterCombination",
                "RebootDBCluster is only for Multi-AZ DB clusters: reboot the DB instances of an "
                "Aurora DB cluster with RebootDBInstance.",
            )
        if c["status"] != "available" or self._is_busy(f"cluster:{c['id']}"):
            raise cluster_state_fault(c, "available")
        for doc in self._check_members(c, "available"):
            doc["status"] = "rebooting"
            self._save(doc)
        c = self._set_cluster_status(c["id"], "rebooting") or c
        self._spawn(f"cluster:{c['id']}", self._reboot_cluster, c["id"])
        return {"DBCluster": self._cluster_out(c)}

    def _reboot_cluster(self, cid: str) -> None:
        """Every member's engine restarted, the writer first; the standbys follow it again."""
        c = self._get_cluster(cid)
        self._event(cid, "db-cluster", "DB cluster is rebooting", ["availability"])
        for ident in self._writer_first(c):
            with self.fleet.lock(ident):
                doc = self._get_instance(ident)
                for name in list(doc["nodes"]):
                    self.fleet.node(doc, name).stop()
                self._resume(ident)
                doc = self._get_instance(ident)
                doc["params_pending_reboot"] = False  # the engines now run every setting of the groups
                self._save(doc, "params_pending_reboot")
                self._event(ident, "db-instance", "DB instance restarted", ["availability"])
        self._route_cluster(self._get_cluster(cid))
        self._event(cid, "db-cluster", "DB cluster rebooted", ["availability"])
        self._set_cluster_status(cid, "available")

    # -- the seven-day limit -----------------------------------------------------------------------

    async def _autostart_rule(self, since: float, until: float) -> dict[str, int]:
        """The scheduler's `rds.autostart` rule: start every DB instance and DB cluster stopped
        for seven days at `until` (see the module docstring)."""
        counts = {"instances": 0, "clusters": 0}
        for c in self.store.list_docs("cluster"):
            if c["status"] != "stopped" or c.get("stopped_at", until) + STOPPED_FOR > until:
                continue
            with self.store.acting_for(c):
                if self._is_busy(f"cluster:{c['id']}"):
                    continue
                self._event(
                    c["id"],
                    "db-cluster",
                    "DB cluster is being started due to it exceeding the maximum allowed time being stopped.",
                    ["notification"],
                )
                self._begin_cluster_start(c, "DB cluster started")
                counts["clusters"] += 1
        for doc in self.store.list_docs("instance"):
            if doc["status"] != "stopped" or doc.get("cluster"):
                continue
            if doc.get("stopped_at", until) + STOPPED_FOR > until:
                continue
            with self.store.acting_for(doc):
                if self._is_busy(doc["id"]):
                    continue
                self._event(
                    doc["id"],
                    "db-instance",
                    "DB instance is being started due to it exceeding the maximum allowed time being stopped.",
                    ["notification"],
                )
                self._meter_instance(doc)  # storage only, while it was stopped
                doc["status"] = "starting"
                self._save(doc)
                self._spawn(doc["id"], self._start, doc["id"])
                counts["instances"] += 1
        return counts
