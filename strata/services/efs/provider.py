"""EFS: shared NFS file systems with mount targets, access points and an IA lifecycle.

Contents:
- this module: file systems (Create/Describe/Update/Delete), lifecycle configuration, backup
  policy, file system policy, account preferences;
- `tags`: the tags of file systems and access points (TagsMixin);
- `mounts`: mount targets and access points (MountTargetsMixin);
- `throughput`, `throughput_ops`: throughput limits and Bursting credits (ThroughputMixin);
- `exports`: file system directories and the ganesha NFS servers behind each mount target;
- `encryption`, `keys`: encrypted volumes and their KMS data keys;
- `usage`: SizeInBytes, the IA lifecycle on the simulated clock, the storage meter;
- `limits`: errors, ids, limits.

Records are JSON documents in `<data>/efs/efs.db` (kinds `fs`, `mt`, `ap`, `token`, `prefs`);
files are the directory `files/` of the file system's own ext4 volume (`<data>/efs/volumes/<fs-id>/`,
strata.storage.encrypted_volumes), served over NFS by each mount target. A file system of its own:
ganesha trusts the filehandles clients send, and one that names a file on another file system than
the export's is refused (NFS4ERR_STALE), so a hand-made handle cannot reach the host's files or
another EFS file system's. Encrypted file systems' volumes are fscrypt-encrypted and unlocked with
a KMS data key (`keys`). Where volumes cannot be mounted (no root, no loop devices), the files are
the directory `<data>/efs/fs/<fs-id>/`; a file system made so (or before volumes) is moved onto a
volume of its own when Strata next starts where volumes can be mounted (`own_volume`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from strata.auth.policy import PolicyError, compile_policy
from strata.context import RequestContext
from strata.engines.endpoint import Router
from strata.protocol.constraints import validation_errors, validation_message
from strata.protocol.errors import ServiceError
from strata.protocol.spec import service_model
from strata.services.base import ServiceRuntime, run_blocking
from strata.services.ec2.network import default_subnets
from strata.services.efs import exposure, reads
from strata.services.efs import limits as lim
from strata.services.efs.client_access import ClientAccess, client_access
from strata.services.efs.exports import Exports
from strata.services.efs.keys import VolumeKeys
from strata.services.efs.mounts import MountTargetsMixin
from strata.services.efs.own_volume import move_to_own_volume, remove_leftover
from strata.services.efs.tags import TagsMixin
from strata.services.efs.throughput import SETTLE_SECONDS, ThroughputLimits
from strata.services.efs.throughput import unsupported as throughput_unsupported
from strata.services.efs.throughput_ops import ThroughputMixin
from strata.services.efs.usage import SCHEMA, measure, stored_size
from strata.services.iam.service_roles import ensure_service_linked_role
from strata.services.parameters import refusing
from strata.sim.clock import clock
from strata.storage.encrypted_volumes import EncryptedVolumes, EncryptionError, unsupported
from strata.storage.metadata import MetadataStore

log = logging.getLogger("strata.efs")
SUPERVISE_SECONDS = 1.0
STORE_CREDITS_SECONDS = 60.0


def _iso(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@refusing("efs")
class EFSProvider(MountTargetsMixin, ThroughputMixin, TagsMixin):
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.store = MetadataStore(runtime.data_dir / "efs.db", fsync=runtime.settings.fsync, schema=SCHEMA)
        self.exports = Exports(runtime.data_dir)
        self.throughput = ThroughputLimits()
        # Mount targets on engine pool addresses, for other machines (exposure.py; None: loopback).
        self.engine_address = runtime.settings.exposed_engines
        self.nfs_router: Router | None = None
        self.volumes = EncryptedVolumes(runtime.data_dir)
        self.keys = VolumeKeys(lambda: runtime.peer("kms"))
        self._model = service_model("efs")
        self._supervisor: asyncio.Task | None = None
        self._restarts: dict[str, tuple[int, float]] = {}  # mount target -> (failures, next try)
        # Mount target and access point changes one at a time: the one-per-zone and address checks
        # and the NFS servers they start must not interleave.
        self._mount_lock = asyncio.Lock()
        # One measure at a time: two would each rewrite the IA and read tables from their own walk.
        self._measure_lock = threading.Lock()

    async def start(self) -> None:
        for doc in self.store.list_docs("fs"):
            if not doc["encrypted"] and not doc.get("volume") and unsupported() is None:
                await run_blocking(self._move_to_own_volume, doc)
            if doc["encrypted"] or doc.get("volume"):
                await run_blocking(self._open_volume, doc)
                await run_blocking(remove_leftover, self.exports.plain_dir(doc["id"]))
        self.nfs_router = await run_blocking(
            exposure.start_router, self.runtime.data_dir / "endpoints", self.engine_address
        )
        mts = self.store.list_docs("mt")
        await run_blocking(exposure.prune, self.nfs_router, self.engine_address, {m["id"] for m in mts})
        for mt in mts:
            try:
                await run_blocking(self._serve, mt, False)
            except Exception as e:  # noqa: BLE001 - one broken mount target must not stop Strata
                log.error("EFS mount target %s could not be served: %s", mt["id"], e)
        for mt in mts:
            pair = self.exports.servers.get(mt["id"])
            for server in pair or ():
                try:
                    await run_blocking(server.wait_ready)
                except Exception as e:  # noqa: BLE001
                    log.error("EFS mount target %s: %s", mt["id"], e)
            try:  # on its pool address (one taken now if it had none), or no longer
                await run_blocking(self._guard, mt)
            except Exception as e:  # noqa: BLE001
                log.error("EFS mount target %s: security groups or engine address: %s", mt["id"], e)
        for doc in self.store.list_docs("fs"):
            try:
                await run_blocking(self._limit, doc["id"])
            except Exception as e:  # noqa: BLE001
                log.error("EFS file system %s: throughput limits not enforced: %s", doc["id"], e)
        clock.on_advance(lambda _now: self._measure_all())
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
        await run_blocking(self.exports.stop_all)
        if self.nfs_router is not None:
            await run_blocking(self.nfs_router.stop)
        try:
            await run_blocking(self._settle_credits, True)
        except Exception as e:  # noqa: BLE001 - stopping goes on
            log.error("EFS: storing burst credits failed: %s", e)
        await run_blocking(self.throughput.stop)
        await run_blocking(self.volumes.close_all)

    def _move_to_own_volume(self, doc: dict) -> None:
        """A file system made before volumes goes onto one of its own (own_volume.py); blocking."""
        with self._measure_lock:  # a measure keys its tables by the inodes being renumbered
            move_to_own_volume(self.store, self.volumes, self.exports.plain_dir(doc["id"]), doc)

    def _open_volume(self, doc: dict) -> None:
        """Mount a file system's volume (an encrypted one with its key from KMS); blocking. A key
        KMS will not unseal (disabled, deleted) leaves the file system unreadable, as on AWS."""
        try:
            self.volumes.open(doc["id"], self.keys.unseal(doc) if doc["encrypted"] else None)
        except (ServiceError, EncryptionError) as e:
            log.error("EFS file system %s stays locked: %s", doc["id"], e)
        self.exports.roots[doc["id"]] = self.volumes.files(doc["id"])

    async def _supervise(self) -> None:
        """Restart the NFS servers of a mount target when one of them exits (a crash, a kill) or
        its root directory was replaced (strata.services.efs.exports);
        settle burst credits every SETTLE_SECONDS (stored every STORE_CREDITS_SECONDS)."""
        settled = stored = clock.monotonic()
        while True:
            await asyncio.sleep(SUPERVISE_SECONDS)
            if clock.monotonic() - settled >= SETTLE_SECONDS:
                settled = clock.monotonic()
                store_them = settled - stored >= STORE_CREDITS_SECONDS
                if store_them:
                    stored = settled
                try:
                    await run_blocking(self._settle_credits, store_them)
                except Exception as e:  # noqa: BLE001 - try again at the next settle
                    log.error("EFS: settling burst credits failed: %s", e)
            for mt_id in self.exports.dead():
                failures, not_before = self._restarts.get(mt_id, (0, 0.0))
                if clock.monotonic() < not_before:
                    continue
                async with self._mount_lock:  # not while the mount target is being deleted
                    mt = self.store.get_doc("mt", mt_id)
                    if mt is None or mt_id not in self.exports.dead():
                        continue
                    log.warning(
                        "EFS mount target %s: an NFS server exited, or its file system's root directory"
                        " was replaced; restarting them",
                        mt_id,
                    )
                    try:
                        await run_blocking(self._serve, mt)
                        self._restarts.pop(mt_id, None)
                    except Exception as e:  # noqa: BLE001 - try again later, less and less often
                        delay = min(60.0, 2.0**failures)
                        self._restarts[mt_id] = (failures + 1, clock.monotonic() + delay)
                        log.error(
                            "EFS mount target %s could not be restarted (next try in %.0fs): %s",
                            mt_id,
                            delay,
                            e,
                        )

    def health(self) -> dict:
        return {"state": "running", "mount_targets": len(self.exports.servers)}

    # -- shared ------------------------------------------------------------------------------------

    def _serve(self, mt: dict, wait: bool = True) -> None:
        """Start or re-point a mount target's NFS servers with its file system's access points and
        policy; blocking."""
        fs = self.store.get_doc("fs", mt["fs"]) or {}
        arn = self._arn(fs) if fs else ""

        def access(ap: dict | None) -> ClientAccess:
            ap_arn = None
            if ap is not None:
                ap_arn = f"arn:aws:elasticfilesystem:{ap['region']}:{ap['account']}:access-point/{ap['id']}"
            return client_access(fs.get("policy"), arn, mt["region"], ap_arn)

        self.exports.serve(mt, self._access_points(mt["fs"]), access, wait)

    def _check(self, ctx: RequestContext, req: dict) -> None:
        """Model constraints (lengths, patterns, ranges, enums): BadRequest, as EFS answers them."""
        errors = validation_errors(self._model.operation_model(ctx.operation).input_shape, req)
        if errors:
            raise lim.bad_request(validation_message(errors))

    def _fs(self, ctx: RequestContext, value: str | None) -> dict:
        fs_id = lim.file_system_id(value)
        doc = self.store.get_doc("fs", fs_id)
        if doc is None or doc["account"] != ctx.account_id or doc["region"] != ctx.region:
            raise lim.fs_not_found(fs_id)
        return doc

    def encrypted_volume(self, ctx: RequestContext, fs_id: str) -> tuple[EncryptedVolumes, str] | None:
        """An Encrypted file system's own volume, or None when it is not encrypted (for FIS's
        strata:efs:disk-full); FileSystemNotFound when there is no such file system."""
        doc = self._fs(ctx, fs_id)
        return (self.volumes, doc["id"]) if doc["encrypted"] else None

    def _arn(self, doc: dict) -> str:
        return f"arn:aws:elasticfilesystem:{doc['region']}:{doc['account']}:file-system/{doc['id']}"

    def _render_fs(self, doc: dict, state: str = "available", size: dict | None = None) -> dict:
        mts = [m for m in self.store.list_docs("mt") if m["fs"] == doc["id"]]
        out: dict[str, Any] = {
            "OwnerId": doc["account"],
            "CreationToken": doc["token"],
            "FileSystemId": doc["id"],
            "FileSystemArn": self._arn(doc),
            "CreationTime": _iso(doc["created"]),
            "LifeCycleState": state,
            "NumberOfMountTargets": len(mts),
            "SizeInBytes": size
            or stored_size(self.store, doc["id"])
            or {"Value": lim.EMPTY_SIZE, "ValueInStandard": lim.EMPTY_SIZE},
            "PerformanceMode": doc["performance"],
            "Encrypted": doc["encrypted"],
            "ThroughputMode": doc["throughput"],
            "Tags": lim.tag_list(doc["tags"]),
            "FileSystemProtection": {"ReplicationOverwriteProtection": doc.get("protection", "ENABLED")},
        }
        if "Name" in doc["tags"]:
            out["Name"] = doc["tags"]["Name"]
        if doc["encrypted"]:
            out["KmsKeyId"] = doc["kms_key"]
        if doc["throughput"] == "provisioned":
            out["ProvisionedThroughputInMibps"] = doc["provisioned"]
        if doc.get("az"):
            out["AvailabilityZoneName"] = doc["az"]
            out["AvailabilityZoneId"] = next(
                s["az_id"] for s in default_subnets(doc["account"], doc["region"]) if s["az"] == doc["az"]
            )
        return out

    def _measure(self, doc: dict) -> dict:
        with self._measure_lock:
            return measure(self.store, doc, self.exports.fs_dir(doc["id"])).render()

    def _measure_all(self) -> None:
        for doc in self.store.list_docs("fs"):
            try:
                self._measure(doc)
            except Exception as e:  # noqa: BLE001 - a clock listener must not fail the advance
                log.error("EFS: measuring %s failed: %s", doc["id"], e)

    @staticmethod
    def _throughput(mode: str, provisioned: float | None) -> float | None:
        if mode == "provisioned":
            if provisioned is None:
                raise lim.bad_request(
                    "ProvisionedThroughputInMibps is required when ThroughputMode is provisioned"
                )
            reason = throughput_unsupported()
            if reason:
                raise lim.bad_request(
                    f"ThroughputMode provisioned is not supported by Strata here: {reason}."
                )
            if provisioned > lim.MAX_PROVISIONED_MIBPS:
                raise lim.error(
                    "ThroughputLimitExceeded",
                    f"The provisioned throughput of {provisioned} MiB/s exceeds the limit "
                    f"of {lim.MAX_PROVISIONED_MIBPS} MiB/s.",
                )
            return float(provisioned)
        if provisioned is not None:
            raise lim.bad_request(
                "ProvisionedThroughputInMibps can only be set when ThroughputMode is provisioned"
            )
        return None

    # -- file systems ------------------------------------------------------------------------------

    async def create_file_system(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        token = req["CreationToken"]
        token_id = f"{ctx.account_id}:{ctx.region}:{token}"
        self._token_unused(token_id, token)
        performance = req.get("PerformanceMode") or "generalPurpose"
        throughput = req.get("ThroughputMode") or "bursting"
        provisioned = self._throughput(throughput, req.get("ProvisionedThroughputInMibps"))
        if req.get("KmsKeyId") and not req.get("Encrypted"):
            raise lim.bad_request("KmsKeyId can only be specified when Encrypted is true.")
        az = req.get("AvailabilityZoneName")
        if az is not None and az not in {s["az"] for s in default_subnets(ctx.account_id, ctx.region)}:
            raise lim.error("UnsupportedAvailabilityZone", f"Availability zone {az} is not supported.")
        if performance == "maxIO" and throughput == "elastic":
            raise lim.bad_request("Performance mode maxIO is not supported with throughput mode elastic.")
        if performance == "maxIO" and az:
            raise lim.bad_request("One Zone file systems do not support the maxIO performance mode.")
        tags = lim.check_tags(req.get("Tags"))
        owned = [
            d
            for d in self.store.list_docs("fs")
            if d["account"] == ctx.account_id and d["region"] == ctx.region
        ]
        if len(owned) >= lim.FILE_SYSTEMS_PER_REGION:
            raise lim.error("FileSystemLimitExceeded", "You have reached the maximum number of file systems.")
        fs_id = lim.new_id("fs")
        now = clock.time()
        doc = {
            "id": fs_id,
            "account": ctx.account_id,
            "region": ctx.region,
            "token": token,
            "created": now,
            "performance": performance,
            "throughput": throughput,
            "provisioned": provisioned,
            "throughput_changed": None,
            "encrypted": bool(req.get("Encrypted")),
            "kms_key": self.keys.resolve(ctx, req.get("KmsKeyId")) if req.get("Encrypted") else None,
            "dek": None,
            "az": az,
            "backup": "DISABLED",
            "tags": tags,
            "lifecycle": [],
            "policy": None,
            "next_export_id": 2,
        }
        if doc["encrypted"]:
            why = unsupported()
            if why:
                raise lim.bad_request(f"Encrypted file systems cannot be served here: {why}.")
            doc["dek"], plain = self.keys.new(ctx, doc["kms_key"], fs_id)
            try:
                await run_blocking(self.volumes.create, fs_id, plain)
            except EncryptionError as e:  # the machine will not mount it (a container without loop devices)
                raise lim.bad_request(f"Encrypted file systems cannot be served here: {e}.") from None
            self.exports.roots[fs_id] = self.volumes.files(fs_id)
        elif unsupported() is None:
            try:
                await run_blocking(self.volumes.create, fs_id, None)
                doc["volume"] = True
                self.exports.roots[fs_id] = self.volumes.files(fs_id)
            except EncryptionError as e:
                log.warning("EFS %s: no volume of its own (%s): files kept in a directory", fs_id, e)
                await run_blocking(self.exports.create_fs_dir, fs_id)
        else:
            await run_blocking(self.exports.create_fs_dir, fs_id)
        try:
            with self.store.transaction():  # checked again inside: a concurrent twin loses
                self._token_unused(token_id, token)
                self.store.put_doc("fs", fs_id, doc)
                self.store.put_doc("token", token_id, {"fs": fs_id})
        except ServiceError:
            await run_blocking(self._remove_files, doc)
            raise
        ensure_service_linked_role(self.runtime.settings, ctx.account_id, "elasticfilesystem.amazonaws.com")
        return self._render_fs(doc, "creating")

    def _remove_files(self, doc: dict) -> None:
        if doc["encrypted"] or doc.get("volume"):
            self.volumes.remove(doc["id"])
            self.exports.roots.pop(doc["id"], None)
        else:
            self.exports.remove_fs_dir(doc["id"])

    def _token_unused(self, token_id: str, token: str) -> None:
        existing = self.store.get_doc("token", token_id)
        if existing is not None and self.store.get_doc("fs", existing["fs"]) is not None:
            raise lim.error(
                "FileSystemAlreadyExists",
                f"File system '{existing['fs']}' already exists with creation token '{token}'",
                FileSystemId=existing["fs"],
            )

    async def describe_file_systems(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        if req.get("FileSystemId") and req.get("CreationToken"):
            raise lim.bad_request("Specify either FileSystemId or CreationToken, not both.")
        if req.get("FileSystemId"):
            docs = [self._fs(ctx, req["FileSystemId"])]
        else:
            docs = [
                d
                for d in self.store.list_docs("fs")
                if d["account"] == ctx.account_id
                and d["region"] == ctx.region
                and (not req.get("CreationToken") or d["token"] == req["CreationToken"])
            ]
        docs.sort(key=lambda d: (d["created"], d["id"]))
        shown, marker = lim.page(docs, req.get("Marker"), req.get("MaxItems") or 100)
        out: dict[str, Any] = {"FileSystems": []}
        for d in shown:
            size = await run_blocking(self._measure, d)
            out["FileSystems"].append(self._render_fs(d, size=size))
        if req.get("Marker"):
            out["Marker"] = req["Marker"]
        if marker:
            out["NextMarker"] = marker
        return out

    async def update_file_system(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        mode = req.get("ThroughputMode") or doc["throughput"]
        wanted = req.get("ProvisionedThroughputInMibps")
        if req.get("ThroughputMode") is None and wanted is None:
            raise lim.bad_request("Specify ThroughputMode or ProvisionedThroughputInMibps.")
        if mode == "provisioned" and wanted is None:
            wanted = doc["provisioned"]
        provisioned = self._throughput(mode, wanted)
        # AWS: changing to Provisioned or increasing it starts a 24-hour wait before the mode
        # may change again or the amount decrease.
        changes_mode = mode != doc["throughput"]
        before = doc["provisioned"] if doc["throughput"] == "provisioned" else None
        decreases = provisioned is not None and before is not None and provisioned < before
        increases = provisioned is not None and before is not None and provisioned > before
        now = clock.time()
        last = doc.get("throughput_changed")
        if (changes_mode or decreases) and last is not None and now - last < lim.THROUGHPUT_COOLDOWN_SECONDS:
            raise lim.error(
                "TooManyRequests",
                "You have reached the maximum number of throughput mode changes or provisioned throughput "
                f"value decreases. Wait until {_iso(last + lim.THROUGHPUT_COOLDOWN_SECONDS):%Y-%m-%dT%H:%M:%SZ} "
                "UTC and try again.",
            )
        if mode == "provisioned" and (changes_mode or increases):
            doc["throughput_changed"] = now
        doc["throughput"], doc["provisioned"] = mode, provisioned
        self.store.put_doc("fs", doc["id"], doc)
        await run_blocking(self._limit, doc["id"])
        return self._render_fs(doc, "updating")

    async def delete_file_system(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        if any(m["fs"] == doc["id"] for m in self.store.list_docs("mt")):
            raise lim.error(
                "FileSystemInUse", f"File system '{doc['id']}' has mount targets and cannot be deleted."
            )
        with self.store.transaction() as c:
            for ap in self._access_points(doc["id"]):
                self.store.delete_doc("ap", ap["id"])
            self.store.delete_doc("fs", doc["id"])
            self.store.delete_doc("token", f"{doc['account']}:{doc['region']}:{doc['token']}")
            self.store.delete_doc("usage", doc["id"])
            c.execute("DELETE FROM ia WHERE fs = ?", (doc["id"],))
        await run_blocking(self.throughput.forget, doc["id"])
        await run_blocking(self._remove_files, doc)
        return {}

    def update_file_system_protection(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        wanted = req.get("ReplicationOverwriteProtection")
        if wanted == "REPLICATING":
            raise lim.bad_request(
                "ReplicationOverwriteProtection REPLICATING is set by EFS, not by a request."
            )
        if wanted:
            doc["protection"] = wanted
            self.store.put_doc("fs", doc["id"], doc)
        return {"ReplicationOverwriteProtection": doc.get("protection", "ENABLED")}

    # -- lifecycle, backup, policy, preferences ----------------------------------------------------

    def put_lifecycle_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        policies = req["LifecyclePolicies"]
        seen: set[str] = set()
        for p in policies:
            keys = [k for k, v in p.items() if v is not None]
            if len(keys) != 1:
                raise lim.bad_request("Each LifecyclePolicy must have exactly one transition.")
            if keys[0] in seen:
                raise lim.bad_request(f"Only one {keys[0]} policy is allowed.")
            seen.add(keys[0])
        rules = {k: v for p in policies for k, v in p.items() if v is not None}
        if rules and not reads.records_reads(self.exports.fs_dir(doc["id"])):
            raise lim.bad_request(
                "Lifecycle management is not available on this Strata: its data dir is on a file "
                "system mounted noatime, which records no reads, so files read would still move to "
                "IA. Remount it relatime or strictatime."
            )
        if "TransitionToArchive" in rules:
            if doc["throughput"] != "elastic" or doc["performance"] != "generalPurpose":
                raise lim.bad_request(
                    "TransitionToArchive requires Elastic throughput and General Purpose performance mode."
                )
            if "TransitionToIA" in rules and (
                lim.TRANSITION_DAYS[rules["TransitionToArchive"]]
                <= lim.TRANSITION_DAYS[rules["TransitionToIA"]]
            ):
                raise lim.bad_request("TransitionToArchive must be later than TransitionToIA.")
        doc["lifecycle"] = [{k: v for k, v in p.items() if v is not None} for p in policies]
        self.store.put_doc("fs", doc["id"], doc)
        return {"LifecyclePolicies": doc["lifecycle"]}

    def describe_lifecycle_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        return {"LifecyclePolicies": self._fs(ctx, req["FileSystemId"])["lifecycle"]}

    def put_backup_policy(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        doc["backup"] = req["BackupPolicy"]["Status"]
        self.store.put_doc("fs", doc["id"], doc)
        return {"BackupPolicy": {"Status": doc["backup"]}}

    def describe_backup_policy(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        return {"BackupPolicy": {"Status": doc["backup"]}}

    async def put_file_system_policy(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        if len(req["Policy"].encode()) > lim.POLICY_MAX_BYTES:
            raise lim.error("InvalidPolicyException", "The policy is larger than 20,000 bytes.")
        try:
            compile_policy(req["Policy"], "resource")
        except PolicyError as e:
            raise lim.error("InvalidPolicyException", str(e)) from None
        doc["policy"] = req["Policy"]
        self.store.put_doc("fs", doc["id"], doc)
        async with self._mount_lock:
            await self._reload(doc["id"])
        return {"FileSystemId": doc["id"], "Policy": doc["policy"]}

    def describe_file_system_policy(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        if not doc.get("policy"):
            raise lim.error("PolicyNotFound", f"File system '{doc['id']}' does not have a policy.")
        return {"FileSystemId": doc["id"], "Policy": doc["policy"]}

    async def delete_file_system_policy(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        doc["policy"] = None
        self.store.put_doc("fs", doc["id"], doc)
        async with self._mount_lock:
            await self._reload(doc["id"])
        return {}

    def _preference(self, ctx: RequestContext) -> dict:
        prefs = self.store.get_doc("prefs", f"{ctx.account_id}:{ctx.region}") or {"type": "LONG_ID"}
        return {"ResourceIdType": prefs["type"], "Resources": ["FILE_SYSTEM", "MOUNT_TARGET"]}

    def describe_account_preferences(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        return {"ResourceIdPreference": self._preference(ctx)}

    def put_account_preferences(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        self.store.put_doc("prefs", f"{ctx.account_id}:{ctx.region}", {"type": req["ResourceIdType"]})
        return {"ResourceIdPreference": self._preference(ctx)}
