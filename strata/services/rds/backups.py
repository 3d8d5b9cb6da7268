"""Snapshots, automated backups and point-in-time restore.

Automated backups are the engine's own: a base backup (`pg_basebackup`) when the instance is
created and then daily in its PreferredBackupWindow of simulated time (`_backup_rule`, the
scheduler's `rds.backups` rule), plus the continuous WAL archive, kept for the retention
period. RestoreDBInstanceToPointInTime picks the newest base backup before the target and replays
the archive up to it (`recovery_target_time`), so the restored instance has every transaction
committed at or before that second and none after.

Simulated time: the engine stamps commits with real time, and `clock.to_real` maps a simulated
RestoreTime to the engine's time through the clock's advance history, so restores stay exact when
the clock was moved between the writes and the restore.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.rds import model as m
from strata.services.rds import security
from strata.services.rds.aurora_io import meter_aurora_io
from strata.services.rds.backup_storage import meter_backup_storage
from strata.services.rds.listing import filtered, page
from strata.services.rds.snapshot_sharing import DB_SNAPSHOT, SnapshotSharingOperations
from strata.sim.clock import clock
from strata.sim.windows import latest_window_start

DAY = 86400.0
DEFAULT_WINDOW = "03:00-03:30"  # what a new instance gets without PreferredBackupWindow


class BackupOperations(SnapshotSharingOperations):
    # -- snapshot records --------------------------------------------------------------------------

    def _snapshot_dir(self, snap_id: str) -> Path:
        return self.runtime.data_dir / "snapshots" / self.store.engine_key(snap_id).replace(":", "_")

    def _get_snapshot(self, snap_id: str | None, shared: bool = False, other_region: bool = False) -> dict:
        """The caller's snapshot by identifier or ARN; with `shared`, also another account's that
        it shared with the caller, named by its ARN (to describe, restore or copy it); with
        `other_region`, also the caller's own in another region (to copy it here)."""
        if not snap_id:
            raise m.fault("InvalidParameterValue", "DBSnapshotIdentifier is required.")
        foreign = self._shared_snapshot(snap_id, other_region)
        if foreign is not None:
            if not shared:
                raise m.not_found_snapshot(snap_id)
            return foreign
        snap_id = snap_id.split(":snapshot:")[-1]
        snap = self.store.get_doc("snapshot", snap_id) or self.store.get_doc("snapshot", snap_id.lower())
        if snap is None:
            raise m.not_found_snapshot(snap_id)
        return snap

    def _create_snapshot_record(
        self, doc: dict, snap_id: str, tags: list[dict] | None, kind: str, path: Path | None = None
    ) -> dict:
        if kind == "manual":
            snap_id = m.check_identifier(snap_id, "DBSnapshotIdentifier", 255)
        if self.store.get_doc("snapshot", snap_id):
            raise m.fault(
                "DBSnapshotAlreadyExists",
                f"Cannot create the snapshot because a snapshot with the "
                f"identifier {snap_id} already exists.",
            )
        tag_map = m.tags_in(tags)
        if doc.get("copy_tags_to_snapshot") and not tag_map:
            tag_map = dict(doc["tags"])
        snap = {
            "id": snap_id,
            "instance_id": doc["id"],
            "engine": doc["engine"],
            "kind": doc["kind"],
            "engine_version": doc["engine_version"],
            "master_username": doc["master_username"],
            "db_name": doc.get("db_name"),
            "port": doc["port"],
            "az": doc["az"],
            "status": "creating",
            "type": kind,
            "created": clock.now().isoformat(),
            "instance_created": doc["created"],
            "allocated_storage": doc["allocated_storage"],
            "storage_type": doc["storage_type"],
            # what its files really are: an instance recorded as encrypted before Strata encrypted
            # (no volume key) gives plain snapshots
            "encrypted": bool(doc.get("dek")),
            "kms_key_id": doc.get("kms_key_id") if doc.get("dek") else None,
            "tags": tag_map,
            "path": str(path or self._snapshot_dir(snap_id) / "data"),
            "resource_id": doc["resource_id"],
            "real_at": None,
            "at": None,
        }
        if snap["encrypted"] and path is None:  # a manual snapshot outlives its instance: a volume of its own
            snap["volume"] = self._snapshot_volume(snap)
            snap["path"] = str(self._encrypted_snapshot_path(snap))
        self.store.put_doc("snapshot", snap_id, snap)
        return snap

    def _fill_snapshot(self, snap_id: str, at: float | None = None) -> None:
        """Take the base backup a snapshot record names (blocking); `at` overrides its time."""
        snap = self._get_snapshot(snap_id)
        doc = self._get_instance(snap["instance_id"])
        started = clock.time() if at is None else at
        if snap.get("volume"):
            self._make_snapshot_volume(snap)
        self.fleet.base_backup(doc, Path(snap["path"]))
        snap = self._get_snapshot(snap_id)
        # `at` (shown as SnapshotCreateTime, used by the schedule) is when the backup began;
        # `real_at` (engine time) is when it ended: the earliest moment it can be restored to.
        snap.update(status="available", real_at=clock.real_time(), at=started)
        self.store.put_doc("snapshot", snap["id"], snap)
        self._event(
            snap["id"],
            "db-snapshot",
            "Manual snapshot created" if snap["type"] == "manual" else "Automated snapshot created",
            ["creation", "backup"],
        )

    def _delete_snapshot_files(self, snap: dict) -> None:
        shutil.rmtree(
            Path(snap["path"]).parent if snap["type"] != "automated" else Path(snap["path"]),
            ignore_errors=True,
        )
        self._remove_snapshot_volume(snap)
        self.store.delete_doc("snapshot", snap["id"])

    def _snapshot_out(self, s: dict) -> dict:
        created = (
            dt.datetime.fromtimestamp(s["at"], dt.UTC)
            if s.get("at")
            else dt.datetime.fromisoformat(s["created"])
        )
        name, snap_arn = self._snapshot_names(s, DB_SNAPSHOT)
        out = {
            "DBSnapshotIdentifier": name,  # another account's shared snapshot: its ARN, as RDS lists it
            "DBInstanceIdentifier": s["instance_id"],
            "SnapshotCreateTime": created,
            "Engine": s["engine"],
            "AllocatedStorage": s["allocated_storage"],
            "Status": s["status"],
            "Port": s["port"],
            "AvailabilityZone": s["az"],
            "VpcId": "vpc-strata0000000000",
            "InstanceCreateTime": dt.datetime.fromisoformat(s["instance_created"]),
            "MasterUsername": s["master_username"],
            "EngineVersion": s["engine_version"],
            "LicenseModel": "postgresql-license" if s["kind"] == "postgres" else "general-public-license",
            "SnapshotType": s["type"],
            "PercentProgress": 100 if s["status"] == "available" else 0,
            "StorageType": s["storage_type"],
            "Encrypted": s["encrypted"],
            "DbiResourceId": s["resource_id"],
            "DBSnapshotArn": snap_arn,
            "IAMDatabaseAuthenticationEnabled": False,
            "TagList": m.tags_out(s.get("tags", {})),
            "OriginalSnapshotCreateTime": created,
            "SnapshotTarget": "region",
        }
        if s.get("kms_key_id"):
            out["KmsKeyId"] = s["kms_key_id"]
        if s.get("source_snapshot"):
            out["SourceDBSnapshotIdentifier"] = s["source_snapshot"]
        return out

    # -- snapshot operations -----------------------------------------------------------------------

    def create_db_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "DBSnapshotIdentifier", "DBInstanceIdentifier")
        doc = self._get_instance(req["DBInstanceIdentifier"])
        if doc["status"] != "available":
            raise m.invalid_state(doc["id"], doc["status"])
        snap = self._create_snapshot_record(doc, req["DBSnapshotIdentifier"], req.get("Tags"), "manual")
        self._spawn(doc["id"], self._fill_snapshot, snap["id"])
        return {"DBSnapshot": self._snapshot_out(snap)}

    def describe_db_snapshots(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("DBSnapshotIdentifier"):
            snaps = [self._get_snapshot(req["DBSnapshotIdentifier"], shared=True)]
        else:
            snaps = self.store.list_docs("snapshot")
            if req.get("SnapshotType") in ("shared", "public"):
                snaps = []
            shared = req.get("IncludeShared") or req.get("SnapshotType") == "shared"
            public = req.get("IncludePublic") or req.get("SnapshotType") == "public"
            snaps += self._snapshots_shared_with_me(public=bool(public), shared=bool(shared))
        if req.get("DBInstanceIdentifier"):
            snaps = [s for s in snaps if s["instance_id"] == req["DBInstanceIdentifier"].lower()]
        if req.get("SnapshotType") not in (None, "shared", "public"):
            snaps = [s for s in snaps if s["type"] == req["SnapshotType"]]
        if req.get("DbiResourceId"):
            snaps = [s for s in snaps if s.get("resource_id") == req["DbiResourceId"]]
        snaps = filtered(
            snaps,
            req,
            {
                "db-instance-id": lambda s: [
                    s["instance_id"],
                    m.arn(self.region, self.account, "db", s["instance_id"]),
                ],
                "db-snapshot-id": lambda s: s["id"],
                "dbi-resource-id": lambda s: s.get("resource_id"),
                "snapshot-type": lambda s: s["type"],
                "engine": lambda s: s["engine"],
            },
        )
        resp = page(snaps, req, "DBSnapshots")
        resp["DBSnapshots"] = [self._snapshot_out(s) for s in resp["DBSnapshots"]]
        return resp

    def delete_db_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        snap = self._get_snapshot(req.get("DBSnapshotIdentifier"))
        if snap["type"] == "automated":
            raise m.fault(
                "InvalidDBSnapshotState", "Automated snapshots are deleted with their retention period."
            )
        if snap["status"] == "creating":
            raise m.fault("InvalidDBSnapshotState", f"Snapshot {snap['id']} is still being created.")
        self._delete_snapshot_files(snap)
        self._event(snap["id"], "db-snapshot", "Manual snapshot deleted", ["deletion"])
        return {"DBSnapshot": {**self._snapshot_out(snap), "Status": "deleted"}}

    def copy_db_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "SourceDBSnapshotIdentifier", "TargetDBSnapshotIdentifier")
        src = self._get_snapshot(req["SourceDBSnapshotIdentifier"], shared=True, other_region=True)
        elsewhere = (self.store.owner(src), self.store.region_of(src)) != (self.account, self.region)
        if elsewhere and self.store.region_of(src) != self.region and src.get("encrypted"):
            raise m.fault(
                "InvalidParameterCombination",
                "Strata does not copy encrypted snapshots between regions (its KMS keys are regional).",
            )
        if src["status"] != "available":
            raise m.fault("InvalidDBSnapshotState", f"Snapshot {src['id']} is not available.")
        target = m.check_identifier(req["TargetDBSnapshotIdentifier"], "TargetDBSnapshotIdentifier", 255)
        if self.store.get_doc("snapshot", target):
            raise m.fault("DBSnapshotAlreadyExists", f"Snapshot {target} already exists.")
        tags = m.tags_in(req.get("Tags")) or (dict(src.get("tags", {})) if req.get("CopyTags") else {})
        # A copy is encrypted when its source is (under KmsKeyId if given), or when KmsKeyId is given.
        kms_key = self._storage_key(
            {"StorageEncrypted": bool(req.get("KmsKeyId")), "KmsKeyId": req.get("KmsKeyId")},
            src.get("kms_key_id") if src.get("encrypted") else None,
        )
        # the copy is the caller's, here (a source's owner, region and sharing stay with it)
        snap = {
            **{k: val for k, val in src.items() if k not in ("account", "region", "restore")},
            "id": target,
            "type": "manual",
            "status": "creating",
            "tags": tags,
            "path": str(self._snapshot_dir(target) / "data"),
            "source_snapshot": self._snapshot_out(src)["DBSnapshotArn"] if elsewhere else src["id"],
            "encrypted": kms_key is not None,
            "kms_key_id": kms_key,
            "volume": None,
            "dek": None,
        }
        if kms_key is not None:
            snap["volume"] = self._snapshot_volume(snap)
            snap["path"] = str(self._encrypted_snapshot_path(snap))
        self.store.put_doc("snapshot", target, snap)
        self._spawn(f"snapshot:{target}", self._copy_snapshot, src["path"], target)
        return {"DBSnapshot": self._snapshot_out(snap)}

    def _copy_snapshot(self, src_path: str, target: str) -> None:
        snap = self._get_snapshot(target)
        if snap.get("volume"):
            self._make_snapshot_volume(snap)
        dest = Path(snap["path"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src_path, dest, symlinks=True, dirs_exist_ok=True)
        snap["status"] = "available"
        self.store.put_doc("snapshot", target, snap)
        self._event(target, "db-snapshot", "Snapshot copy finished", ["creation"])

    async def restore_db_instance_from_db_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "DBInstanceIdentifier", "DBSnapshotIdentifier")
        snap = self._get_snapshot(req["DBSnapshotIdentifier"], shared=True)
        if snap["status"] != "available":
            raise m.fault("InvalidDBSnapshotState", f"Snapshot {snap['id']} is not available.")
        info = m.ENGINES[snap["engine"]]
        req = self._same_version(req, snap["engine_version"], info.name)
        doc = self._new_instance_doc(
            {"AllocatedStorage": snap["allocated_storage"], **req},
            info,
            snap["master_username"],
            inherited_key=snap.get("kms_key_id") if snap.get("encrypted") else None,
        )
        doc["db_name"] = snap.get("db_name")
        self.fleet.new_node(doc, "primary", doc["az"])
        doc["primary"] = next(iter(doc["nodes"]))
        if doc["multi_az"]:
            doc["secondary_az"] = self._other_az(doc["az"], doc.get("subnet_group"))
        await self._encrypt_instance(doc)
        self._save(doc)
        await run_blocking(security.guard, self, doc)
        self._event(doc["id"], "db-instance", f"Restored from snapshot {snap['id']}", ["restoration"])
        self._spawn(doc["id"], self._restore_snapshot, doc["id"], snap["path"])
        return {"DBInstance": self._instance_out(doc)}

    def _restore_snapshot(self, ident: str, path: str) -> None:
        doc = self._get_instance(ident)
        params = self._params_for(doc)
        self.fleet.restore(doc, Path(path), params)
        self._save(doc, "nodes", "primary", "next_node")
        self._finish_creation(doc, params)

    # -- automated backups and point-in-time restore ----------------------------------------------

    def _automated_backups(self, ident: str) -> list[dict]:
        snaps = [
            s
            for s in self.store.list_docs("snapshot", prefix=f"rds:{ident}-")
            if s["type"] == "automated" and s["status"] == "available" and s["instance_id"] == ident
        ]
        return sorted(snaps, key=lambda s: s["at"])

    def _take_automated_backup(self, ident: str, at: float | None = None) -> None:
        """Take an automated backup now (blocking); `at` is the simulated instant it is stamped
        with: the window it fell due in (the schedule), or now (creation, promotion)."""
        doc = self._get_instance(ident)
        when = clock.time() if at is None else at
        stamp = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%d-%H-%M-%S")
        snap_id = f"rds:{ident}-{stamp}"
        stale = self.store.get_doc("snapshot", snap_id)
        if stale is not None:
            if stale["status"] == "available":
                return  # this window's backup was taken already
            self._delete_snapshot_files(stale)  # cut short by a stop or a kill: taken again
        path = self.fleet.instance_dir(ident) / "backups" / stamp
        self._event(ident, "db-instance", "Backing up DB instance", ["backup"])
        self._create_snapshot_record(doc, snap_id, None, "automated", path=path)
        self._fill_snapshot(snap_id, at=at)
        self._event(ident, "db-instance", "Finished DB Instance backup", ["backup"])
        self._prune_backups(doc)

    def _latest_restorable_time(self, doc: dict) -> dt.datetime | None:
        if doc.get("backup_retention", 0) == 0 or doc.get("source") or not doc.get("backups_started", True):
            return None
        if not self._automated_backups(doc["id"]):
            return None
        at = doc.get("stopped_at") if doc["status"] == "stopped" else clock.time()
        return dt.datetime.fromtimestamp(int(at), dt.UTC)

    async def restore_db_instance_to_point_in_time(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "TargetDBInstanceIdentifier")
        src_id = req.get("SourceDBInstanceIdentifier")
        if not src_id and req.get("SourceDbiResourceId"):
            src_id = next(
                (
                    d["id"]
                    for d in self.store.list_docs("instance")
                    if d["resource_id"] == req["SourceDbiResourceId"]
                ),
                None,
            )
        source = self._get_instance(src_id)
        backups = self._automated_backups(source["id"])
        if source["backup_retention"] == 0 or not backups:
            raise m.fault(
                "PointInTimeRestoreNotEnabled",
                f"Point-in-time restore is not enabled for DB instance {source['id']} "
                "(automated backups are off or the first backup has not finished).",
            )
        latest = self._latest_restorable_time(source)
        use_latest = bool(req.get("UseLatestRestorableTime"))
        restore_time = req.get("RestoreTime")
        if use_latest == bool(restore_time):
            raise m.fault(
                "InvalidParameterCombination",
                "Specify exactly one of RestoreTime or UseLatestRestorableTime.",
            )
        target_ts = None
        if restore_time:
            target_ts = restore_time.timestamp()
            earliest = clock.to_simulated(backups[0]["real_at"])
            if target_ts > clock.time() or (latest is not None and target_ts > latest.timestamp() + 1):
                raise m.fault(
                    "InvalidRestoreFault", "The restore time must be before the latest restorable time."
                )
            if target_ts < earliest:
                raise m.fault(
                    "InvalidRestoreFault",
                    "The restore time is before the earliest restorable time of the source instance.",
                )
        info = m.ENGINES[source["engine"]]
        req = self._same_version(req, source["engine_version"], info.name)
        req2 = {
            "AllocatedStorage": source["allocated_storage"],
            "DBInstanceClass": source["class"],
            "BackupRetentionPeriod": source["backup_retention"],
            **req,
            "DBInstanceIdentifier": req["TargetDBInstanceIdentifier"],
        }
        doc = self._new_instance_doc(
            req2, info, source["master_username"], inherited_key=source.get("kms_key_id")
        )
        doc["db_name"] = source.get("db_name")
        self.fleet.new_node(doc, "primary", doc["az"])
        doc["primary"] = next(iter(doc["nodes"]))
        if doc["multi_az"]:
            doc["secondary_az"] = self._other_az(doc["az"], doc.get("subnet_group"))
        await self._encrypt_instance(doc)
        self._save(doc)
        await run_blocking(security.guard, self, doc)
        self._event(doc["id"], "db-instance", f"Restoring {source['id']} to a point in time", ["restoration"])
        self._spawn(doc["id"], self._restore_pitr, doc["id"], source["id"], target_ts)
        return {"DBInstance": self._instance_out(doc)}

    def _restore_pitr(self, ident: str, source_id: str, target_ts: float | None) -> None:
        source = self._get_instance(source_id)
        with self.fleet.lock(source_id):
            self.fleet.prepare_pitr(source)
        target_real = None if target_ts is None else clock.to_real(target_ts)
        backups = [
            b
            for b in self._automated_backups(source_id)
            if target_real is None or b["real_at"] <= target_real
        ]
        if not backups:
            raise RuntimeError("no base backup precedes the restore time")
        target = None if target_real is None else dt.datetime.fromtimestamp(target_real, dt.UTC).isoformat()
        doc = self._get_instance(ident)
        params = self._params_for(doc)
        self.fleet.restore(
            doc, Path(backups[-1]["path"]), params, archive=self.fleet.archive_of(source), target_time=target
        )
        self._save(doc, "nodes", "primary", "next_node")
        self._finish_creation(doc, params)

    # -- the schedule ------------------------------------------------------------------------------

    async def _backup_rule(self, since: float, until: float) -> dict[str, int]:
        """The scheduler's `rds.backups` rule: automated backups of instances and clusters in
        their daily PreferredBackupWindow, and pruning past BackupRetentionPeriod.

        A backup is due when the latest window opening at or before `until` is newer than the
        instance's newest automated backup; it is stamped with that opening (its identifier and
        SnapshotCreateTime), so running again to the same `until`, or after a restart, finds it
        and does nothing. Simplification: AWS keeps one backup per day; a real base backup takes
        real time, so a jump over many windows takes one backup, for the latest window, and the
        missed days have none (point-in-time restore still covers them through the WAL archive
        and the older base backup kept as the window's start). The backups run in the
        background (`_spawn`), never in this rule's task nor on the request path; an instance
        busy with other work is counted "deferred" and backed up once that work ends (`_poke_scheduler`).
        """
        counts = {"backups": 0, "deferred": 0, "pruned": 0}
        for doc in self.store.list_docs("instance"):
            with self.store.acting_for(doc):
                self._backup_instance(doc, until, counts)
        self._run_cluster_schedule(until, counts)
        # metering only: not in the counts (they say what backups the run took or pruned)
        await run_blocking(meter_backup_storage, self.store, since, until)
        await run_blocking(meter_aurora_io, self, since, until)
        return counts

    def _backup_instance(self, doc: dict, until: float, counts: dict[str, int] | None = None) -> None:
        """Meter `doc`, then take its due backup or prune (see `_backup_rule`)."""
        counts = counts if counts is not None else {}
        wanted = not doc.get("source") and doc["backup_retention"] > 0
        backups = self._automated_backups(doc["id"]) if wanted else []
        try:
            due = latest_window_start(doc.get("backup_window") or DEFAULT_WINDOW, until)
        except ValueError:  # recorded before windows were checked: the default one
            due = latest_window_start(DEFAULT_WINDOW, until)
        if self._is_busy(doc["id"]):  # its work may rewrite the record: metered and backed up after
            self._backup_retry.add(self.store.engine_key(doc["id"]))
            if wanted and backups and backups[-1]["at"] < due:
                counts["deferred"] = counts.get("deferred", 0) + 1
            return
        self._meter_instance(doc)
        self._save(doc, "metered_at")
        if not wanted or doc["status"] != "available":
            return
        if not backups or backups[-1]["at"] < due:
            self._spawn(doc["id"], self._take_automated_backup, doc["id"], due if backups else None)
            counts["backups"] = counts.get("backups", 0) + 1
        else:
            counts["pruned"] = counts.get("pruned", 0) + self._prune_backups(doc, until)

    def _run_schedule(self) -> None:
        """Metering (every 30 s and on clock moves), and the backups skipped while busy."""
        retry, self._backup_retry = self._backup_retry, set()
        now = clock.time()
        for doc in self.store.list_docs("instance"):
            with self.store.acting_for(doc):
                if self._is_busy(doc["id"]):
                    if self.store.engine_key(doc["id"]) in retry:
                        self._backup_retry.add(self.store.engine_key(doc["id"]))
                    continue
                if self.store.engine_key(doc["id"]) in retry:
                    self._backup_instance(doc, now)
                else:
                    self._meter_instance(doc)
                    self._save(doc, "metered_at")
        if retry:  # a cluster whose writer was busy, too
            self._run_cluster_schedule(now, {})

    def _prune_backups(self, doc: dict, now: float | None = None) -> int:
        """Drop automated backups no restore inside the retention window needs (the newest one
        older than the window stays: it is the base for the window's earliest seconds)."""
        window_start = (clock.time() if now is None else now) - doc["backup_retention"] * DAY
        backups = self._automated_backups(doc["id"])
        older = [b for b in backups if b["at"] <= window_start]
        for b in older[:-1]:
            self._delete_snapshot_files(b)
        return len(older[:-1])
