"""DB instance operations: create, describe, delete, and metering.

Reboot, stop/start and recovery are instance_lifecycle.py's, read replicas read_replicas.py's,
ModifyDBInstance modify_instance.py's: each a subclass of InstanceOperations.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.iam.service_roles import ensure_service_linked_role
from strata.services.rds import model as m
from strata.services.rds import security
from strata.services.rds.cluster_stop import automatic_restart_time
from strata.services.rds.listing import filtered, page
from strata.services.rds.option_groups import OPTION_ENGINES, OptionGroupOperations, default_option_group
from strata.services.rds.options import HELD_OPTIONS
from strata.services.rds.parameter_groups import INSTANCE
from strata.services.rds.serverless import held_capacity
from strata.sim.clock import clock
from strata.sim.meter import meter

log = logging.getLogger("strata.rds")
INSTANCE_ARN = re.compile(r"^arn:aws[a-z-]*:rds:([a-z0-9-]+):(\d{12}):db:([A-Za-z0-9-]+)$")
STARTED_STATES = (
    "creating",
    "backing-up",
    "available",
    "modifying",
    "rebooting",
    "starting",
    "configuring-enhanced-monitoring",
)


def pending_values_out(doc: dict) -> dict:
    """PendingModifiedValues of an instance record (botocore's shape; no option group member nor
    held options: AWS shows those in OptionGroupMemberships)."""
    return {k: v for k, v in (doc.get("pending") or {}).items() if k not in ("OptionGroupName", HELD_OPTIONS)}


def option_memberships_out(doc: dict) -> list[dict]:
    """OptionGroupMemberships: the group in use, and a held change as AWS shows it."""
    current = doc.get("option_group") or default_option_group(doc["engine"], doc["engine_version"])
    pending = doc.get("pending") or {}
    if "OptionGroupName" not in pending:
        # a change of the group's options made without ApplyImmediately waits for the window
        return [
            {
                "OptionGroupName": current,
                "Status": "pending-maintenance-apply" if HELD_OPTIONS in pending else "in-sync",
            }
        ]
    new = pending["OptionGroupName"] or default_option_group(doc["engine"], doc["engine_version"])
    return [
        {"OptionGroupName": new, "Status": "pending-maintenance-apply"},
        {"OptionGroupName": current, "Status": "pending-maintenance-removal"},
    ]


class InstanceOperations(OptionGroupOperations):
    # a deleted source's replicas become standalone (read_replicas.py)
    _promote: Callable[[str], None]
    _leave_source: Callable[[dict], None]

    # -- create ------------------------------------------------------------------------------------

    def _new_instance_doc(
        self,
        req: dict,
        info: m.EngineInfo,
        master_username: str,
        *,
        az: str | None = None,
        inherited_key: str | None = None,
    ) -> dict:
        """A new instance record (ports allocated); `inherited_key` is the KMS key of what it is
        made from when that is encrypted (encryption.py), so it is encrypted too."""
        ident = m.check_identifier(req.get("DBInstanceIdentifier"))
        backup_window = m.check_backup_window(req.get("PreferredBackupWindow")) or "03:00-03:30"
        maintenance_window = m.maintenance_window(
            req.get("PreferredMaintenanceWindow"), backup_window, "sun:05:00-sun:05:30"
        )
        sg = req.get("DBSubnetGroupName")
        if sg:
            self._get_subnet_group(sg)
        # before ports are taken; a VPC's resources carry that VPC's groups
        groups = security.vpc_groups(
            self, req.get("VpcSecurityGroupIds"), self._subnet_group_vpc(sg), egress=True
        )
        if self.store.get_doc("instance", ident) is not None or self._being_encrypted(ident):
            raise m.fault("DBInstanceAlreadyExists", f"DB instance already exists: {ident}")
        kms_key = self._storage_key(req, inherited_key)
        klass = m.check_class(req.get("DBInstanceClass") or "db.t3.micro")
        az = self._instance_zone(req.get("AvailabilityZone"), az, sg)
        pg = req.get("DBParameterGroupName")
        if pg:
            self._group_of_family(pg, INSTANCE, info.name, self._pick_version(info, req.get("EngineVersion")))
        port = self.fleet.ports.allocate(
            f"rds/{self.store.engine_key(ident)}/endpoint", preferred=req.get("Port")
        )
        now = clock.now()
        return {
            "id": ident,
            "engine": info.name,
            "kind": info.kind,
            "engine_version": self._pick_version(info, req.get("EngineVersion")),
            "class": klass,
            "master_username": master_username,
            "db_name": req.get("DBName"),
            "option_group": self._option_group_for(
                req.get("OptionGroupName"), info.name, self._pick_version(info, req.get("EngineVersion"))
            ),
            "allocated_storage": int(req.get("AllocatedStorage") or 20),
            "storage_type": req.get("StorageType") or "gp2",
            "multi_az": bool(req.get("MultiAZ")),
            "az": az,
            "port": port,
            "status": "creating",
            "created": now.isoformat(),
            "backup_retention": m.check_retention(req.get("BackupRetentionPeriod")),
            "backup_window": backup_window,
            "maintenance_window": maintenance_window,
            "param_group": pg,
            "subnet_group": sg,
            "tags": m.tags_in(req.get("Tags")),
            "storage_encrypted": kms_key is not None,
            "kms_key_id": kms_key,
            "publicly_accessible": bool(req.get("PubliclyAccessible")),
            "deletion_protection": bool(req.get("DeletionProtection")),
            "copy_tags_to_snapshot": bool(req.get("CopyTagsToSnapshot")),
            "resource_id": self._resource_id("db"),
            "vpc_groups": groups,
            "nodes": {},
            "primary": None,
            "replicas": [],
            "source": None,
            "cluster": req.get("DBClusterIdentifier"),
            "backups": [],
            "metered_at": clock.time(),
        }

    async def create_db_instance(self, ctx: RequestContext, req: dict) -> dict:
        info = m.engine_info(req.get("Engine"))
        if req.get("DBClusterIdentifier"):
            return await self._create_cluster_instance(ctx, req, info)
        if info.aurora:
            raise m.fault(
                "InvalidParameterCombination",
                f"Engine {info.name} instances must belong to a DB cluster (DBClusterIdentifier).",
            )
        m.check_master(req.get("MasterUsername"), req.get("MasterUserPassword"), info)
        m.check_db_name(req.get("DBName"), info)
        m.check_promotion_tier(req.get("PromotionTier"), aurora=False)
        doc = self._new_instance_doc(req, info, req["MasterUsername"])
        self.fleet.new_node(doc, "primary", doc["az"])
        doc["primary"] = next(iter(doc["nodes"]))
        if doc["multi_az"]:
            doc["secondary_az"] = self._other_az(doc["az"], doc.get("subnet_group"))
        await self._encrypt_instance(doc)
        ensure_service_linked_role(self.settings, ctx.account_id, "rds.amazonaws.com")  # as AWS does
        self._save(doc)
        async with self._undone_on_error(doc):
            await run_blocking(security.guard, self, doc)
            self._event(doc["id"], "db-instance", "DB instance created", ["creation"])
        self._spawn(doc["id"], self._build_instance, doc["id"], req["MasterUserPassword"])
        return {"DBInstance": self._instance_out(doc)}

    @asynccontextmanager
    async def _undone_on_error(self, doc: dict) -> AsyncIterator[None]:
        """Around a Create call's work after its record is written: when that work fails, the
        record goes (with its guard, ports and volume) before the error is answered. A Create must
        either answer with the new resource or leave none: the error may be one SDKs retry (a 500),
        and their retry would otherwise meet DBInstanceAlreadyExists for an instance the caller
        was told was not made."""
        try:
            yield
        except BaseException:
            await run_blocking(self._forget_new_instance, doc)
            raise

    def _forget_new_instance(self, doc: dict) -> None:
        """Remove a just-recorded instance whose Create call failed (blocking); nothing of it runs."""
        try:
            security.unguard(self, doc)
        except Exception:  # noqa: BLE001 - the record must go regardless; the guard is logged
            log.exception("removing the guard of the failed new instance %s", doc["id"])
        self.store.delete_doc("instance", doc["id"])
        self.fleet.ports.release_prefix(f"rds/{self.store.engine_key(doc['id'])}/")
        if self.fleet.volumes.exists(self.fleet.volume_id(doc["id"])):
            self.fleet.volumes.remove(self.fleet.volume_id(doc["id"]))

    def _build_instance(self, ident: str, password: str) -> None:
        doc = self._get_instance(ident)
        params = self._params_for(doc)
        self.fleet.create_primary(doc, password, params)
        self._save(doc, "nodes", "primary", "next_node")
        self._finish_creation(doc, params)

    def _finish_creation(self, doc: dict, params: dict[str, str]) -> None:
        """After the primary serves: Multi-AZ standby, first backup, then available."""
        if doc["multi_az"] and not self.fleet.standby_name(doc):
            self.fleet.add_standby(
                doc, doc.get("secondary_az") or self._other_az(doc["az"], doc.get("subnet_group")), params
            )
            self._save(doc, "nodes", "next_node")
        if doc["backup_retention"] > 0 and not doc.get("source"):
            self._set_status(doc["id"], "backing-up")
            self._take_automated_backup(doc["id"])
        self._hold_creation(doc)
        self._set_status(doc["id"], "available")

    # -- describe ----------------------------------------------------------------------------------

    async def describe_db_instances(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("DBInstanceIdentifier"):
            docs = [self._get_instance(req["DBInstanceIdentifier"])]
        else:
            docs = self.store.list_docs("instance")
        docs = filtered(
            docs,
            req,
            {
                "db-instance-id": lambda d: [d["id"], self._arn_of(d)],
                "db-cluster-id": lambda d: (
                    [d["cluster"], m.arn(self.region, self.account, "cluster", d["cluster"])]
                    if d.get("cluster")
                    else None
                ),
                "dbi-resource-id": lambda d: d.get("resource_id"),
                "domain": lambda d: None,
                "engine": lambda d: d["engine"],
            },
        )
        resp = page(docs, req, "DBInstances")
        resp["DBInstances"] = [await run_blocking(self._instance_out, d, True) for d in resp["DBInstances"]]
        return resp

    def _arn_of(self, doc: dict) -> str:
        return m.arn(self.region, self.account, "db", doc["id"])

    def _instance_out(self, doc: dict, live: bool = False) -> dict:
        created = dt.datetime.fromisoformat(doc["created"])
        out: dict = {
            "DBInstanceIdentifier": doc["id"],
            "DBInstanceClass": doc["class"],
            "Engine": doc["engine"],
            "DBInstanceStatus": doc["status"],
            "MasterUsername": doc["master_username"],
            "Endpoint": {
                "Address": self.fleet.address,
                "Port": doc["port"],
                "HostedZoneId": "Z2R2ITUGPM61AM",
            },
            "AllocatedStorage": doc["allocated_storage"],
            "InstanceCreateTime": created,
            "PreferredBackupWindow": doc["backup_window"],
            "BackupRetentionPeriod": doc["backup_retention"],
            "DBSecurityGroups": [],
            "VpcSecurityGroups": security.rendered(doc),
            "DBParameterGroups": [
                {
                    "DBParameterGroupName": doc.get("param_group") or self._default_group_name(doc),
                    "ParameterApplyStatus": "pending-reboot"
                    if doc.get("params_pending_reboot")
                    else "in-sync",
                }
            ],
            "OptionGroupMemberships": option_memberships_out(doc) if doc["engine"] in OPTION_ENGINES else [],
            "AvailabilityZone": doc["az"],
            "PreferredMaintenanceWindow": doc["maintenance_window"],
            "PendingModifiedValues": pending_values_out(doc),
            "MultiAZ": doc["multi_az"],
            "EngineVersion": doc["engine_version"],
            "AutoMinorVersionUpgrade": True,
            "ReadReplicaDBInstanceIdentifiers": list(doc.get("replicas", [])),
            "LicenseModel": "postgresql-license" if doc["kind"] == "postgres" else "general-public-license",
            "PubliclyAccessible": doc.get("publicly_accessible", False),
            "StorageType": doc["storage_type"],
            "DbInstancePort": 0,
            "StorageEncrypted": doc["storage_encrypted"],
            "DbiResourceId": doc["resource_id"],
            "CACertificateIdentifier": "rds-ca-rsa2048-g1",
            "CopyTagsToSnapshot": doc.get("copy_tags_to_snapshot", False),
            "DBInstanceArn": self._arn_of(doc),
            "IAMDatabaseAuthenticationEnabled": False,
            "DeletionProtection": doc.get("deletion_protection", False),
            "TagList": m.tags_out(doc["tags"]),
            "PerformanceInsightsEnabled": False,
            "NetworkType": "IPV4",
        }
        if doc.get("db_name"):
            out["DBName"] = doc["db_name"]
        if doc.get("kms_key_id"):
            out["KmsKeyId"] = doc["kms_key_id"]
        if doc["multi_az"] and doc.get("secondary_az"):
            out["SecondaryAvailabilityZone"] = doc["secondary_az"]
        if doc.get("cluster"):
            out["DBClusterIdentifier"] = doc["cluster"]
            out["PromotionTier"] = doc.get("promotion_tier", 1)
        if doc.get("subnet_group"):
            out["DBSubnetGroup"] = self._subnet_group_out(self._get_subnet_group(doc["subnet_group"]))
        if doc.get("source"):
            out["ReadReplicaSourceDBInstanceIdentifier"] = doc["source"]
            out["StatusInfos"] = [
                self._replication_status(doc)
                if live
                else {"StatusType": "read replication", "Normal": True, "Status": "replicating"}
            ]
        latest = self._latest_restorable_time(doc)
        if latest is not None:
            out["LatestRestorableTime"] = latest
        restart = automatic_restart_time(doc) if not doc.get("cluster") else None
        if restart is not None:
            out["AutomaticRestartTime"] = restart
        return out

    def _replication_status(self, doc: dict) -> dict:
        status = {"StatusType": "read replication", "Normal": True, "Status": "replicating"}
        if doc["status"] != "available":
            return status
        try:
            lag = self.fleet.primary(doc).replica_lag_seconds()
        except Exception:  # noqa: BLE001 - a replica that cannot be asked is shown as broken
            return {**status, "Normal": False, "Status": "error", "Message": "replica not reachable"}
        if lag is not None:
            status["Message"] = f"ReplicaLag={lag:.3f}"
        return status

    # -- delete ------------------------------------------------------------------------------------

    async def delete_db_instance(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._get_instance(req.get("DBInstanceIdentifier"))
        m.check_final_snapshot_choice(req)
        if doc.get("deletion_protection"):
            raise m.fault(
                "InvalidParameterCombination",
                "Cannot delete protected DB Instance, please disable deletion protection and try again.",
            )
        if doc["status"] in ("deleting", "creating"):
            raise m.invalid_state(doc["id"], doc["status"])
        if doc.get("multi_az_cluster"):
            raise m.fault(
                "InvalidParameterCombination",
                f"DB instance {doc['id']} belongs to the Multi-AZ DB cluster {doc['cluster']}: delete the cluster.",
            )
        final = req.get("FinalDBSnapshotIdentifier")
        skip = bool(req.get("SkipFinalSnapshot"))
        if final and not skip and (doc.get("source") or doc.get("cluster")):
            # AWS snapshots neither: a replica's data is its source's, a cluster's is in its volume
            kind = "replica" if doc.get("source") else "cluster"
            raise m.fault(
                "InvalidParameterCombination",
                f"FinalDBSnapshotIdentifier can not be specified when deleting a {kind} instance",
            )
        if not skip and not final and not doc.get("source") and not doc.get("cluster"):
            raise m.fault(
                "InvalidParameterCombination",
                "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.",
            )
        if final and not skip:
            if doc["status"] != "available":
                raise m.invalid_state(doc["id"], doc["status"])
            self._create_snapshot_record(doc, final, [], "manual")
        doc = self._set_status(doc["id"], "deleting")
        self._spawn(doc["id"], self._delete, doc["id"], final if not skip else None)
        return {"DBInstance": self._instance_out(doc)}

    def _delete(self, ident: str, final_snapshot: str | None) -> None:
        doc = self._get_instance(ident)
        cluster = self.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
        if cluster and cluster.get("writer") == ident:  # as on AWS: a reader takes over first
            readers = [
                r
                for r in cluster["members"]
                if r != ident and (self.store.get_doc("instance", r) or {}).get("status") == "available"
            ]
            if readers:
                self._failover_cluster(cluster["id"], readers[0], rebuild=False)
                doc = self._get_instance(ident)
        if final_snapshot:
            self._fill_snapshot(final_snapshot)
        for rep_ref in doc.get("replicas", []):  # as on AWS: replicas of a deleted source become standalone
            with self._in_scope_of(rep_ref) as rep_id:
                if self.store.get_doc("instance", rep_id):
                    with self.fleet.lock(rep_id):
                        self._promote(rep_id)
        self._leave_source(doc)
        self._meter_instance(doc)
        self.fleet.destroy(doc)
        security.unguard(self, doc)  # before the record goes: a deleted instance's state is final
        for snap in self.store.list_docs("snapshot"):
            if snap.get("instance_id") == ident and snap["type"] == "automated":
                self._delete_snapshot_files(snap)
        if doc.get("cluster"):  # first: once the instance is gone, its cluster no longer lists it
            self._cluster_member_removed(doc["cluster"], ident)
        self.store.delete_doc("instance", ident)
        self._event(ident, "db-instance", "DB instance deleted", ["deletion"])

    # -- instances in other regions ----------------------------------------------------------------

    @contextmanager
    def _in_scope_of(self, ref: str) -> Iterator[str]:
        """Serve the scope of the instance `ref` names (an identifier here, or the ARN of one in
        another region of this account: a cross-region replica's source, or a source's
        cross-region replica) for the duration; yields its identifier."""
        match = INSTANCE_ARN.match(ref)
        if match is None or match.group(1) == self.region:
            yield ref.split(":")[-1].lower()
            return
        region, account, ident = match.groups()
        with self.store.acting_as(account, region):
            yield ident.lower()

    # -- metering ----------------------------------------------------------------------------------

    def _serverless_capacity(self, doc: dict) -> float:
        """The ACUs a db.serverless instance holds now (it follows load: serverless.py)."""
        cluster = self.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
        return held_capacity(doc, (cluster or {}).get("serverless_v2") or {})

    def _meter_instance(self, doc: dict) -> None:
        """Record instance-hours and storage since the last record (simulated time)."""
        now = clock.time()
        last = doc.get("metered_at") or now
        hours = max(0.0, (now - last) / 3600)
        if doc["status"] in STARTED_STATES and hours > 0 and doc["class"] == "db.serverless":
            meter.record(
                "rds",
                "ServerlessV2ACUHours",
                hours * self._serverless_capacity(doc),
                "ACU-hour",
                instance=doc["id"],
                engine=doc["engine"],
            )
        elif doc["status"] in STARTED_STATES and hours > 0:
            nodes = max(1, len(doc.get("nodes", {})))
            meter.record(
                "rds",
                "InstanceHours",
                hours * nodes,
                "hour",
                instance=doc["id"],
                instance_class=doc["class"],
                engine=doc["engine"],
                multi_az=doc["multi_az"],
            )
        if hours > 0:
            meter.record(
                "rds",
                "StorageGBHours",
                hours * doc["allocated_storage"] * (2 if doc["multi_az"] else 1),
                "GB-hour",
                instance=doc["id"],
                storage_type=doc["storage_type"],
            )
        doc["metered_at"] = now
