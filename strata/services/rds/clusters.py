"""Aurora DB clusters: one writer and up to 15 readers on the engine's own replication.

A cluster record holds what its instances share (engine, master user, database, backups) and two
stable endpoints with one Port, as on AWS: the writer endpoint (`127.0.0.1:Port`) follows the
writer; the reader endpoint (`127.0.0.2:Port`) spreads new connections over the readers (or
reaches the writer while there are none). Instances join with CreateDBInstance(DBClusterIdentifier):
the first becomes the writer (initdb, or the cluster's restore source), the next ones stream from
it. FailoverDBCluster promotes a reader, re-points both endpoints and rebuilds the old writer as a
reader. Aurora's shared storage volume is not imitated: each instance has its own copy, kept by
replication; the cluster's WAL/binlog archive lives with the cluster, so backups and
point-in-time restore are the cluster's, whichever instance writes.

This module holds the cluster records and Create/Describe/Modify/DeleteDBCluster; instances joining
a cluster and failover are cluster_members.py's.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.iam.service_roles import ensure_service_linked_role
from strata.services.rds import model as m
from strata.services.rds import security
from strata.services.rds.core import RDSCore
from strata.services.rds.listing import filtered, page
from strata.services.rds.serverless import check_scaling, merged_scaling
from strata.sim import timings
from strata.sim.clock import clock

log = logging.getLogger("strata.rds")

READER_HOST = m.READER_HOST
CLUSTER_BACKUP_WINDOW = "03:00-03:30"  # what DescribeDBClusters reports as PreferredBackupWindow
CLUSTER_MAINTENANCE_WINDOW = "sun:05:00-sun:05:30"
STOPPED_FOR = 7 * 86400  # AWS starts a stopped DB cluster or DB instance after seven days


class ClusterOperations(RDSCore):
    # global databases' part in a cluster's life (global_clusters.py)
    _join_global_cluster: Callable[[dict], Awaitable[dict]]
    _check_primary_deletable: Callable[[dict], None]
    # Multi-AZ DB clusters (multi_az_clusters.py)
    _create_multi_az_cluster: Callable[..., Awaitable[dict]]
    _delete_multi_az_cluster: Callable[[dict, dict], Awaitable[dict]]
    _multi_az_out: Callable[[dict], dict]
    # custom endpoints (cluster_endpoints.py), routed with the cluster's own
    _route_custom_endpoints: Callable[..., None]
    _remove_custom_endpoints: Callable[[dict], None]
    _unroute_custom_endpoints: Callable[[dict], None]

    # -- records -----------------------------------------------------------------------------------

    def _get_cluster(self, cid: str | None) -> dict:
        if not cid:
            raise m.fault("InvalidParameterValue", "DBClusterIdentifier is required.")
        doc = self.store.get_doc("cluster", cid.split(":")[-1].lower())
        if doc is None:
            raise m.not_found_cluster(cid)
        return doc

    def _cluster_dir(self, cid: str) -> Path:
        """A cluster's shared WAL/binlog archive and automated backups: in its encrypted volume when
        it has one (encryption.py)."""
        volume = self._cluster_volume(cid)
        if self.fleet.volumes.exists(volume):
            return self.fleet.volumes.files(volume)
        return self.runtime.data_dir / "clusters" / self.store.engine_key(cid)

    def _route_cluster(
        self, cluster: dict, ready: set[str] | frozenset[str] = frozenset(), cut: bool = True
    ) -> None:
        """Writer endpoint -> writer; reader endpoint -> readers available or `ready` (else the writer).
        `cut=False` leaves connections to a replaced backend be (see strata.engines.endpoint).

        One at a time per cluster: members resuming side by side after a restart each route, and a
        route computed before a member was available must not be set after one computed later."""
        with self.fleet.lock(f"route:{cluster['id']}"):
            self._set_cluster_routes(cluster, ready, cut)

    def _set_cluster_routes(self, cluster: dict, ready: set[str] | frozenset[str], cut: bool = True) -> None:
        writer = self.store.get_doc("instance", cluster["writer"]) if cluster.get("writer") else None
        writer_backend = (
            [("127.0.0.1", self._backend_port(writer))] if writer and writer.get("primary") else []
        )
        readers = []
        for rid in cluster["members"]:
            r = self.store.get_doc("instance", rid)
            if (
                r
                and rid != cluster.get("writer")
                and (r["status"] == "available" or rid in ready)
                and r.get("primary")
            ):
                readers.append(("127.0.0.1", self._backend_port(r)))
        name = self.store.engine_key(cluster["id"])
        self.fleet.router.set_route(f"cluster-{name}", cluster["port"], writer_backend, cut=cut)
        self.fleet.router.set_route(
            f"cluster-ro-{name}",
            cluster["port"],
            readers or writer_backend,
            balance=True,
            host=READER_HOST,
            cut=cut,
        )
        self._route_custom_endpoints(cluster, ready, cut)

    def _cluster_out(self, c: dict) -> dict:
        members = [
            {
                "DBInstanceIdentifier": i,
                "IsClusterWriter": i == c.get("writer"),
                "DBClusterParameterGroupStatus": "pending-reboot"
                if (self.store.get_doc("instance", i) or {}).get("params_pending_reboot")
                else "in-sync",
                "PromotionTier": (self.store.get_doc("instance", i) or {}).get("promotion_tier", 1),
            }
            for i in c["members"]
        ]
        out = {
            "DBClusterIdentifier": c["id"],
            "Status": "creating" if clock.time() < c.get("creating_until", 0) else c["status"],
            "Engine": c["engine"],
            "EngineVersion": c["engine_version"],
            "EngineMode": "provisioned",
            "Port": c["port"],
            "Endpoint": self.fleet.address,
            "ReaderEndpoint": self.fleet.public(READER_HOST),
            "MasterUsername": c["master_username"],
            "DBClusterMembers": members,
            "MultiAZ": len(c["members"]) > 1,
            "AvailabilityZones": self._azs()[:3],
            "BackupRetentionPeriod": c["backup_retention"],
            "PreferredBackupWindow": c.get("backup_window") or CLUSTER_BACKUP_WINDOW,
            "PreferredMaintenanceWindow": c.get("maintenance_window") or CLUSTER_MAINTENANCE_WINDOW,
            "ClusterCreateTime": dt.datetime.fromisoformat(c["created"]),
            "StorageEncrypted": c["storage_encrypted"],
            "DbClusterResourceId": c["resource_id"],
            "HostedZoneId": "Z2R2ITUGPM61AM",
            "DBClusterArn": m.arn(self.region, self.account, "cluster", c["id"]),
            "AllocatedStorage": 1,
            "DBClusterParameterGroup": c.get("param_group")
            or f"default.{m.family(c['engine'], c['engine_version'])}",
            "TagList": m.tags_out(c["tags"]),
            "DeletionProtection": c.get("deletion_protection", False),
            "VpcSecurityGroups": security.rendered(c),
            "IAMDatabaseAuthenticationEnabled": False,
            "CopyTagsToSnapshot": False,
            "CrossAccountClone": False,
            "ReadReplicaIdentifiers": [],
            "AssociatedRoles": [],
            "StorageType": "aurora",
        }
        if c.get("db_name"):
            out["DatabaseName"] = c["db_name"]
        if c.get("kms_key_id"):
            out["KmsKeyId"] = c["kms_key_id"]
        if c.get("serverless_v2"):
            out["ServerlessV2ScalingConfiguration"] = c["serverless_v2"]
        if c.get("subnet_group"):
            out["DBSubnetGroup"] = c["subnet_group"]
        if c.get("global_cluster"):
            out["GlobalClusterIdentifier"] = c["global_cluster"]
        if c.get("multi_az_cluster"):
            out.update(self._multi_az_out(c))
        backups = self._cluster_backups(c["id"])
        if backups and c.get("writer"):
            out["EarliestRestorableTime"] = dt.datetime.fromtimestamp(
                int(clock.to_simulated(backups[0]["real_at"])) + 1, dt.UTC
            )
            out["LatestRestorableTime"] = dt.datetime.fromtimestamp(int(clock.time()), dt.UTC)
        if c.get("last_failover_seconds") is not None:
            out["StatusInfos"] = []
        if c["status"] == "stopped" and c.get("stopped_at") is not None:  # cluster_stop.py
            out["AutomaticRestartTime"] = dt.datetime.fromtimestamp(c["stopped_at"] + STOPPED_FOR, dt.UTC)
        return out

    @staticmethod
    def _check_serverless(cfg: dict | None) -> dict | None:
        return check_scaling(cfg)  # serverless.py: capacity, auto-pause and their checks

    # -- cluster operations ------------------------------------------------------------------------

    def _new_cluster_doc(
        self,
        req: dict,
        info: m.EngineInfo,
        master_username: str,
        password: str | None,
        inherited_key: str | None = None,
    ) -> dict:
        """A new cluster record (port allocated); `inherited_key` is the KMS key of the encrypted
        snapshot or cluster it is restored from (encryption.py)."""
        cid = m.check_identifier(req.get("DBClusterIdentifier"), "DBClusterIdentifier")
        if self.store.get_doc("cluster", cid) or self._being_encrypted(f"cluster:{cid}"):
            raise m.fault("DBClusterAlreadyExistsFault", f"DB cluster {cid} already exists.")
        if req.get("DBSubnetGroupName"):
            self._get_subnet_group(req["DBSubnetGroupName"])
        groups = security.vpc_groups(  # before the port is taken
            self,
            req.get("VpcSecurityGroupIds"),
            self._subnet_group_vpc(req.get("DBSubnetGroupName")),
            egress=True,
        )
        kms_key = self._storage_key(req, inherited_key)
        backup_window = m.check_backup_window(req.get("PreferredBackupWindow")) or CLUSTER_BACKUP_WINDOW
        maintenance_window = m.maintenance_window(
            req.get("PreferredMaintenanceWindow"), backup_window, CLUSTER_MAINTENANCE_WINDOW
        )
        version = self._pick_version(info, req.get("EngineVersion"))
        param_group = self._cluster_group_for(req.get("DBClusterParameterGroupName"), info.name, version)
        port = self.fleet.ports.allocate(
            f"rds/cluster/{self.store.engine_key(cid)}/endpoint", preferred=req.get("Port")
        )
        return {
            "id": cid,
            "engine": info.name,
            "kind": info.kind,
            "engine_version": version,
            "master_username": master_username,
            "master_password": password,
            "db_name": req.get("DatabaseName"),
            "port": port,
            "status": "available",
            "created": clock.now().isoformat(),
            "members": [],
            "writer": None,
            "backup_retention": m.check_retention(req.get("BackupRetentionPeriod")) or 1,
            "backup_window": backup_window,
            "maintenance_window": maintenance_window,
            "serverless_v2": self._check_serverless(req.get("ServerlessV2ScalingConfiguration")),
            "tags": m.tags_in(req.get("Tags")),
            "storage_encrypted": kms_key is not None,
            "kms_key_id": kms_key,
            "param_group": param_group,
            "subnet_group": req.get("DBSubnetGroupName"),
            "vpc_groups": groups,
            "deletion_protection": bool(req.get("DeletionProtection")),
            "resource_id": self._resource_id("cluster"),
            "seed": None,
        }

    async def create_db_cluster(self, ctx: RequestContext, req: dict) -> dict:
        out = await self._create_db_cluster(req)
        ensure_service_linked_role(self.settings, ctx.account_id, "rds.amazonaws.com")  # as AWS does
        return out

    async def _create_db_cluster(self, req: dict) -> dict:
        if req.get("GlobalClusterIdentifier"):  # a member of a global database: global_clusters.py
            return await self._join_global_cluster(req)
        info = m.engine_info(req.get("Engine"))
        if not info.aurora:  # mysql or postgres: a Multi-AZ DB cluster (multi_az_clusters.py)
            return await self._create_multi_az_cluster(req, info)
        m.check_aurora_storage(req)
        m.check_master(req.get("MasterUsername"), req.get("MasterUserPassword"), info)
        m.check_db_name(req.get("DatabaseName"), info, "DatabaseName")
        c = self._new_cluster_doc(req, info, req["MasterUsername"], req["MasterUserPassword"])
        return await self._open_cluster(c)

    async def _open_cluster(self, c: dict) -> dict:
        """Record a new cluster `c` and route its endpoints (it has no instance yet). Under
        `--timings aws` DescribeDBClusters shows it `creating` for the profile's time (its members
        can be added meanwhile, as on AWS; strata.sim.timings)."""
        hold = timings.seconds(self.settings, "rds_cluster_create")
        if hold:
            c["creating_until"] = clock.time() + hold
        await self._encrypt_cluster(c)
        self.store.put_doc("cluster", c["id"], c)
        await run_blocking(security.guard_cluster, self, c, READER_HOST)
        await run_blocking(self._route_cluster, c)
        self._event(c["id"], "db-cluster", "DB cluster created", ["creation"])
        return {"DBCluster": self._cluster_out(c)}

    def describe_db_clusters(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("DBClusterIdentifier"):
            clusters = [self._get_cluster(req["DBClusterIdentifier"])]
        else:
            clusters = self.store.list_docs("cluster")
        clusters = filtered(
            clusters,
            req,
            {
                "clone-group-id": lambda c: None,
                "db-cluster-id": lambda c: [c["id"], m.arn(self.region, self.account, "cluster", c["id"])],
                "db-cluster-resource-id": lambda c: c.get("resource_id"),
                "domain": lambda c: None,
                "engine": lambda c: c["engine"],
            },
        )
        resp = page(clusters, req, "DBClusters")
        resp["DBClusters"] = [self._cluster_out(c) for c in resp["DBClusters"]]
        return resp

    async def modify_db_cluster(self, ctx: RequestContext, req: dict) -> dict:
        c = self._get_cluster(req.get("DBClusterIdentifier"))
        self._same_version(req, c["engine_version"], c["engine"])
        if req.get("ServerlessV2ScalingConfiguration"):
            change = merged_scaling(c.get("serverless_v2"), req["ServerlessV2ScalingConfiguration"])
            c["serverless_v2"] = self._check_serverless(change)
        if req.get("BackupRetentionPeriod") is not None:
            c["backup_retention"] = m.check_retention(req["BackupRetentionPeriod"])
        backup = m.check_backup_window(req.get("PreferredBackupWindow") or None)
        maintenance = m.check_maintenance_window(req.get("PreferredMaintenanceWindow") or None)
        if backup or maintenance:
            m.check_windows_apart(
                backup or c.get("backup_window") or CLUSTER_BACKUP_WINDOW,
                maintenance or c.get("maintenance_window") or CLUSTER_MAINTENANCE_WINDOW,
            )
        if backup:
            c["backup_window"] = backup
        if maintenance:
            c["maintenance_window"] = maintenance
        if req.get("DeletionProtection") is not None:
            c["deletion_protection"] = bool(req["DeletionProtection"])
        groups = (
            security.vpc_groups(
                self,
                req["VpcSecurityGroupIds"],
                self._subnet_group_vpc(c.get("subnet_group")),
                egress=True,
            )
            if req.get("VpcSecurityGroupIds")
            else None
        )
        if req.get("DBClusterParameterGroupName"):
            group = self._cluster_group_for(
                req["DBClusterParameterGroupName"], c["engine"], c["engine_version"]
            )
            if (group or "").lower() != (c.get("param_group") or "").lower():
                c["param_group"] = group
                # as on Aurora, the members take a newly associated group at their next reboot
                for ident in c["members"]:
                    member = self.store.get_doc("instance", ident)
                    if member is not None:
                        member["params_pending_reboot"] = True
                        self._save(member, "params_pending_reboot")
        if req.get("MasterUserPassword"):
            m.check_password(req["MasterUserPassword"])
            c["master_password"] = req["MasterUserPassword"]
            if c.get("writer"):
                writer = self._get_instance(c["writer"])
                await run_blocking(
                    self._locked,
                    writer["id"],
                    self.fleet.primary(writer).set_password,
                    req["MasterUserPassword"],
                )
        if groups is not None:
            c["vpc_groups"] = groups
        self.store.put_doc("cluster", c["id"], c)
        if groups is not None:
            await run_blocking(self._set_cluster_groups, c)
        return {"DBCluster": self._cluster_out(c)}

    def _set_cluster_groups(self, c: dict) -> None:
        """The cluster's groups onto its endpoints and every member's (a rule change applies to
        new connections at once; open ones stay, as on AWS)."""
        security.guard_cluster(self, c, READER_HOST)
        for ident in c["members"]:
            doc = self.store.get_doc("instance", ident)
            if doc is not None:
                doc["vpc_groups"] = c["vpc_groups"]
                security.guard(self, self._save(doc, "vpc_groups"))

    async def delete_db_cluster(self, ctx: RequestContext, req: dict) -> dict:
        c = self._get_cluster(req.get("DBClusterIdentifier"))
        m.check_final_snapshot_choice(req)
        if c.get("deletion_protection"):
            raise m.fault(
                "InvalidParameterCombination",
                "Cannot delete protected Cluster, please disable deletion protection.",
            )
        if c.get("global_role") == "primary":
            self._check_primary_deletable(c)
        if c.get("multi_az_cluster"):  # its instances go with it (multi_az_clusters.py)
            return await self._delete_multi_az_cluster(c, req)
        if c["members"]:
            raise m.fault(
                "InvalidDBClusterStateFault", f"Cluster {c['id']} still has instances; delete them first."
            )
        if not req.get("SkipFinalSnapshot"):
            if not req.get("FinalDBSnapshotIdentifier"):
                raise m.fault(
                    "InvalidParameterCombination",
                    "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.",
                )
            raise m.fault(
                "InvalidDBClusterStateFault", "A cluster without instances has no data to snapshot here."
            )

        await run_blocking(self._remove_cluster, c)
        return {"DBCluster": {**self._cluster_out(c), "Status": "deleting"}}

    def _remove_cluster(self, c: dict) -> None:
        """The last of a cluster without instances: endpoints, port, automated backups, record."""
        security.unguard_cluster(self, c)
        self._remove_custom_endpoints(c)
        name = self.store.engine_key(c["id"])
        self.fleet.router.remove_route(f"cluster-{name}")
        self.fleet.router.remove_route(f"cluster-ro-{name}")
        self.fleet.ports.release_prefix(f"rds/cluster/{name}/")
        for s in self.store.list_docs("cluster_snapshot"):
            if s["cluster_id"] == c["id"] and s["type"] == "automated":
                self.store.delete_doc("cluster_snapshot", s["id"])
        shutil.rmtree(self._cluster_dir(c["id"]), ignore_errors=True)
        self._remove_volume(self._cluster_volume(c["id"]))
        self.store.delete_doc("cluster", c["id"])
        self._event(c["id"], "db-cluster", "DB cluster deleted", ["deletion"])

    # -- backup records (operations and the schedule: cluster_backups.py) -------------------------

    def _cluster_backups(self, cid: str) -> list[dict]:
        snaps = [
            s
            for s in self.store.list_docs("cluster_snapshot")
            if s["cluster_id"] == cid and s["type"] == "automated" and s["status"] == "available"
        ]
        return sorted(snaps, key=lambda s: s["at"])

    def _take_cluster_backup(
        self,
        cid: str,
        *,
        automated: bool,
        snap_id: str | None = None,
        tags: dict | None = None,
        at: float | None = None,
    ) -> dict:
        c = self._get_cluster(cid)
        at = clock.time() if at is None else at
        stamp = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d-%H-%M-%S")
        snap_id = snap_id or f"rds:{cid}-{stamp}"
        if automated:  # in the cluster's directory (its volume when encrypted)
            path = self._cluster_dir(cid) / "backups" / stamp
        elif c.get("dek"):  # a volume of its own, made when its files are
            path = self.fleet.volumes.files(self._cluster_snapshot_volume(snap_id)) / "data"
        else:
            path = self.runtime.data_dir / "cluster-snapshots" / self.store.engine_key(snap_id) / "data"
        snap = {
            "id": snap_id,
            "cluster_id": cid,
            "resource_id": c.get("resource_id"),
            "engine": c["engine"],
            "kind": c["kind"],
            "engine_version": c["engine_version"],
            "master_username": c["master_username"],
            "db_name": c.get("db_name"),
            "port": c["port"],
            "status": "creating",
            "type": "automated" if automated else "manual",
            "created": clock.now().isoformat(),
            "cluster_created": c["created"],
            "path": str(path),
            "tags": tags or {},
            "at": at,
            "real_at": None,
            "encrypted": bool(c.get("dek")),  # as for instances (backups.py): what its files are
            "kms_key_id": c.get("kms_key_id") if c.get("dek") else None,
        }
        if c.get("multi_az_cluster"):  # restored as a Multi-AZ DB cluster (multi_az_clusters.py)
            snap.update(allocated_storage=c["allocated_storage"], storage_type=c["storage_type"])
        if c.get("dek") and not automated:
            snap["volume"] = self._cluster_snapshot_volume(snap_id)
        self.store.put_doc("cluster_snapshot", snap_id, snap)
        return snap

    def _fill_cluster_snapshot(self, snap_id: str) -> None:
        snap = self.store.get_doc("cluster_snapshot", snap_id)
        c = self._get_cluster(snap["cluster_id"])
        writer = self._get_instance(c["writer"])
        if snap.get("volume"):
            self._remove_volume(snap["volume"])  # left by a snapshot cut short: made again
            snap["dek"] = self._new_volume(snap["volume"], snap["kms_key_id"])
            self.store.put_doc("cluster_snapshot", snap_id, snap)
        self.fleet.base_backup(writer, Path(snap["path"]))
        snap.update(status="available", real_at=clock.real_time())
        self.store.put_doc("cluster_snapshot", snap_id, snap)
