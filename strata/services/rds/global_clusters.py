"""Aurora global databases: one primary cluster that takes writes, secondary clusters in other
regions whose instances replicate from the primary's writer by the engine's own replication.

A global cluster is a record of the account (not of a region: DescribeGlobalClusters answers the
same in every region, its ARN has no region), kept in the default region's scope. Membership is a
fact of each member cluster (`global_cluster`, `global_role` "primary" or "secondary"), so a
cluster deleted in its region leaves its global cluster with it. A secondary cluster has no
writer: every instance created in it is a reader streaming from the primary cluster's writer
(as a cross-region read replica does), and its writer endpoint reaches nothing.

SwitchoverGlobalCluster (and FailoverGlobalCluster without AllowDataLoss) loses nothing: the old
primary's writer stops taking writes and the secondary's first instance is promoted only once it
has applied the writer's final position (clusters.py `_hand_over`). FailoverGlobalCluster with
AllowDataLoss promotes at once, as after a regional outage. Either way the old primary cluster
becomes a secondary: its writer is rebuilt as a replica of the new writer, the other instances
everywhere follow the new writer. RemoveFromGlobalCluster promotes a secondary into a standalone
cluster that takes writes.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from strata.context import RequestContext
from strata.engines.process import EngineError, wait_until
from strata.protocol.errors import ServiceError
from strata.services.rds import model as m
from strata.services.rds.cluster_members import ClusterMemberOperations
from strata.services.rds.fleet import Node
from strata.services.rds.listing import filtered, page
from strata.sim.clock import clock

log = logging.getLogger("strata.rds")

GLOBAL_ID = re.compile(r"^[A-Za-z][0-9A-Za-z\-:._]*$")
CLUSTER_ARN = re.compile(r"^arn:aws:rds:([a-z0-9-]+):(\d{12}):cluster:([A-Za-z0-9-]+)$")
MAX_SECONDARIES = 10  # AWS: up to 10 secondary Regions
SOURCE_WAIT = 600.0  # a secondary's instance waits this long for the primary's writer


def _not_found(gid: str) -> ServiceError:
    return m.fault("GlobalClusterNotFoundFault", f"Global cluster {gid} not found.", 404)


def _bad_state(message: str) -> ServiceError:
    return m.fault("InvalidGlobalClusterStateFault", message)


class GlobalClusterOperations(ClusterMemberOperations):
    _event: Callable[..., None]  # groups.py
    _params_for: Callable[[dict], dict[str, str]]  # parameter_groups.py

    # -- records -----------------------------------------------------------------------------------

    @contextmanager
    def _account_scope(self) -> Iterator[None]:
        """Global clusters belong to the account: kept in the default region's scope."""
        with self.store.acting_as(self.account, self.store.default_region):
            yield

    def _get_global(self, gid: str | None) -> dict:
        if not gid:
            raise m.fault("InvalidParameterValue", "GlobalClusterIdentifier is required.")
        gid = gid.split(":global-cluster:")[-1]
        with self._account_scope():
            g = self.store.get_doc("global_cluster", gid)
        if g is None:
            raise _not_found(gid)
        return g

    def _put_global(self, g: dict) -> None:
        with self._account_scope():
            self.store.put_doc("global_cluster", g["id"], g)

    def _global_arn(self, gid: str) -> str:
        return f"arn:aws:rds::{self.account}:global-cluster:{gid}"

    def _members(self, gid: str) -> list[dict]:
        """The member clusters of global cluster `gid` (of the account served), in every region."""
        return [
            c
            for c in self.store.every_scope("cluster")
            if c.get("global_cluster") == gid and self.store.owner(c) == self.account
        ]

    def _cluster_arn_of(self, c: dict) -> str:
        return m.arn(self.store.region_of(c), self.store.owner(c), "cluster", c["id"])

    @contextmanager
    def _cluster_scope(self, ref: str) -> Iterator[str]:
        """Serve the region of the cluster `ref` names (an ARN, or an identifier in the region being
        served) for the duration; yields its identifier."""
        match = CLUSTER_ARN.match(ref)
        if match is None:
            yield ref.split(":")[-1].lower()
            return
        region, account, cid = match.groups()
        if account != self.account:
            raise m.not_found_cluster(ref)
        with self.store.acting_as(account, region):
            yield cid.lower()

    def _cluster_at(self, ref: str) -> dict:
        with self._cluster_scope(ref) as cid:
            return self._get_cluster(cid)

    def _global_out(self, g: dict) -> dict:
        members = sorted(self._members(g["id"]), key=lambda c: c.get("global_role") != "primary")
        arns = [self._cluster_arn_of(c) for c in members]
        out_members = []
        for c, arn in zip(members, arns, strict=True):
            writer = c.get("global_role") == "primary"
            out_members.append(
                {
                    "DBClusterArn": arn,
                    "Readers": [a for a in arns if a != arn] if writer else [],
                    "IsWriter": writer,
                    "GlobalWriteForwardingStatus": "disabled",
                    "SynchronizationStatus": "connected",
                }
            )
        out = {
            "GlobalClusterIdentifier": g["id"],
            "GlobalClusterResourceId": g["resource_id"],
            "GlobalClusterArn": self._global_arn(g["id"]),
            "Status": g["status"],
            "Engine": g["engine"],
            "EngineVersion": g["engine_version"],
            "StorageEncrypted": False,
            "DeletionProtection": g["deletion_protection"],
            "GlobalClusterMembers": out_members,
            "TagList": m.tags_out(g.get("tags", {})),
        }
        if g.get("db_name"):
            out["DatabaseName"] = g["db_name"]
        if g.get("failover"):
            out["FailoverState"] = g["failover"]
        return out

    # -- operations --------------------------------------------------------------------------------

    def create_global_cluster(self, ctx: RequestContext, req: dict) -> dict:
        gid = req.get("GlobalClusterIdentifier") or ""
        if not GLOBAL_ID.match(gid) or len(gid) > 255:
            raise m.fault(
                "InvalidParameterValue",
                "GlobalClusterIdentifier must begin with a letter and contain only letters, digits, "
                "hyphens, colons, periods and underscores (1 to 255 characters).",
            )
        with self._account_scope():
            if self.store.get_doc("global_cluster", gid):
                raise m.fault("GlobalClusterAlreadyExistsFault", f"Global cluster {gid} already exists.")
        if req.get("StorageEncrypted"):
            raise m.fault(
                "InvalidParameterCombination", "Strata does not replicate encrypted clusters across regions."
            )
        source = None
        if req.get("SourceDBClusterIdentifier"):
            for name in ("Engine", "EngineVersion", "DatabaseName", "StorageEncrypted"):
                if req.get(name) is not None:
                    raise m.fault(
                        "InvalidParameterCombination",
                        f"{name} can't be specified with SourceDBClusterIdentifier: the global cluster "
                        "takes it from the source DB cluster.",
                    )
            source = self._cluster_at(req["SourceDBClusterIdentifier"])
            if not m.ENGINES[source["engine"]].aurora:
                raise m.fault(
                    "InvalidParameterCombination",
                    f"DB cluster {source['id']} is a Multi-AZ DB cluster: global databases are Aurora's.",
                )
            if source.get("global_cluster"):
                raise m.fault(
                    "InvalidDBClusterStateFault",
                    f"DB cluster {source['id']} is already a member of global cluster {source['global_cluster']}.",
                )
            if source["status"] != "available":
                raise m.fault("InvalidDBClusterStateFault", f"DB cluster {source['id']} is not available.")
            if source.get("storage_encrypted"):
                raise m.fault(
                    "InvalidParameterCombination",
                    "Strata does not replicate encrypted clusters across regions.",
                )
            engine, version, db_name = source["engine"], source["engine_version"], source.get("db_name")
        else:
            if not req.get("Engine"):
                raise m.fault(
                    "InvalidParameterValue",
                    "The Engine parameter is required when SourceDBClusterIdentifier is not specified.",
                )
            info = m.engine_info(req["Engine"])
            if not info.aurora:
                raise m.fault(
                    "InvalidParameterValue",
                    f"Invalid engine {req['Engine']}: a global cluster is aurora-mysql or aurora-postgresql.",
                )
            engine, version = info.name, self._pick_version(info, req.get("EngineVersion"))
            db_name = req.get("DatabaseName")
            if db_name:
                m.check_db_name(db_name, info, "DatabaseName")
        g = {
            "id": gid,
            "resource_id": self._resource_id("cluster"),
            "engine": engine,
            "engine_version": version,
            "db_name": db_name,
            "deletion_protection": bool(req.get("DeletionProtection")),
            "status": "available",
            "failover": None,
            "tags": m.tags_in(req.get("Tags")),
            "created": clock.now().isoformat(),
        }
        self._put_global(g)
        if source is not None:
            with self._cluster_scope(req["SourceDBClusterIdentifier"]):
                source = self._get_cluster(source["id"])
                source.update(global_cluster=gid, global_role="primary")
                self.store.put_doc("cluster", source["id"], source)
        return {"GlobalCluster": self._global_out(g)}

    def describe_global_clusters(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("GlobalClusterIdentifier"):
            globals_ = [self._get_global(req["GlobalClusterIdentifier"])]
        else:
            with self._account_scope():
                globals_ = self.store.list_docs("global_cluster")
        globals_ = filtered(
            globals_,
            req,
            {"region": lambda g: sorted({self.store.region_of(c) for c in self._members(g["id"])})},
        )
        resp = page(globals_, req, "GlobalClusters")
        resp["GlobalClusters"] = [self._global_out(g) for g in resp["GlobalClusters"]]
        return resp

    def modify_global_cluster(self, ctx: RequestContext, req: dict) -> dict:
        g = self._get_global(req.get("GlobalClusterIdentifier"))
        if g["status"] != "available":
            raise _bad_state(f"Global cluster {g['id']} is {g['status']}.")
        if req.get("EngineVersion") and not m.version_matches(req["EngineVersion"], g["engine_version"]):
            raise m.fault(
                "InvalidParameterCombination",
                f"Cannot change the engine version from {g['engine_version']} to {req['EngineVersion']}: "
                "Strata does not upgrade DB engines.",
            )
        if req.get("DeletionProtection") is not None:
            g["deletion_protection"] = bool(req["DeletionProtection"])
        new_id = req.get("NewGlobalClusterIdentifier")
        if new_id and new_id != g["id"]:
            if not GLOBAL_ID.match(new_id) or len(new_id) > 255:
                raise m.fault("InvalidParameterValue", f"Invalid NewGlobalClusterIdentifier {new_id}.")
            with self._account_scope():
                if self.store.get_doc("global_cluster", new_id):
                    raise m.fault(
                        "GlobalClusterAlreadyExistsFault", f"Global cluster {new_id} already exists."
                    )
            members = self._members(g["id"])
            with self._account_scope():
                self.store.delete_doc("global_cluster", g["id"])
            g["id"] = new_id
            for c in members:
                with self.store.acting_for(c):
                    c = self._get_cluster(c["id"])
                    c["global_cluster"] = new_id
                    self.store.put_doc("cluster", c["id"], c)
        self._put_global(g)
        return {"GlobalCluster": self._global_out(g)}

    def delete_global_cluster(self, ctx: RequestContext, req: dict) -> dict:
        g = self._get_global(req.get("GlobalClusterIdentifier"))
        if g["deletion_protection"]:
            raise _bad_state(
                f"Global cluster {g['id']} has deletion protection enabled; disable it to delete."
            )
        if self._members(g["id"]):
            raise _bad_state(f"Global cluster {g['id']} still has members; remove them first.")
        out = {**self._global_out(g), "Status": "deleting"}
        with self._account_scope():
            self.store.delete_doc("global_cluster", g["id"])
        return {"GlobalCluster": out}

    def _global_cluster_tags(
        self, arn: str, *, add: dict[str, str] | None = None, remove: list[str] | None = None
    ) -> dict[str, str]:
        """The tags of the global cluster `arn` names, after adding `add` and removing `remove`
        (Add/RemoveTagsFromResource, ListTagsForResource: groups.py)."""
        parts = arn.split(":", 6)
        if len(parts) != 7 or parts[:4] != ["arn", "aws", "rds", ""] or parts[5] != "global-cluster":
            raise m.fault("InvalidParameterValue", f"Invalid resource name: {arn}")
        if parts[4] != self.account:  # another account's
            raise _not_found(parts[6])
        g = self._get_global(parts[6])
        if add or remove:
            tags = {**g.get("tags", {}), **(add or {})}
            g["tags"] = {k: v for k, v in tags.items() if k not in (remove or [])}
            self._put_global(g)
        return g.get("tags", {})

    def _member_of(self, g: dict, ref: str | None) -> dict:
        if not ref:
            raise m.fault("InvalidParameterValue", "DbClusterIdentifier is required.")
        c = self._cluster_at(ref)
        if c.get("global_cluster") != g["id"]:
            raise _bad_state(f"DB cluster {c['id']} is not a member of global cluster {g['id']}.")
        return c

    async def remove_from_global_cluster(self, ctx: RequestContext, req: dict) -> dict:
        g = self._get_global(req.get("GlobalClusterIdentifier"))
        c = self._member_of(g, req.get("DbClusterIdentifier"))
        if g["status"] != "available":
            raise _bad_state(f"Global cluster {g['id']} is {g['status']}.")
        if c.get("global_role") == "primary":
            if len(self._members(g["id"])) > 1:
                raise _bad_state(
                    f"Unable to remove the primary cluster of global cluster {g['id']} while there are "
                    "other global cluster members."
                )
            with self.store.acting_for(c):
                c = self._get_cluster(c["id"])
                c.pop("global_cluster", None)
                c.pop("global_role", None)
                self.store.put_doc("cluster", c["id"], c)
            return {"GlobalCluster": self._global_out(g)}
        with self.store.acting_for(c):
            if c["status"] != "available":
                raise m.fault("InvalidDBClusterStateFault", f"DB cluster {c['id']} is not available.")
            c["status"] = "promoting"
            self.store.put_doc("cluster", c["id"], c)
            self._spawn(f"cluster:{c['id']}", self._detach, c["id"])
        return {"GlobalCluster": self._global_out(g)}

    def _detach(self, cid: str) -> None:
        """A secondary leaves its global database: its first instance is promoted to writer, the
        others follow it; the cluster takes writes from then on."""
        c = self._get_cluster(cid)
        readers = [
            i for i in c["members"] if (self.store.get_doc("instance", i) or {}).get("status") == "available"
        ]
        if readers:
            with self.fleet.lock(readers[0]):
                new = self._get_instance(readers[0])
                node = self.fleet.primary(new)
                node.promote()
                new["cluster_role"] = "writer"
                self._save(new, "cluster_role")
            for rid in readers[1:]:
                self._follow(rid, node)
        c = self._get_cluster(cid)
        c["writer"] = readers[0] if readers else None
        c["status"] = "available"
        c.pop("global_cluster", None)
        c.pop("global_role", None)
        self.store.put_doc("cluster", cid, c)
        self._route_cluster(c)
        self._event(cid, "db-cluster", "DB cluster removed from its global cluster and promoted", ["global"])

    async def switchover_global_cluster(self, ctx: RequestContext, req: dict) -> dict:
        return self._start_switch(req, planned=True)

    async def failover_global_cluster(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("AllowDataLoss") is not None and req.get("Switchover") is not None:
            raise m.fault(
                "InvalidParameterCombination", "AllowDataLoss can't be specified together with Switchover."
            )
        return self._start_switch(req, planned=not req.get("AllowDataLoss"))

    def _start_switch(self, req: dict, *, planned: bool) -> dict:
        g = self._get_global(req.get("GlobalClusterIdentifier"))
        if not req.get("TargetDbClusterIdentifier"):
            raise m.fault("InvalidParameterValue", "TargetDbClusterIdentifier is required.")
        target = self._member_of(g, req["TargetDbClusterIdentifier"])
        if g["status"] != "available":
            raise _bad_state(f"Global cluster {g['id']} is {g['status']}.")
        if target.get("global_role") == "primary":
            raise _bad_state(f"DB cluster {target['id']} is already the primary cluster of {g['id']}.")
        primary = next((c for c in self._members(g["id"]) if c.get("global_role") == "primary"), None)
        if primary is None:
            raise _bad_state(f"Global cluster {g['id']} has no primary cluster.")
        with self.store.acting_for(target):
            if target["status"] != "available" or not self._available_members(target):
                raise m.fault(
                    "InvalidDBClusterStateFault",
                    f"DB cluster {target['id']} has no available DB instance to promote.",
                )
        with self.store.acting_for(primary):
            writer = self.store.get_doc("instance", primary.get("writer") or "")
            if planned and (writer is None or writer["status"] != "available"):
                raise m.fault(
                    "InvalidDBClusterStateFault",
                    f"The primary cluster {primary['id']} has no available writer; a switchover needs "
                    "one (fail over with AllowDataLoss instead).",
                )
        g["status"] = "switching-over" if planned else "failing-over"
        g["failover"] = {
            "Status": "pending",
            "FromDbClusterArn": self._cluster_arn_of(primary),
            "ToDbClusterArn": self._cluster_arn_of(target),
            "IsDataLossAllowed": not planned,
        }
        self._put_global(g)
        self._spawn(f"global:{g['id']}", self._switch, g["id"], primary, target, planned)
        return {"GlobalCluster": self._global_out(g)}

    def _available_members(self, c: dict) -> list[str]:
        """Identifiers of `c`'s available instances (in `c`'s scope)."""
        return [
            i for i in c["members"] if (self.store.get_doc("instance", i) or {}).get("status") == "available"
        ]

    def _switch(self, gid: str, old_c: dict, new_c: dict, planned: bool) -> None:
        try:
            self._switch_primary(gid, old_c, new_c, planned)
        except Exception as e:  # noqa: BLE001 - the global cluster must not stay switching for ever
            log.exception("switchover of global cluster %s failed", gid)
            g = self._get_global(gid)
            g.update(status="available", failover=None)
            self._put_global(g)
            with self.store.acting_for(new_c):
                self._event(
                    new_c["id"], "db-cluster", f"Global switchover failed: {str(e)[:300]}", ["failure"]
                )

    def _switch_primary(self, gid: str, old_c: dict, new_c: dict, planned: bool) -> None:
        g = self._get_global(gid)
        g["failover"] = {**g["failover"], "Status": "switching-over" if planned else "failing-over"}
        self._put_global(g)
        with self.store.acting_for(old_c):
            old_c = self._get_cluster(old_c["id"])
            old_id = old_c.get("writer")
            old_doc = self._get_instance(old_id) if old_id else None
            old_node = self.fleet.primary(old_doc) if old_doc else None
            old_lock = self.fleet.lock(old_id) if old_id else threading.RLock()
            if old_id:  # its engine stops below: not a crash for the monitor to recover
                self._set_status(old_id, "rebooting")
        with self.store.acting_for(new_c):
            new_c = self._get_cluster(new_c["id"])
            new_id = self._available_members(new_c)[0]
            new_doc = self._get_instance(new_id)
            new_node = self.fleet.primary(new_doc)
            new_lock = self.fleet.lock(new_id)
        with old_lock, new_lock:
            if old_node is not None and planned:
                try:
                    self._hand_over(old_node, new_node, old_id or "", new_id)
                except Exception:
                    with self.store.acting_for(old_c):  # the old writer goes on writing
                        self._set_status(old_id or "", "available")
                    raise
            elif old_node is not None and old_node.running():
                old_node.kill()  # cut off, as by a regional outage: what it had not shipped is lost
            new_node.promote()
        with self.store.acting_for(new_c):
            new_doc = self._get_instance(new_id)
            new_doc["cluster_role"] = "writer"
            self._save(new_doc, "cluster_role")
            new_c = self._get_cluster(new_c["id"])
            new_c.update(writer=new_id, global_role="primary")
            self.store.put_doc("cluster", new_c["id"], new_c)
            self._route_cluster(new_c)  # writes reach the new primary from here on
            for rid in new_c["members"]:
                if rid != new_id:
                    self._follow(rid, new_node)
        with self.store.acting_for(old_c):
            old_c = self._get_cluster(old_c["id"])
            old_c.update(writer=None, global_role="secondary")
            self.store.put_doc("cluster", old_c["id"], old_c)
            self._route_cluster(old_c)
        for c in self._members(gid):
            if c["id"] == new_c["id"] and self.store.region_of(c) == self.store.region_of(new_c):
                continue
            with self.store.acting_for(c):
                for rid in c["members"]:
                    # after a failover the old primary's instances may hold commits the new writer
                    # never got: each is rebuilt from it, as is the old writer always
                    rebuild = rid == old_id or (not planned and c["id"] == old_c["id"])
                    self._repoint(rid, new_doc, new_node, rebuild)
                self._route_cluster(self._get_cluster(c["id"]))
        g = self._get_global(gid)
        g.update(status="available", failover=None)
        self._put_global(g)
        with self.store.acting_for(new_c):
            self._event(new_c["id"], "db-cluster", f"Global cluster {gid} now writes here", ["global"])

    def _repoint(self, ident: str, source: dict, source_node: Node, rebuild: bool) -> None:
        """Make instance `ident` (of the scope served) replicate from `source_node`: rebuilt from a
        copy of it, or by following it."""
        if not rebuild:
            self._follow(ident, source_node)
            return
        with self.fleet.lock(ident):
            self._set_status(ident, "rebooting", cluster_role="reader")
            doc = self._get_instance(ident)
            self.fleet.drop_node(doc, doc["primary"])
            doc["primary"] = self.fleet.new_node(doc, "primary", doc["az"])
            self.fleet.create_replica(source, doc, self._params_for(doc), source_node)
            self._save(doc, "nodes", "primary", "next_node")
            self._set_status(ident, "available")

    def _follow(self, ident: str, node: Node) -> None:
        """Point instance `ident` (of the scope served) at `node`, the writer it replicates from."""
        with self.fleet.lock(ident):
            # one engine in a global cluster: a PgNode follows a PgNode, a MariaNode a MariaNode
            self.fleet.primary(self._get_instance(ident)).follow(node, ident)  # type: ignore[arg-type]

    # -- hooks of clusters.py ----------------------------------------------------------------------

    async def _join_global_cluster(self, req: dict) -> dict:
        """CreateDBCluster with GlobalClusterIdentifier: the primary of an empty global cluster,
        else a secondary cluster in a region the global cluster has no member in yet."""
        g = self._get_global(req["GlobalClusterIdentifier"])
        info = m.engine_info(req.get("Engine"))
        if info.name != g["engine"]:
            raise m.fault(
                "InvalidParameterCombination",
                f"The engine must be {g['engine']}, the engine of global cluster {g['id']}.",
            )
        if req.get("StorageEncrypted") or req.get("KmsKeyId"):
            raise m.fault(
                "InvalidParameterCombination", "Strata does not replicate encrypted clusters across regions."
            )
        m.check_aurora_storage(req)
        req = self._same_version(req, g["engine_version"], g["engine"])
        members = self._members(g["id"])
        primary = next((c for c in members if c.get("global_role") == "primary"), None)
        if primary is None:
            m.check_master(req.get("MasterUsername"), req.get("MasterUserPassword"), info)
            db_name = req.get("DatabaseName") or g.get("db_name")
            m.check_db_name(db_name, info, "DatabaseName")
            c = self._new_cluster_doc(
                {**req, "DatabaseName": db_name}, info, req["MasterUsername"], req["MasterUserPassword"]
            )
            c.update(global_cluster=g["id"], global_role="primary")
            return await self._open_cluster(c)
        if g["status"] != "available":
            raise _bad_state(f"Global cluster {g['id']} is {g['status']}.")
        for name in ("MasterUsername", "MasterUserPassword", "DatabaseName"):
            if req.get(name):
                raise m.fault(
                    "InvalidParameterCombination",
                    f"{name} can't be specified for a secondary cluster: it comes from the primary cluster.",
                )
        if any(self.store.region_of(c) == self.region for c in members):
            raise _bad_state(f"Global cluster {g['id']} already has a member in {self.region}.")
        if len(members) - 1 >= MAX_SECONDARIES:
            raise _bad_state(f"Global cluster {g['id']} already has {MAX_SECONDARIES} secondary clusters.")
        c = self._new_cluster_doc(req, info, primary["master_username"], primary.get("master_password"))
        c.update(global_cluster=g["id"], global_role="secondary", db_name=primary.get("db_name"))
        return await self._open_cluster(c)

    def _primary_of(self, gid: str) -> dict | None:
        return next((c for c in self._members(gid) if c.get("global_role") == "primary"), None)

    def _global_source(self, c: dict) -> tuple[dict, Node, threading.RLock]:
        """What a new instance of secondary cluster `c` replicates from: the primary cluster's
        writer, in its region (its record, engine node and lock). Waits for one to be available:
        infrastructure code creates the secondary while the primary's writer is being built."""
        found: list[tuple[dict, Node, threading.RLock]] = []

        def writer_ready() -> bool:
            primary = self._primary_of(c["global_cluster"])
            if primary is None or not primary.get("writer"):
                return False
            with self.store.acting_for(primary):
                doc = self.store.get_doc("instance", primary["writer"])
                if doc is None or doc["status"] != "available":
                    return False
                found.append((doc, self.fleet.primary(doc), self.fleet.lock(doc["id"])))
            return True

        if not wait_until(writer_ready, SOURCE_WAIT):
            raise EngineError(f"the primary cluster of global cluster {c['global_cluster']} has no writer")
        return found[-1]

    def _secondaries_follow(self, c: dict, node: Node) -> None:
        """After a failover inside primary cluster `c`: the secondaries' instances follow its new writer."""
        for other in self._members(c["global_cluster"]):
            if other.get("global_role") != "secondary":
                continue
            with self.store.acting_for(other):
                for rid in other["members"]:
                    try:
                        self._follow(rid, node)
                    except Exception:  # noqa: BLE001 - one secondary must not stop the others
                        log.exception("secondary instance %s could not follow the new writer", rid)

    def _check_primary_deletable(self, c: dict) -> None:
        if len(self._members(c["global_cluster"])) > 1:
            raise _bad_state(
                "Unable to delete cluster that is a primary member of global cluster while there are "
                "other global cluster members"
            )
