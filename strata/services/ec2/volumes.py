"""EBS volumes: create (empty or from a snapshot), describe, delete, modify, attributes, status.

A volume record (`kind="volume"`) holds what DescribeVolumes shows; its data is a sparse file
(plain volumes) or a block map (encrypted ones) in the BlockStore. A volume is `creating` for a
moment (`states`), then `available`; a restore shares the snapshot's blocks and loads them lazily,
as AWS does. ModifyVolume's modifying -> optimizing -> completed progress is derived from the
simulated clock.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.ec2 import limits as lim
from strata.services.ec2.query import matching, page, spec_tags, tag_list
from strata.services.ec2.states import SECONDS, attachments, volume_state
from strata.sim.clock import clock
from strata.sim.meter import meter

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider

MODIFYING_SECONDS = 60.0
OPTIMIZING_SECONDS_PER_GIB = 1.0
OPTIMIZING_MIN_SECONDS = 300.0


def _iso(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


def modification_state(mod: dict, now: float) -> tuple[str, int]:
    """(state, progress %) of a modification started at mod["start"], as of `now`."""
    elapsed = now - mod["start"]
    optimizing = max(OPTIMIZING_MIN_SECONDS, mod["target"]["size"] * OPTIMIZING_SECONDS_PER_GIB)
    if elapsed < MODIFYING_SECONDS:
        return "modifying", int(50 * elapsed / MODIFYING_SECONDS)
    if elapsed < MODIFYING_SECONDS + optimizing:
        return "optimizing", 50 + int(50 * (elapsed - MODIFYING_SECONDS) / optimizing)
    return "completed", 100


def _volume_values(doc: dict, name: str) -> list[str] | None:
    atts = attachments(doc)
    per_attachment = {
        "attachment.instance-id": lambda a: a["instance"],
        "attachment.device": lambda a: a["device"],
        "attachment.status": lambda a: a["state"],
        "attachment.delete-on-termination": lambda a: False,
        "attachment.attach-time": lambda a: _iso(a["time"]).isoformat(),
    }
    if name in per_attachment:
        return [per_attachment[name](a) for a in atts]
    simple = {
        "volume-id": doc["id"],
        "availability-zone": doc["az"],
        "size": doc["size"],
        "volume-type": doc["type"],
        "snapshot-id": doc.get("snapshot_id") or "",
        "encrypted": doc["encrypted"],
        "status": _state(doc),
        "create-time": _iso(doc["created"]).isoformat(),
        "multi-attach-enabled": doc.get("multi_attach", False),
        "fast-restored": False,
    }
    return [simple[name]] if name in simple else None


def _state(doc: dict) -> str:
    return volume_state(doc)


class VolumesMixin:
    """Mixed into EC2Provider."""

    def _volume(self: EC2Provider, ctx: RequestContext, volume_id: str | None) -> dict:
        lim.check_id("vol", volume_id)
        doc = self.store.get_doc("volume", volume_id or "")
        if doc is None or doc["region"] != ctx.region or doc["account"] != ctx.account_id:
            raise lim.volume_not_found(volume_id or "")
        return doc

    def _render_volume(self: EC2Provider, doc: dict, state: str | None = None) -> dict:
        out: dict[str, Any] = {
            "VolumeId": doc["id"],
            "Size": doc["size"],
            "AvailabilityZone": doc["az"],
            "State": state or _state(doc),
            "CreateTime": _iso(doc["created"]),
            "VolumeType": doc["type"],
            "Encrypted": doc["encrypted"],
            "MultiAttachEnabled": doc.get("multi_attach", False),
            "SnapshotId": doc.get("snapshot_id") or "",
            "Attachments": [],
        }
        if doc.get("iops") is not None:
            out["Iops"] = doc["iops"]
        if doc.get("throughput") is not None:
            out["Throughput"] = doc["throughput"]
        if doc["encrypted"]:
            out["KmsKeyId"] = doc["kms_key"]
        if doc.get("tags"):
            out["Tags"] = tag_list(doc["tags"])
        out["Attachments"] = [
            {
                "AttachTime": _iso(att["time"]),
                "Device": att["device"],
                "InstanceId": att["instance"],
                "State": att["state"],
                "VolumeId": doc["id"],
                "DeleteOnTermination": False,
            }
            for att in attachments(doc)
        ]
        return out

    def _check_az(self: EC2Provider, ctx: RequestContext, az: str | None) -> str:
        if not az:
            raise lim.missing("AvailabilityZone")
        if az not in self._azs(ctx.region):
            raise lim.invalid(f"Invalid availability zone: [{az}]")
        return az

    async def create_volume(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        token = req.get("ClientToken")
        asked = _fingerprint(req)
        if token:
            existing = self.store.get_doc("volume-token", f"{ctx.account_id}:{ctx.region}:{token}")
            if existing:
                if existing.get("request", asked) != asked:
                    raise lim.fault(
                        "IdempotentParameterMismatch",
                        "The request uses the same client token as a previous, but non-identical request.",
                    )
                doc = self.store.get_doc("volume", existing["volume"])
                if doc is not None:
                    return self._render_volume(doc)
        az = self._check_az(ctx, req.get("AvailabilityZone"))
        kind = lim.volume_type(req.get("VolumeType"))
        snapshot = self._snapshot_for_restore(ctx, req["SnapshotId"]) if req.get("SnapshotId") else None
        size = req.get("Size")
        if size is None:
            if snapshot is None:
                raise lim.missing("size")
            size = max(snapshot["volume_size"], kind.min_size)
        elif snapshot is not None and size < snapshot["volume_size"]:
            raise lim.invalid(
                f"Volume of {size}GiB is smaller than snapshot '{snapshot['id']}', "
                f"expect size >= {snapshot['volume_size']}GiB"
            )
        iops, throughput = lim.check_performance(
            kind, size, req.get("Iops"), req.get("Throughput"), bool(req.get("MultiAttachEnabled"))
        )
        tags = spec_tags(req, "volume")
        encrypted = bool(req.get("Encrypted")) or self.crypto.by_default(ctx)
        if snapshot is not None and snapshot["encrypted"]:
            encrypted = True
        if req.get("KmsKeyId") and not encrypted:
            raise lim.combination("The parameter KmsKeyId requires the parameter Encrypted to be set.")
        kms_key = None
        if encrypted:
            kms_key = self.crypto.resolve(ctx, req["KmsKeyId"]) if req.get("KmsKeyId") else None
            if kms_key is None:
                kms_key = (
                    snapshot["kms_key"] if snapshot is not None and snapshot["encrypted"] else None
                ) or self.crypto.default_key(ctx)
        if req.get("DryRun"):
            raise lim.dry_run()
        volume_id = lim.new_id("vol")
        now = clock.time()
        doc = {
            "id": volume_id,
            "account": ctx.account_id,
            "region": ctx.region,
            "az": az,
            "size": size,
            "type": kind.name,
            "iops": iops,
            "throughput": throughput,
            "multi_attach": bool(req.get("MultiAttachEnabled")),
            "snapshot_id": snapshot["id"] if snapshot else "",
            "encrypted": encrypted,
            "kms_key": kms_key,
            "dek": None,
            "state": "available",
            "created": now,
            "ready_at": now + SECONDS["creating"],
            "tags": tags,
            "attachments": [],
            "auto_enable_io": False,
            "modifications": [],
        }
        await run_blocking(self._fill_from_snapshot, ctx, doc, snapshot)
        with self.store.transaction():
            self.store.put_doc("volume", volume_id, doc)
            if token:
                self.store.put_doc(
                    "volume-token",
                    f"{ctx.account_id}:{ctx.region}:{token}",
                    {"volume": volume_id, "request": asked},
                )
            if not encrypted:  # its file starts as the snapshot (or nothing): nothing changed yet
                ref = snapshot["id"] if snapshot is not None else None
                self.store.put_doc("volume-file", volume_id, {"clean": True, "ref": ref, "changed": []})
        self._meter_volume(doc, "VolumeCreated")
        return self._render_volume(doc, "creating")

    def _fill_from_snapshot(self: EC2Provider, ctx: RequestContext, doc: dict, snapshot: dict | None) -> None:
        """Give a new volume its data key and (for a restore) the snapshot's blocks."""
        if doc["encrypted"]:
            if snapshot is not None and snapshot["encrypted"] and snapshot["kms_key"] == doc["kms_key"]:
                doc["dek"] = snapshot["dek"]  # same key, same data key: the blocks are shared
            else:
                doc["dek"], plain = self.crypto.new_data_key(ctx, doc["kms_key"])
                self.crypto.remember(doc["dek"], plain)
        if snapshot is None:
            return
        if doc.get("dek") == snapshot.get("dek"):
            self.blocks.copy_map(snapshot["id"], doc["id"])
        else:
            self.blocks.copy_resealed(
                snapshot["id"], self.crypto.sealer(ctx, snapshot), doc["id"], self.crypto.sealer(ctx, doc)
            )

    def _meter_volume(self: EC2Provider, doc: dict, event: str) -> None:
        meter.record(
            "ec2",
            event,
            doc["size"],
            "GiB",
            volume=doc["id"],
            volume_type=doc["type"],
            iops=doc.get("iops") or 0,
            throughput=doc.get("throughput") or 0,
            region=doc["region"],
        )

    def describe_volumes(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        ids = req.get("VolumeIds") or []
        docs = [
            d
            for d in self.store.list_docs("volume")
            if d["region"] == ctx.region and d["account"] == ctx.account_id
        ]
        if ids:
            for volume_id in ids:
                lim.check_id("vol", volume_id)
            by_id = {d["id"]: d for d in docs}
            missing = [v for v in ids if v not in by_id]
            if missing:
                raise lim.fault("InvalidVolume.NotFound", f"The volume '{missing[0]}' does not exist.")
            docs = [by_id[v] for v in dict.fromkeys(ids)]
        docs = matching(docs, req.get("Filters"), _volume_values)
        shown, token = page(docs, req, low=5, high=500, ids_member="VolumeIds")
        if req.get("DryRun"):
            raise lim.dry_run()
        out: dict[str, Any] = {"Volumes": [self._render_volume(d) for d in shown]}
        if token:
            out["NextToken"] = token
        return out

    async def delete_volume(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        doc = self._volume(ctx, req.get("VolumeId"))
        atts = attachments(doc)
        if atts:
            raise lim.fault(
                "VolumeInUse", f"Volume {doc['id']} is currently attached to {atts[0]['instance']}"
            )
        if req.get("DryRun"):
            raise lim.dry_run()
        self.store.delete_doc("volume", doc["id"])
        await run_blocking(self.blocks.drop, doc["id"])
        self._meter_volume(doc, "VolumeDeleted")
        return {}

    # -- modifications -----------------------------------------------------------------------------

    def _modification(self: EC2Provider, doc: dict, mod: dict) -> dict:
        state, progress = modification_state(mod, clock.time())
        t, o = mod["target"], mod["original"]
        out: dict[str, Any] = {
            "VolumeId": doc["id"],
            "ModificationState": state,
            "TargetSize": t["size"],
            "TargetVolumeType": t["type"],
            "TargetMultiAttachEnabled": t["multi_attach"],
            "OriginalSize": o["size"],
            "OriginalVolumeType": o["type"],
            "OriginalMultiAttachEnabled": o["multi_attach"],
            "Progress": progress,
            "StartTime": _iso(mod["start"]),
        }
        for key, member in (("iops", "Iops"), ("throughput", "Throughput")):
            if t.get(key) is not None:
                out["Target" + member] = t[key]
            if o.get(key) is not None:
                out["Original" + member] = o[key]
        if state == "completed":
            optimizing = max(OPTIMIZING_MIN_SECONDS, t["size"] * OPTIMIZING_SECONDS_PER_GIB)
            out["EndTime"] = _iso(mod["start"] + MODIFYING_SECONDS + optimizing)
        return out

    def modify_volume(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        doc = self._volume(ctx, req.get("VolumeId"))
        now = clock.time()
        last = doc["modifications"][-1] if doc["modifications"] else None
        if last is not None:
            state, _ = modification_state(last, now)
            if state != "completed":
                raise lim.fault(
                    "IncorrectModificationState",
                    f"Cannot modify volume {doc['id']}: a modification is still {state}.",
                )
        recent = [m for m in doc["modifications"] if now - m["start"] < lim.MODIFICATION_WINDOW]
        if len(recent) >= lim.MODIFICATIONS_PER_WINDOW:
            raise lim.fault(
                "VolumeModificationRateExceeded",
                "You've reached the maximum modification rate per volume limit. You can modify a "
                f"volume up to {lim.MODIFICATIONS_PER_WINDOW} times in a rolling 24-hour window.",
            )
        kind = lim.volume_type(req.get("VolumeType") or doc["type"])
        size = req.get("Size") if req.get("Size") is not None else doc["size"]
        if size < doc["size"]:
            raise lim.invalid("New size cannot be smaller than existing size")
        iops_req = req.get("Iops")
        throughput_req = req.get("Throughput")
        if kind.name == doc["type"]:  # unchanged type keeps its provisioned values
            if iops_req is None and kind.iops is not None:
                iops_req = doc.get("iops")
            if throughput_req is None and kind.throughput is not None:
                throughput_req = doc.get("throughput")
        multi = (
            req["MultiAttachEnabled"] if req.get("MultiAttachEnabled") is not None else doc["multi_attach"]
        )
        iops, throughput = lim.check_performance(kind, size, iops_req, throughput_req, multi)
        target = {
            "size": size,
            "type": kind.name,
            "iops": iops,
            "throughput": throughput,
            "multi_attach": multi,
        }
        original = {k: doc.get(k) for k in ("size", "type", "iops", "throughput")}
        original["multi_attach"] = doc["multi_attach"]
        if target == original:
            raise lim.invalid(f"Modification of volume {doc['id']} requested no change.")
        if req.get("DryRun"):
            raise lim.dry_run()
        mod = {"start": now, "target": target, "original": original}
        doc["modifications"].append(mod)
        doc.update(size=size, type=kind.name, iops=iops, throughput=throughput, multi_attach=multi)
        self.store.put_doc("volume", doc["id"], doc)
        dev = self.blocks.open_device(doc["id"])
        if dev is not None:
            dev.size = size * lim.GIB
        self.nbd.retune(doc)
        self._meter_volume(doc, "VolumeModified")
        return {"VolumeModification": self._modification(doc, mod)}

    def describe_volumes_modifications(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        ids = req.get("VolumeIds") or []
        docs = (
            [self._volume(ctx, v) for v in ids]
            if ids
            else [
                d
                for d in self.store.list_docs("volume")
                if d["region"] == ctx.region and d["account"] == ctx.account_id
            ]
        )
        mods = [
            {"id": d["id"], **self._modification(d, d["modifications"][-1])}
            for d in docs
            if d["modifications"]
        ]

        def values(m: dict, name: str) -> list[str] | None:
            table = {
                "volume-id": m["VolumeId"],
                "modification-state": m["ModificationState"],
                "target-size": m["TargetSize"],
                "target-volume-type": m["TargetVolumeType"],
                "original-size": m["OriginalSize"],
                "original-volume-type": m["OriginalVolumeType"],
                "start-time": m["StartTime"].isoformat(),
            }
            return [table[name]] if name in table else None

        mods = matching(mods, req.get("Filters"), values)
        shown, token = page(mods, req, low=1, high=500)
        out: dict[str, Any] = {
            "VolumesModifications": [{k: v for k, v in m.items() if k != "id"} for m in shown]
        }
        if token:
            out["NextToken"] = token
        return out

    # -- attributes and status ---------------------------------------------------------------------

    def describe_volume_attribute(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        doc = self._volume(ctx, req.get("VolumeId"))
        attribute = req.get("Attribute")
        out: dict[str, Any] = {"VolumeId": doc["id"]}
        if attribute == "autoEnableIO":
            out["AutoEnableIO"] = {"Value": doc.get("auto_enable_io", False)}
        elif attribute == "productCodes":
            out["ProductCodes"] = []
        else:
            raise lim.invalid(f"Value ({attribute}) for parameter attribute is invalid.")
        return out

    def modify_volume_attribute(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        doc = self._volume(ctx, req.get("VolumeId"))
        value = (req.get("AutoEnableIO") or {}).get("Value")
        if value is None:
            raise lim.missing("AutoEnableIO")
        if req.get("DryRun"):
            raise lim.dry_run()
        doc["auto_enable_io"] = bool(value)
        self.store.put_doc("volume", doc["id"], doc)
        return {}

    def describe_volume_status(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        ids = req.get("VolumeIds") or []
        docs = (
            [self._volume(ctx, v) for v in ids]
            if ids
            else [
                d
                for d in self.store.list_docs("volume")
                if d["region"] == ctx.region and d["account"] == ctx.account_id
            ]
        )

        def values(d: dict, name: str) -> list[str] | None:
            table = {
                "availability-zone": d["az"],
                "volume-status.status": "ok",
                "volume-status.details-name": "io-enabled",
                "volume-status.details-status": "passed",
            }
            return [table[name]] if name in table else None

        docs = matching(docs, req.get("Filters"), values)
        shown, token = page(docs, req, low=5, high=1000, ids_member="VolumeIds")
        statuses = [
            {
                "VolumeId": d["id"],
                "AvailabilityZone": d["az"],
                "VolumeStatus": {
                    "Status": "ok",
                    "Details": [
                        {"Name": "io-enabled", "Status": "passed"},
                        {"Name": "io-performance", "Status": "not-applicable"},
                    ],
                },
                "Actions": [],
                "Events": [],
            }
            for d in shown
        ]
        out: dict[str, Any] = {"VolumeStatuses": statuses}
        if token:
            out["NextToken"] = token
        return out


def _fingerprint(req: dict) -> str:
    """What a CreateVolume asked for, but its token: a retry with the same ClientToken must ask
    for the same (EC2 answers IdempotentParameterMismatch otherwise)."""
    asked = {k: v for k, v in req.items() if k not in ("ClientToken", "DryRun")}
    return hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).hexdigest()
