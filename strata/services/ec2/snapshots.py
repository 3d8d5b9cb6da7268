"""EBS snapshots: create (one volume, or every volume of an instance), describe, delete, copy
(across regions), and who may restore them (createVolumePermission).

A snapshot of a plain volume is taken by a background job (`volume_files.SnapshotJob`): it maps
the volume's last snapshot's blocks and copies the blocks written since, point-in-time however
the volume is written meanwhile; it is `pending` with Progress rising until the job is done. A
snapshot of an encrypted volume is a copy of its block map (instant). Either way it stores only
the blocks no other snapshot holds, and shows `pending` for at least a moment (`states`). It
lives in one region; a copy lives in the region the copy was asked in.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.ec2 import limits as lim
from strata.services.ec2.limits import GIB
from strata.services.ec2.query import matching, page, spec_tags, tag_list
from strata.services.ec2.states import SECONDS, snapshot_pending
from strata.services.ec2.volume_files import FileDevice, SnapshotJob
from strata.services.ec2.volumes import _iso
from strata.sim.clock import clock
from strata.sim.meter import meter

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider


def current_state(doc: dict) -> str:
    """A snapshot's state now: one the EBS direct APIs left pending past its Timeout is `error`;
    a completed one shows pending for its first moments."""
    if doc["state"] == "pending" and clock.time() > doc["start"] + doc.get("timeout", 60) * 60:
        return "error"
    if doc["state"] == "completed" and (doc.get("job") or doc.get("source")) and snapshot_pending(doc):
        return "pending"
    return doc["state"]


def _snapshot_values(doc: dict, name: str) -> list[str] | None:
    simple = {
        "snapshot-id": doc["id"],
        "volume-id": doc["volume_id"],
        "volume-size": doc["volume_size"],
        "status": current_state(doc),
        "owner-id": doc["account"],
        "description": doc.get("description") or "",
        "encrypted": doc["encrypted"],
        "progress": "100%" if current_state(doc) == "completed" else "0%",
        "start-time": _iso(doc["start"]).isoformat(),
        "storage-tier": "standard",
    }
    return [simple[name]] if name in simple else None


class SnapshotsMixin:
    """Mixed into EC2Provider."""

    def _snapshot(
        self: EC2Provider, ctx: RequestContext, snapshot_id: str | None, region: str | None = None
    ) -> dict:
        lim.check_id("snap", snapshot_id)
        doc = self.store.get_doc("snapshot", snapshot_id or "")
        if doc is None or doc["region"] != (region or ctx.region):
            raise lim.snapshot_not_found(snapshot_id or "")
        return doc

    def _may_restore(self: EC2Provider, ctx: RequestContext, doc: dict) -> bool:
        perms = doc.get("permissions") or {}
        return (
            doc["account"] == ctx.account_id
            or ctx.account_id in perms.get("users", [])
            or "all" in perms.get("groups", [])
        )

    def _snapshot_for_restore(
        self: EC2Provider, ctx: RequestContext, snapshot_id: str, region: str | None = None
    ) -> dict:
        doc = self._snapshot(ctx, snapshot_id, region)
        if not self._may_restore(ctx, doc):
            raise lim.snapshot_not_found(snapshot_id)
        state = current_state(doc)
        if state != "completed":
            raise lim.fault("IncorrectState", f"Snapshot is in invalid state - {state}")
        return doc

    def _owned_snapshot(self: EC2Provider, ctx: RequestContext, snapshot_id: str | None) -> dict:
        doc = self._snapshot(ctx, snapshot_id)
        if doc["account"] != ctx.account_id:
            raise lim.snapshot_not_found(snapshot_id or "")
        return doc

    def _progress(self: EC2Provider, doc: dict, state: str) -> str:
        if state == "completed":
            return "100%"
        job = self.snapshot_jobs.get(doc["id"])
        if job is not None:
            return f"{min(99, job.progress())}%"  # 100% only once the record says completed
        if doc["state"] == "completed":  # only its first moments left
            share = (clock.time() - doc["start"]) / SECONDS["pending"]
            return f"{max(0, min(99, int(100 * share)))}%"
        return "0%"

    def _render_snapshot(self: EC2Provider, doc: dict, state: str | None = None) -> dict:
        state = state or current_state(doc)
        out: dict[str, Any] = {
            "SnapshotId": doc["id"],
            "VolumeId": doc["volume_id"],
            "State": state,
            "StartTime": _iso(doc["start"]),
            "Progress": self._progress(doc, state),
            "OwnerId": doc["account"],
            "Description": doc.get("description") or "",
            "VolumeSize": doc["volume_size"],
            "Encrypted": doc["encrypted"],
            "StorageTier": "standard",
            "FullSnapshotSizeInBytes": doc.get("full_bytes", 0),
        }
        if state == "completed":
            out["CompletionTime"] = _iso(
                max(doc.get("completed", doc["start"]), doc["start"] + SECONDS["pending"])
            )
        if doc["encrypted"]:
            out["KmsKeyId"] = doc["kms_key"]
        if doc.get("tags"):
            out["Tags"] = tag_list(doc["tags"])
        return out

    def _take_snapshot(
        self: EC2Provider, ctx: RequestContext, volume: dict, description: str, tags: dict
    ) -> dict:
        """Blocking: record a snapshot of the volume and start taking it (runs off the event loop)."""
        snapshot_id = lim.new_id("snap")
        previous = [
            d
            for d in self.store.list_docs("snapshot")
            if d["volume_id"] == volume["id"] and d["region"] == volume["region"]
        ]
        previous.sort(key=lambda d: d["start"])
        doc = {
            "id": snapshot_id,
            "account": ctx.account_id,
            "region": volume["region"],
            "volume_id": volume["id"],
            "volume_size": volume["size"],
            "state": "pending",
            "job": True,
            "start": clock.time(),
            "description": description,
            "encrypted": volume["encrypted"],
            "kms_key": volume.get("kms_key"),
            "dek": volume.get("dek"),
            "tags": tags,
            "permissions": {"users": [], "groups": []},
            "parent": previous[-1]["id"] if previous else None,
            "incremental_bytes": 0,
            "full_bytes": 0,
        }
        self.store.put_doc("snapshot", snapshot_id, doc)
        dev = self.blocks.device(volume["id"], volume["size"] * GIB, self.crypto.sealer(ctx, volume))
        if isinstance(dev, FileDevice):
            job = dev.start_snapshot(snapshot_id, self._snapshot_usable)
            self.snapshot_jobs[snapshot_id] = job
            threading.Thread(
                target=self._run_snapshot_job, args=(dev, job), name=f"ebs-{snapshot_id}", daemon=True
            ).start()
            return doc
        with dev._lock:
            dev.flush()
            self.blocks.copy_map(volume["id"], snapshot_id)
        return self._snapshot_done(snapshot_id, None)

    def _snapshot_usable(self: EC2Provider, snapshot_id: str) -> bool:
        doc = self.store.get_doc("snapshot", snapshot_id)
        return doc is not None and doc["state"] != "error"

    def _run_snapshot_job(self: EC2Provider, dev: FileDevice, job: SnapshotJob) -> None:
        try:
            dev.run_job(job)
            self._snapshot_done(job.snapshot_id, job.failed)
        finally:
            self.snapshot_jobs.pop(job.snapshot_id, None)

    def _snapshot_done(self: EC2Provider, snapshot_id: str, failed: Exception | None) -> dict:
        """A snapshot's blocks are all in: count what it stores, mark it completed (or error)."""
        doc = self.store.get_doc("snapshot", snapshot_id)
        if doc is None:  # deleted meanwhile
            return {}
        new_bytes = self.blocks.stored_bytes(snapshot_id, besides=doc.get("parent"))
        doc.update(
            state="error" if failed is not None else "completed",
            completed=clock.time(),
            incremental_bytes=new_bytes,
            full_bytes=self.blocks.stored_bytes(snapshot_id),
        )
        self.store.put_doc("snapshot", snapshot_id, doc)
        meter.record("ec2", "SnapshotStored", new_bytes, "byte", snapshot=snapshot_id, region=doc["region"])
        return doc

    async def create_snapshot(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        volume = self._volume(ctx, req.get("VolumeId"))
        tags = spec_tags(req, "snapshot")
        if req.get("DryRun"):
            raise lim.dry_run()
        doc = await run_blocking(self._take_snapshot, ctx, volume, req.get("Description") or "", tags)
        return self._render_snapshot(doc, "pending")

    async def create_snapshots(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        spec = req.get("InstanceSpecification") or {}
        instance = self._instance(ctx, spec.get("InstanceId"))
        excluded = set(spec.get("ExcludeDataVolumeIds") or [])
        tags = spec_tags(req, "snapshot")
        volumes = [v for v, _ in self._attached(ctx, instance["InstanceId"]) if v["id"] not in excluded]
        if req.get("DryRun"):
            raise lim.dry_run()
        out = []
        for volume in volumes:
            own = dict(volume.get("tags") or {}) if req.get("CopyTagsFromSource") == "volume" else {}
            own.update(tags)
            doc = await run_blocking(self._take_snapshot, ctx, volume, req.get("Description") or "", own)
            info = self._render_snapshot(doc, "pending")
            out.append({k: info[k] for k in info if k in _SNAPSHOT_INFO})
        return {"Snapshots": out}

    def describe_snapshots(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        docs = [d for d in self.store.list_docs("snapshot") if d["region"] == ctx.region]
        ids = req.get("SnapshotIds") or []
        owners = req.get("OwnerIds") or []
        restorable = req.get("RestorableByUserIds") or []
        if ids:
            for snapshot_id in ids:
                lim.check_id("snap", snapshot_id)
            by_id = {d["id"]: d for d in docs if self._may_restore(ctx, d)}
            missing = [s for s in ids if s not in by_id]
            if missing:
                raise lim.snapshot_not_found(missing[0])
            docs = [by_id[s] for s in dict.fromkeys(ids)]
        else:
            docs = [d for d in docs if self._may_restore(ctx, d)]
        if owners:
            wanted = {ctx.account_id if o == "self" else o for o in owners}
            docs = [d for d in docs if d["account"] in wanted]
        if restorable:
            docs = [d for d in docs if any(self._restorable_by(d, u, ctx) for u in restorable)]
        docs = matching(docs, req.get("Filters"), _snapshot_values)
        shown, token = page(docs, req, low=5, high=1000, ids_member="SnapshotIds")
        if req.get("DryRun"):
            raise lim.dry_run()
        out: dict[str, Any] = {"Snapshots": [self._render_snapshot(d) for d in shown]}
        if token:
            out["NextToken"] = token
        return out

    @staticmethod
    def _restorable_by(doc: dict, user: str, ctx: RequestContext) -> bool:
        perms = doc.get("permissions") or {}
        if user == "all":
            return "all" in perms.get("groups", [])
        user = ctx.account_id if user == "self" else user
        return doc["account"] == user or user in perms.get("users", []) or "all" in perms.get("groups", [])

    async def delete_snapshot(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        doc = self._owned_snapshot(ctx, req.get("SnapshotId"))
        if req.get("DryRun"):
            raise lim.dry_run()
        job = self.snapshot_jobs.get(doc["id"])
        if job is not None:  # its blocks are still coming in: let them, then free them
            await run_blocking(job.finished.wait)
        self.store.delete_doc("snapshot", doc["id"])
        await run_blocking(self.blocks.drop, doc["id"])
        meter.record("ec2", "SnapshotDeleted", doc.get("incremental_bytes", 0), "byte", snapshot=doc["id"])
        return {}

    async def copy_snapshot(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        source_region = req.get("SourceRegion")
        if not source_region:
            raise lim.missing("SourceRegion")
        if source_region not in self._regions():
            raise lim.invalid(f"Invalid region: {source_region}")
        source = self._snapshot_for_restore(ctx, req.get("SourceSnapshotId"), source_region)
        tags = spec_tags(req, "snapshot")
        encrypted = bool(req.get("Encrypted")) or source["encrypted"] or self.crypto.by_default(ctx)
        if req.get("KmsKeyId") and not req.get("Encrypted"):
            raise lim.combination("The parameter KmsKeyId requires the parameter Encrypted to be set.")
        kms_key = None
        if encrypted:
            if req.get("KmsKeyId"):
                kms_key = self.crypto.resolve(ctx, req["KmsKeyId"])
            elif source["encrypted"] and source_region == ctx.region:
                kms_key = source["kms_key"]
            else:
                kms_key = self.crypto.default_key(ctx)
        if req.get("DryRun"):
            raise lim.dry_run()
        doc = await run_blocking(self._copy, ctx, source, encrypted, kms_key, req.get("Description"), tags)
        return {"SnapshotId": doc["id"], "Tags": tag_list(tags)}

    def _copy(
        self: EC2Provider,
        ctx: RequestContext,
        source: dict,
        encrypted: bool,
        kms_key: str | None,
        description: str | None,
        tags: dict,
    ) -> dict:
        snapshot_id = lim.new_id("snap")
        dek = None
        if encrypted and source["encrypted"] and source["kms_key"] == kms_key:
            dek = source["dek"]
            self.blocks.copy_map(source["id"], snapshot_id)
        elif encrypted:
            dek, plain = self.crypto.new_data_key(ctx, kms_key or "")
            sealer = self.crypto.remember(dek, plain)
            self.blocks.copy_resealed(source["id"], self.crypto.sealer(ctx, source), snapshot_id, sealer)
        else:
            self.blocks.copy_map(source["id"], snapshot_id)
        doc = {
            "id": snapshot_id,
            "account": ctx.account_id,
            "region": ctx.region,
            "volume_id": "vol-ffffffff",  # AWS: copies name no volume of the destination
            "volume_size": source["volume_size"],
            "state": "completed",
            "start": clock.time(),
            "description": description if description is not None else source.get("description", ""),
            "encrypted": encrypted,
            "kms_key": kms_key,
            "dek": dek,
            "tags": tags,
            "permissions": {"users": [], "groups": []},
            "parent": None,
            "source": source["id"],
            "incremental_bytes": self.blocks.stored_bytes(snapshot_id),
            "full_bytes": self.blocks.stored_bytes(snapshot_id),
        }
        self.store.put_doc("snapshot", snapshot_id, doc)
        meter.record(
            "ec2", "SnapshotStored", doc["incremental_bytes"], "byte", snapshot=snapshot_id, region=ctx.region
        )
        return doc

    # -- createVolumePermission ----------------------------------------------------------------------

    def describe_snapshot_attribute(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        doc = self._owned_snapshot(ctx, req.get("SnapshotId"))
        attribute = req.get("Attribute")
        out: dict[str, Any] = {"SnapshotId": doc["id"]}
        if attribute == "createVolumePermission":
            perms = doc.get("permissions") or {}
            out["CreateVolumePermissions"] = [{"Group": g} for g in perms.get("groups", [])] + [
                {"UserId": u} for u in perms.get("users", [])
            ]
        elif attribute == "productCodes":
            out["ProductCodes"] = []
        else:
            raise lim.invalid(f"Value ({attribute}) for parameter attribute is invalid.")
        return out

    def modify_snapshot_attribute(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        doc = self._owned_snapshot(ctx, req.get("SnapshotId"))
        attribute = req.get("Attribute") or "createVolumePermission"
        if attribute != "createVolumePermission":
            raise lim.invalid(f"Value ({attribute}) for parameter attribute is invalid.")
        perms = doc.setdefault("permissions", {"users": [], "groups": []})
        changes = req.get("CreateVolumePermission") or {}
        add = list(changes.get("Add") or [])
        remove = list(changes.get("Remove") or [])
        op = req.get("OperationType")
        extra = [{"UserId": u} for u in req.get("UserIds") or []] + [
            {"Group": g} for g in req.get("GroupNames") or []
        ]
        if extra:
            if op not in ("add", "remove"):
                raise lim.missing("OperationType")
            (add if op == "add" else remove).extend(extra)
        if not add and not remove:
            raise lim.missing("CreateVolumePermission")
        for entry in add + remove:
            if entry.get("Group") not in (None, "all"):
                raise lim.invalid(f"Value ({entry['Group']}) for parameter group is invalid.")
            if entry.get("UserId") is not None and not (
                entry["UserId"].isdigit() and len(entry["UserId"]) == 12
            ):
                raise lim.invalid(f"Value ({entry['UserId']}) for parameter userId is invalid.")
        if doc["encrypted"] and any(e.get("Group") == "all" for e in add):
            raise lim.invalid("Encrypted snapshots cannot be made public.")
        if req.get("DryRun"):
            raise lim.dry_run()
        for entry in add:
            key, value = ("groups", entry["Group"]) if entry.get("Group") else ("users", entry.get("UserId"))
            if value and value not in perms[key]:
                perms[key].append(value)
        for entry in remove:
            key, value = ("groups", entry["Group"]) if entry.get("Group") else ("users", entry.get("UserId"))
            if value in perms[key]:
                perms[key].remove(value)
        self.store.put_doc("snapshot", doc["id"], doc)
        return {}

    def reset_snapshot_attribute(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        doc = self._owned_snapshot(ctx, req.get("SnapshotId"))
        if req.get("Attribute") != "createVolumePermission":
            raise lim.invalid(f"Value ({req.get('Attribute')}) for parameter attribute is invalid.")
        if req.get("DryRun"):
            raise lim.dry_run()
        doc["permissions"] = {"users": [], "groups": []}
        self.store.put_doc("snapshot", doc["id"], doc)
        return {}


_SNAPSHOT_INFO = {
    "Description",
    "Tags",
    "Encrypted",
    "VolumeId",
    "State",
    "VolumeSize",
    "StartTime",
    "Progress",
    "OwnerId",
    "SnapshotId",
}
