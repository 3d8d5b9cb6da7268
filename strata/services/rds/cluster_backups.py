"""Aurora cluster backups, snapshots and restores: the daily automated cluster backup (part of
the `rds.backups` rule), Create/Describe/Delete/CopyDBClusterSnapshot, RestoreDBClusterFromSnapshot
and RestoreDBClusterToPointInTime. The backups are the writer's base backups plus the cluster's
WAL/binlog archive, so a restore is the cluster's whichever instance was writing (clusters.py).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.rds import model as m
from strata.services.rds import security
from strata.services.rds.clusters import CLUSTER_BACKUP_WINDOW, READER_HOST, ClusterOperations
from strata.services.rds.listing import filtered, page
from strata.services.rds.snapshot_sharing import CLUSTER_SNAPSHOT, SnapshotSharingOperations
from strata.sim.clock import clock
from strata.sim.windows import latest_window_start


def _check_restorable(info: m.EngineInfo, source_engine: str, req: dict) -> None:
    """An Aurora snapshot restores as an Aurora cluster, a Multi-AZ DB cluster's as a Multi-AZ DB
    cluster (multi_az_clusters.py), whose settings an Aurora cluster refuses."""
    if info.aurora != m.ENGINES[source_engine].aurora:
        raise m.fault(
            "InvalidParameterCombination",
            f"Engine {info.name}: the source is a{'n Aurora' if not info.aurora else ' Multi-AZ'} DB "
            f"cluster's ({source_engine}).",
        )
    if info.aurora:
        m.check_aurora_storage(req)


class ClusterBackupOperations(ClusterOperations, SnapshotSharingOperations):
    def _get_cluster_snapshot(self, ident: str | None, shared: bool = False) -> dict:
        """The caller's cluster snapshot by identifier or ARN; with `shared`, also another
        account's that it shared with the caller, named by its ARN (to describe or restore it)."""
        foreign = self._shared_snapshot(ident or "", kind=CLUSTER_SNAPSHOT)
        if foreign is not None:
            if not shared:
                raise CLUSTER_SNAPSHOT.not_found(ident or "")
            return foreign
        return self._own_snapshot(ident or "", CLUSTER_SNAPSHOT)

    def _run_cluster_schedule(self, until: float, counts: dict[str, int]) -> None:
        """Part of the `rds.backups` rule (backups.py): a cluster with a writer is backed up in
        its daily PreferredBackupWindow, stamped with the window's opening, once per window
        however far the clock jumped; backups no restore in the retention period needs go."""
        for c in self.store.list_docs("cluster"):
            with self.store.acting_for(c):
                writer = c.get("writer")
                if not writer or c["status"] != "available":
                    continue
                backups = self._cluster_backups(c["id"])
                try:
                    due = latest_window_start(c.get("backup_window") or CLUSTER_BACKUP_WINDOW, until)
                except ValueError:  # recorded before windows were checked
                    due = latest_window_start(CLUSTER_BACKUP_WINDOW, until)
                if self._is_busy(writer):  # done when its work ends (backups.py `_run_schedule`)
                    self._backup_retry.add(self.store.engine_key(writer))
                    if backups and backups[-1]["at"] < due:
                        counts["deferred"] = counts.get("deferred", 0) + 1
                    continue
                w = self.store.get_doc("instance", writer)
                if w and w.get("paused"):
                    # A paused Serverless v2 writer is not resumed (AWS backs up from storage):
                    # nothing changed since it paused and the archive holds all of it (serverless.py).
                    counts["skipped"] = counts.get("skipped", 0) + 1
                    counts["pruned"] = counts.get("pruned", 0) + self._prune_cluster_backups(c, until)
                elif w and w["status"] == "available" and backups and backups[-1]["at"] < due:
                    snap = self._take_cluster_backup(c["id"], automated=True, at=due)
                    self._spawn(writer, self._fill_cluster_snapshot, snap["id"])
                    counts["backups"] = counts.get("backups", 0) + 1
                else:
                    counts["pruned"] = counts.get("pruned", 0) + self._prune_cluster_backups(c, until)

    def _prune_cluster_backups(self, c: dict, now: float) -> int:
        """As for instances: the newest backup older than the retention period stays as its base."""
        window_start = now - c["backup_retention"] * 86400
        older = [b for b in self._cluster_backups(c["id"]) if b["at"] <= window_start]
        for b in older[:-1]:
            shutil.rmtree(Path(b["path"]), ignore_errors=True)
            self.store.delete_doc("cluster_snapshot", b["id"])
        return len(older[:-1])

    def _cluster_snapshot_out(self, s: dict) -> dict:
        created = dt.datetime.fromtimestamp(s["at"], dt.UTC)
        name, snap_arn = self._snapshot_names(s, CLUSTER_SNAPSHOT)
        out = {
            "DBClusterSnapshotIdentifier": name,
            "DBClusterIdentifier": s["cluster_id"],
            "SnapshotCreateTime": created,
            "Engine": s["engine"],
            "EngineMode": "provisioned",
            "AllocatedStorage": s.get("allocated_storage") or 1,
            "Status": s["status"],
            "Port": s["port"],
            "VpcId": "vpc-strata0000000000",
            "ClusterCreateTime": dt.datetime.fromisoformat(s["cluster_created"]),
            "MasterUsername": s["master_username"],
            "EngineVersion": s["engine_version"],
            "LicenseModel": s["engine"],
            "SnapshotType": s["type"],
            "PercentProgress": 100 if s["status"] == "available" else 0,
            "StorageEncrypted": s["encrypted"],
            "DBClusterSnapshotArn": snap_arn,
            "IAMDatabaseAuthenticationEnabled": False,
            "TagList": m.tags_out(s.get("tags", {})),
            "AvailabilityZones": self._azs()[:3],
        }
        if s.get("kms_key_id"):
            out["KmsKeyId"] = s["kms_key_id"]
        if s.get("storage_type"):  # a Multi-AZ DB cluster's
            out["StorageType"] = s["storage_type"]
        if s.get("source_snapshot"):
            out["SourceDBClusterSnapshotArn"] = s["source_snapshot"]
        return out

    def create_db_cluster_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        c = self._get_cluster(req.get("DBClusterIdentifier"))
        snap_id = m.check_identifier(
            req.get("DBClusterSnapshotIdentifier"), "DBClusterSnapshotIdentifier", 255
        )
        if self.store.get_doc("cluster_snapshot", snap_id):
            raise m.fault("DBClusterSnapshotAlreadyExistsFault", f"Snapshot {snap_id} already exists.")
        if not c.get("writer") or self._get_instance(c["writer"])["status"] != "available":
            raise m.fault(
                "InvalidDBClusterStateFault", f"Cluster {c['id']} has no available writer instance."
            )
        snap = self._take_cluster_backup(
            c["id"], automated=False, snap_id=snap_id, tags=m.tags_in(req.get("Tags"))
        )
        self._spawn(c["writer"], self._fill_cluster_snapshot, snap_id)
        return {"DBClusterSnapshot": self._cluster_snapshot_out(snap)}

    def describe_db_cluster_snapshots(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("DBClusterSnapshotIdentifier"):
            snaps = [self._get_cluster_snapshot(req["DBClusterSnapshotIdentifier"], shared=True)]
        else:
            snaps = self.store.list_docs("cluster_snapshot")
            if req.get("SnapshotType") in ("shared", "public"):
                snaps = []
            shared = req.get("IncludeShared") or req.get("SnapshotType") == "shared"
            public = req.get("IncludePublic") or req.get("SnapshotType") == "public"
            snaps += self._snapshots_shared_with_me(bool(public), bool(shared), CLUSTER_SNAPSHOT)
        if req.get("DBClusterIdentifier"):
            snaps = [s for s in snaps if s["cluster_id"] == req["DBClusterIdentifier"].lower()]
        if req.get("SnapshotType") not in (None, "shared", "public"):
            snaps = [s for s in snaps if s["type"] == req["SnapshotType"]]
        if req.get("DbClusterResourceId"):
            snaps = [s for s in snaps if s.get("resource_id") == req["DbClusterResourceId"]]
        snaps = filtered(
            snaps,
            req,
            {
                "db-cluster-id": lambda s: [
                    s["cluster_id"],
                    m.arn(self.region, self.account, "cluster", s["cluster_id"]),
                ],
                "db-cluster-snapshot-id": lambda s: s["id"],
                "snapshot-type": lambda s: s["type"],
                "engine": lambda s: s["engine"],
            },
        )
        resp = page(snaps, req, "DBClusterSnapshots")
        resp["DBClusterSnapshots"] = [self._cluster_snapshot_out(s) for s in resp["DBClusterSnapshots"]]
        return resp

    def delete_db_cluster_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        snap = self._get_cluster_snapshot(req.get("DBClusterSnapshotIdentifier"))
        if snap["type"] != "manual":
            raise m.fault("DBClusterSnapshotNotFoundFault", "DBClusterSnapshot not found.", 404)
        shutil.rmtree(Path(snap["path"]).parent, ignore_errors=True)
        if snap.get("volume"):
            self._remove_volume(snap["volume"])
        self.store.delete_doc("cluster_snapshot", snap["id"])
        return {"DBClusterSnapshot": {**self._cluster_snapshot_out(snap), "Status": "deleted"}}

    def copy_db_cluster_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        """A manual copy of a cluster snapshot: the caller's (automated or manual), one shared with
        it by another account, or its own in another region, named by ARN (cross-region copy).
        The copy's files are the source's base backup, copied in the background ("copying")."""
        ident = req.get("SourceDBClusterSnapshotIdentifier") or ""
        src = self._shared_snapshot(ident, other_region=True, kind=CLUSTER_SNAPSHOT) or self._own_snapshot(
            ident, CLUSTER_SNAPSHOT
        )
        if src["status"] != "available":
            raise m.fault(CLUSTER_SNAPSHOT.invalid_state, f"DBClusterSnapshot {src['id']} is not available.")
        owner, region = self.store.owner(src), self.store.region_of(src)
        if req.get("KmsKeyId") and not src.get("encrypted"):
            raise m.fault(
                "InvalidParameterCombination",
                "An unencrypted DB cluster snapshot can't be encrypted by copying it.",
            )
        if src.get("encrypted") and region != self.region:
            raise m.fault(
                "InvalidParameterCombination",
                "Strata does not copy encrypted snapshots between regions (its KMS keys are regional).",
            )
        if src.get("encrypted") and owner != self.account and not req.get("KmsKeyId"):
            raise m.fault(
                "InvalidParameterCombination",
                "KmsKeyId is required to copy an encrypted DB cluster snapshot shared from another account.",
            )
        target = m.check_identifier(
            req.get("TargetDBClusterSnapshotIdentifier"), "TargetDBClusterSnapshotIdentifier", 63
        )
        if self.store.get_doc("cluster_snapshot", target):
            raise m.fault("DBClusterSnapshotAlreadyExistsFault", f"Snapshot {target} already exists.")
        inherited = src.get("kms_key_id") if src.get("encrypted") else None
        kms_key = self._storage_key({"KmsKeyId": req.get("KmsKeyId")}, inherited) if inherited else None
        tags = m.tags_in(req.get("Tags")) or (dict(src.get("tags", {})) if req.get("CopyTags") else {})
        volume = self._cluster_snapshot_volume(target) if kms_key else None
        if volume:
            path = self.fleet.volumes.files(volume) / "data"
        else:
            path = self.runtime.data_dir / "cluster-snapshots" / self.store.engine_key(target) / "data"
        # the copy is the caller's, here (the source's owner, region and sharing stay with it)
        snap = {
            **{k: v for k, v in src.items() if k not in ("account", "region", "restore")},
            "id": target,
            "type": "manual",
            "status": "copying",
            "created": clock.now().isoformat(),
            "tags": tags,
            "path": str(path),
            "source_snapshot": self._snapshot_names(src, CLUSTER_SNAPSHOT)[1],
            "encrypted": kms_key is not None,
            "kms_key_id": kms_key,
            "volume": volume,
            "dek": None,
        }
        self.store.put_doc("cluster_snapshot", target, snap)
        self._spawn(f"cluster-snapshot:{target}", self._copy_cluster_snapshot, src["path"], target)
        return {"DBClusterSnapshot": self._cluster_snapshot_out(snap)}

    def _copy_cluster_snapshot(self, src_path: str, target: str) -> None:
        snap = self.store.get_doc("cluster_snapshot", target)
        if snap is None:  # deleted while it waited: AWS's way of cancelling a copy
            return
        try:
            if snap.get("volume"):
                self._remove_volume(snap["volume"])  # left by a copy cut short: made again
                snap["dek"] = self._new_volume(snap["volume"], snap["kms_key_id"])
                self.store.put_doc("cluster_snapshot", target, snap)
            dest = Path(snap["path"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src_path, dest, symlinks=True, dirs_exist_ok=True)
        except Exception:
            # the source went away (or its volume is locked): no half-made copy stays listed
            shutil.rmtree(Path(snap["path"]).parent, ignore_errors=True)
            if snap.get("volume"):
                self._remove_volume(snap["volume"])
            self.store.delete_doc("cluster_snapshot", target)
            raise
        if self.store.get_doc("cluster_snapshot", target) is None:  # deleted while copying
            shutil.rmtree(dest.parent, ignore_errors=True)
            return
        snap["status"] = "available"
        self.store.put_doc("cluster_snapshot", target, snap)

    async def restore_db_cluster_from_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        snap = self._get_cluster_snapshot(req.get("SnapshotIdentifier"), shared=True)
        if snap["status"] != "available":
            raise m.fault(
                "DBClusterSnapshotNotFoundFault",
                f"DBClusterSnapshot {req.get('SnapshotIdentifier')} not found.",
                404,
            )
        info = m.engine_info(req.get("Engine") or snap["engine"])
        _check_restorable(info, snap["engine"], req)
        req = self._same_version(req, snap["engine_version"], info.name)
        key = snap.get("kms_key_id") if snap.get("encrypted") else None
        if not info.aurora:  # a new Multi-AZ DB cluster with its three instances
            restored = {
                "DatabaseName": snap.get("db_name"),
                "AllocatedStorage": snap.get("allocated_storage"),
                "StorageType": snap.get("storage_type"),
                **req,
                "StorageEncrypted": bool(req.get("KmsKeyId")),
            }
            seed = {"backup": snap["path"]}
            return await self._create_multi_az_cluster(
                restored, info, seed, (snap["master_username"], None), key
            )
        c = self._new_cluster_doc(
            {"DatabaseName": snap.get("db_name"), **req, "StorageEncrypted": bool(req.get("KmsKeyId"))},
            info,
            snap["master_username"],
            None,
            inherited_key=key,
        )
        c["seed"] = {"backup": snap["path"]}
        await self._encrypt_cluster(c)
        self.store.put_doc("cluster", c["id"], c)
        await run_blocking(security.guard_cluster, self, c, READER_HOST)
        await run_blocking(self._route_cluster, c)
        return {"DBCluster": self._cluster_out(c)}

    async def restore_db_cluster_to_point_in_time(self, ctx: RequestContext, req: dict) -> dict:
        src = self._get_cluster(req.get("SourceDBClusterIdentifier"))
        _check_restorable(m.ENGINES[src["engine"]], src["engine"], req)
        backups = self._cluster_backups(src["id"])
        if not backups or not src.get("writer"):
            raise m.fault(
                "InvalidDBClusterStateFault", f"Cluster {src['id']} has no automated backup to restore from."
            )
        if bool(req.get("UseLatestRestorableTime")) == bool(req.get("RestoreToTime")):
            raise m.fault(
                "InvalidParameterCombination",
                "Specify exactly one of RestoreToTime or UseLatestRestorableTime.",
            )
        target_real = None
        if req.get("RestoreToTime"):
            ts = req["RestoreToTime"].timestamp()
            if ts > clock.time() or ts < clock.to_simulated(backups[0]["real_at"]):
                raise m.fault("InvalidRestoreFault", "The restore time is outside the restorable window.")
            target_real = clock.to_real(ts)
        writer = self._get_instance(src["writer"])
        await run_blocking(self._locked, writer["id"], self.fleet.prepare_pitr, writer)
        base = [b for b in backups if target_real is None or b["real_at"] <= target_real][-1]
        info = m.ENGINES[src["engine"]]
        req = self._same_version(req, src["engine_version"], info.name)
        restored = {
            "DatabaseName": src.get("db_name"),
            "BackupRetentionPeriod": src["backup_retention"],
            **req,
            "StorageEncrypted": bool(req.get("KmsKeyId")),
        }
        seed = {
            "backup": base["path"],
            "archive": str(self._cluster_dir(src["id"]) / "archive"),
            "target": None
            if target_real is None
            else dt.datetime.fromtimestamp(target_real, dt.UTC).isoformat(),
        }
        master = (src["master_username"], src.get("master_password"))
        if src.get("multi_az_cluster"):  # a new Multi-AZ DB cluster, by default of the source's kind
            restored = {
                "DBClusterInstanceClass": src["instance_class"],
                "AllocatedStorage": src["allocated_storage"],
                "StorageType": src["storage_type"],
                **restored,
            }
            out = await self._create_multi_az_cluster(restored, info, seed, master, src.get("kms_key_id"))
        else:
            c = self._new_cluster_doc(restored, info, *master, inherited_key=src.get("kms_key_id"))
            c["seed"] = seed
            await self._encrypt_cluster(c)
            self.store.put_doc("cluster", c["id"], c)
            await run_blocking(security.guard_cluster, self, c, READER_HOST)
            await run_blocking(self._route_cluster, c)
            out = {"DBCluster": self._cluster_out(c)}
        cid = out["DBCluster"]["DBClusterIdentifier"]
        self._event(cid, "db-cluster", f"Restored from {src['id']} to a point in time", ["restoration"])
        return out
