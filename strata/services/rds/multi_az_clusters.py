"""Multi-AZ DB clusters: CreateDBCluster with engine mysql or postgres makes one writer and two
readable standbys, each a real engine in its own Availability Zone, behind the cluster's writer
and reader endpoints.

They share the Aurora cluster machinery (clusters.py): the cluster record, its endpoints, the
members' engine replication, FailoverDBCluster. What differs is kept here: the cluster makes its
three DB instances itself (`<cluster>-instance-1..3`, no CreateDBInstance may add one, no
DeleteDBInstance may remove one), each with the cluster's instance class and storage, and
DeleteDBCluster takes them with it (after its final DB cluster snapshot, if asked for). Storage is
gp3: io1/io2 need Iops, which Strata does not honour (as for DB instances), so they are refused.

Their snapshots are DB cluster snapshots, as on AWS, taken and kept as an Aurora cluster's
(cluster_backups.py): the writer's base backup, with the cluster's WAL/binlog archive for a
point-in-time restore. A restore (RestoreDBClusterFromSnapshot with DBClusterInstanceClass, or
RestoreDBClusterToPointInTime) makes a new Multi-AZ DB cluster: the writer is built from the
backup (the source's synchronous-standby setting stripped, see the engines' `restore_from`), the
two standbys stream from it and semi-synchronous replication is set for the new standbys.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from strata.services.base import run_blocking
from strata.services.rds import model as m
from strata.services.rds import security
from strata.services.rds.cluster_members import ClusterMemberOperations

log = logging.getLogger("strata.rds")

ENGINES = ("mysql", "postgres")  # as on AWS: no MariaDB Multi-AZ DB clusters
MEMBERS = 3
MAX_ID = 52  # AWS: a Multi-AZ DB cluster identifier has 1 to 52 characters
STORAGE_GIB = (20, 65536)  # gp3


class MultiAZClusterOperations(ClusterMemberOperations):
    _new_instance_doc: Callable[..., dict]  # instances.py
    _encrypt_instance: Callable  # encryption.py
    _remove_volume: Callable[[str], None]  # encryption.py
    _delete: Callable[[str, str | None], None]  # instances.py
    _event: Callable[..., None]  # groups.py

    def _check_multi_az_request(
        self, req: dict, info: m.EngineInfo, restore: bool = False
    ) -> tuple[str, int, list[str]]:
        """AWS's requirements of a Multi-AZ DB cluster; its instance class, storage and zones. A
        `restore` takes its master user and database from the snapshot or source cluster."""
        if info.name not in ENGINES:
            raise m.fault(
                "InvalidParameterValue",
                f"Invalid DB engine {info.name}: DB clusters run aurora-mysql, aurora-postgresql "
                "(Aurora) or mysql, postgres (Multi-AZ DB clusters).",
            )
        m.check_identifier(req.get("DBClusterIdentifier"), "DBClusterIdentifier", MAX_ID)
        self._require(req, "DBClusterInstanceClass", "AllocatedStorage")
        klass = m.check_class(req["DBClusterInstanceClass"])
        if klass == "db.serverless" or req.get("ServerlessV2ScalingConfiguration"):
            raise m.fault(
                "InvalidParameterCombination", "Aurora Serverless v2 is for Aurora DB clusters only."
            )
        storage = int(req["AllocatedStorage"])
        if not STORAGE_GIB[0] <= storage <= STORAGE_GIB[1]:
            raise m.fault(
                "InvalidParameterValue",
                f"Invalid storage size for gp3: {storage} GiB (from {STORAGE_GIB[0]} to {STORAGE_GIB[1]}).",
            )
        if (req.get("StorageType") or "io1") != "gp3":
            raise m.fault(
                "InvalidParameterCombination",
                f"StorageType {req.get('StorageType') or 'io1'}: Strata runs Multi-AZ DB clusters on gp3 "
                "storage (Provisioned IOPS are not honoured); set StorageType gp3.",
            )
        zones = sorted({s["az"] for s in self._subnets_of(req.get("DBSubnetGroupName"))}) or self._azs()
        if len(zones) < MEMBERS:
            raise m.fault(
                "DBSubnetGroupDoesNotCoverEnoughAZs",
                "DB subnet group doesn't meet Availability Zone (AZ) coverage requirement. Current AZ "
                f"coverage: {', '.join(zones)}. Add subnets to cover at least 3 AZs.",
            )
        if not restore:
            m.check_master(req.get("MasterUsername"), req.get("MasterUserPassword"), info)
            m.check_db_name(req.get("DatabaseName"), info, "DatabaseName")
        return klass, storage, zones[:MEMBERS]

    async def _create_multi_az_cluster(
        self,
        req: dict,
        info: m.EngineInfo,
        seed: dict | None = None,
        master: tuple[str, str | None] | None = None,
        inherited_key: str | None = None,
    ) -> dict:
        """A new Multi-AZ DB cluster; a restore gives the `seed` its writer is built from (see
        clusters.py `_build_cluster_instance`), the source's `master` user and its KMS key."""
        klass, storage, zones = self._check_multi_az_request(req, info, restore=seed is not None)
        cid = req["DBClusterIdentifier"].lower()
        if self.store.get_doc("cluster", cid):  # before its instances' names, which it has
            raise m.fault("DBClusterAlreadyExistsFault", f"DB cluster {cid} already exists.")
        names = [f"{cid}-instance-{i}" for i in range(1, MEMBERS + 1)]
        for name in names:
            if self.store.get_doc("instance", name) is not None:
                raise m.fault("DBInstanceAlreadyExists", f"DB instance already exists: {name}")
        user, password = master or (req["MasterUsername"], req["MasterUserPassword"])
        c = self._new_cluster_doc(req, info, user, password, inherited_key=inherited_key)
        c.update(multi_az_cluster=True, instance_class=klass, allocated_storage=storage, storage_type="gp3")
        c["seed"] = seed
        out = await self._open_cluster(c)
        for name, az in zip(names, zones, strict=True):
            await self._add_member(c["id"], name, az, info)
        self._spawn(names[0], self._build_members, c["id"], names)
        out["DBCluster"] = self._cluster_out(self._get_cluster(c["id"]))
        return out

    async def _add_member(self, cid: str, ident: str, az: str, info: m.EngineInfo) -> None:
        c = self._get_cluster(cid)
        doc = self._new_instance_doc(
            {
                "DBInstanceIdentifier": ident,
                "DBInstanceClass": c["instance_class"],
                "AllocatedStorage": c["allocated_storage"],
                "StorageType": c["storage_type"],
                **self._same_version({}, c["engine_version"], info.name),
                "AvailabilityZone": az,
                "DBSubnetGroupName": c.get("subnet_group"),
                "VpcSecurityGroupIds": security.member_groups(self, c, None),
                "BackupRetentionPeriod": 0,
            },
            info,
            c["master_username"],
            inherited_key=c.get("kms_key_id"),
        )
        await self._encrypt_instance(doc)
        c = self._get_cluster(cid)
        doc.update(
            cluster=cid,
            multi_az_cluster=True,
            db_name=c.get("db_name"),
            archive_dir=str(self._cluster_dir(cid) / "archive"),
            cluster_role="writer" if not c.get("writer") else "reader",
        )
        self.fleet.new_node(doc, "primary", doc["az"])
        doc["primary"] = next(iter(doc["nodes"]))
        self._save(doc)
        await run_blocking(security.guard, self, doc)
        c["members"].append(ident)
        if doc["cluster_role"] == "writer":
            c["writer"] = ident
        self.store.put_doc("cluster", cid, c)

    def _build_members(self, cid: str, names: list[str]) -> None:
        """The writer first (initdb), then the two standbys streaming from it; then commits wait
        for one of them."""
        for name in names:
            self._build_cluster_instance(name, cid)
        self._semi_sync(self._get_cluster(cid))

    def _semi_sync(self, c: dict, on: bool = True) -> None:
        """Semi-synchronous replication, as AWS runs a Multi-AZ DB cluster: a commit on the writer
        returns once one of the two standbys has it (or, `on` False, at once)."""
        writer = self._get_instance(c["writer"])
        standbys = [i for i in c["members"] if i != writer["id"]]
        self.fleet.primary(writer).set_sync_standby(on, standbys)

    def _multi_az_out(self, c: dict) -> dict:
        zones = [(self.store.get_doc("instance", i) or {}).get("az") for i in c["members"]]
        return {
            "DBClusterInstanceClass": c["instance_class"],
            "AllocatedStorage": c["allocated_storage"],
            "StorageType": c["storage_type"],
            "AvailabilityZones": sorted(z for z in zones if z),
            "PubliclyAccessible": False,
            "AutoMinorVersionUpgrade": False,
        }

    async def _delete_multi_az_cluster(self, c: dict, req: dict) -> dict:
        final = None if req.get("SkipFinalSnapshot") else req.get("FinalDBSnapshotIdentifier")
        if not req.get("SkipFinalSnapshot") and not final:
            raise m.fault(
                "InvalidParameterCombination",
                "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.",
            )
        if final:
            final = m.check_identifier(final, "FinalDBSnapshotIdentifier", 255)
            if self.store.get_doc("cluster_snapshot", final):
                raise m.fault("DBClusterSnapshotAlreadyExistsFault", f"Snapshot {final} already exists.")
        busy = [
            i for i in c["members"] if (self.store.get_doc("instance", i) or {}).get("status") != "available"
        ]
        if c["status"] != "available" or busy or not c.get("writer"):
            raise m.fault("InvalidDBClusterStateFault", f"DB cluster {c['id']} is not available.")
        if final:  # taken from the writer before the instances go (`_delete_members`)
            self._take_cluster_backup(c["id"], automated=False, snap_id=final)
            c = self._get_cluster(c["id"])
        c["status"] = "deleting"
        self.store.put_doc("cluster", c["id"], c)
        for ident in c["members"]:
            self._set_status(ident, "deleting")
        self._spawn(f"cluster:{c['id']}", self._delete_members, c["id"], final)
        return {"DBCluster": self._cluster_out(c)}

    def _delete_members(self, cid: str, final: str | None = None) -> None:
        """The final snapshot, the standbys, then the writer (no failover on the way), then the
        cluster."""
        c = self._get_cluster(cid)
        if final and c.get("writer"):
            try:
                with self.fleet.lock(c["writer"]):
                    self._fill_cluster_snapshot(final)
            except Exception as e:  # noqa: BLE001 - the cluster stays: its data has no copy
                log.exception("final snapshot %s of %s failed", final, cid)
                self._keep_cluster(c, final, str(e))
                return
        if c.get("writer"):  # else its commits would wait for the standbys deleted first
            with self.fleet.lock(c["writer"]):
                self._semi_sync(c, on=False)
        for ident in sorted(c["members"], key=lambda i: i == c.get("writer")):
            with self.fleet.lock(ident):
                self._delete(ident, None)
        self._remove_cluster(self._get_cluster(cid))

    def _keep_cluster(self, c: dict, final: str, error: str) -> None:
        """Its final snapshot failed: the cluster and its instances are kept (available again) and
        the half-made snapshot goes."""
        snap = self.store.get_doc("cluster_snapshot", final)
        if snap is not None:
            shutil.rmtree(Path(snap["path"]).parent, ignore_errors=True)
            if snap.get("volume"):
                self._remove_volume(snap["volume"])
            self.store.delete_doc("cluster_snapshot", final)
        for ident in c["members"]:
            self._set_status(ident, "available")
        c = self._get_cluster(c["id"])
        c["status"] = "available"
        self.store.put_doc("cluster", c["id"], c)
        self._event(c["id"], "db-cluster", f"Final snapshot failed, cluster kept: {error[:300]}", ["failure"])
