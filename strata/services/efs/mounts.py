"""EFS mount targets and access points (mixed into EFSProvider).

A mount target is one per availability zone per file system (MountTargetConflict otherwise), in a
default subnet of the account's default VPC (strata.services.ec2.network), with the VPC's security
groups (at most five), enforced on its NFS ports 2049 and 2050 (strata.services.ec2.security_groups).
Its IpAddress is the loopback address its NFS servers listen on; a requested IpAddress must be a
free loopback address (127.0.0.0/8, not 127.0.0.1): Strata has no other network to put it on.
With an engine address pool (`--engine-address A,B,C/DEV`) its IpAddress is instead a pool
address where other machines reach it (exposure.py), and a requested one must be a free pool
address. One Zone file systems take a mount target in their own zone only.

An access point names a POSIX identity and a root directory; it is served by every mount target
of its file system at `nfs://<IpAddress>:2050/<access point id>/` (see exports).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.engines.ganesha import ACCESS_POINT_PORT, NFS_PORT
from strata.engines.process import EngineError
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.ec2.network import default_security_group, subnet
from strata.services.efs import exposure
from strata.services.efs import limits as lim
from strata.sim.clock import clock

if TYPE_CHECKING:
    from strata.services.efs.provider import EFSProvider


class MountTargetsMixin:
    # -- mount targets -----------------------------------------------------------------------------

    def _mount_targets(self: EFSProvider, fs_id: str) -> list[dict]:
        return [m for m in self.store.list_docs("mt") if m["fs"] == fs_id]

    def _mount_target(self: EFSProvider, ctx: RequestContext, mt_id: str | None) -> dict:
        doc = self.store.get_doc("mt", mt_id or "")
        if doc is None or doc["account"] != ctx.account_id or doc["region"] != ctx.region:
            raise lim.error("MountTargetNotFound", f"Mount target '{mt_id}' does not exist.")
        return doc

    def _render_mt(self: EFSProvider, doc: dict, state: str | None = None) -> dict:
        if state is None:
            state = "available" if self.exports.running(doc["id"]) else "error"
        return {
            "OwnerId": doc["account"],
            "MountTargetId": doc["id"],
            "FileSystemId": doc["fs"],
            "SubnetId": doc["subnet"],
            "LifeCycleState": state,
            "IpAddress": exposure.shown(self.nfs_router, self.engine_address, doc),
            "NetworkInterfaceId": doc["eni"],
            "AvailabilityZoneId": doc["az_id"],
            "AvailabilityZoneName": doc["az"],
            "VpcId": doc["vpc"],
        }

    def _security_groups(
        self: EFSProvider, ctx: RequestContext, groups: list[str] | None, vpc: str
    ) -> list[str]:
        """The groups of a mount target in VPC `vpc`: groups of that VPC (its default one when
        none are given), as AWS requires."""
        default = default_security_group(ctx.account_id, ctx.region)["id"]
        groups = list(groups or [])
        if len(groups) > lim.SECURITY_GROUPS_PER_MOUNT_TARGET:
            raise lim.error(
                "SecurityGroupLimitExceeded",
                f"A mount target can have at most {lim.SECURITY_GROUPS_PER_MOUNT_TARGET} security groups.",
            )
        sgs = getattr(self.runtime.peer("ec2"), "security_groups", None)
        if sgs is None:
            for g in groups:
                if g != default:
                    raise lim.error("SecurityGroupNotFound", f"Security group '{g}' does not exist.")
            return groups or [default]
        for g in groups:
            try:
                sgs.check_attachable(ctx.account_id, ctx.region, [g], vpc)
            except ServiceError as e:
                if e.code == "InvalidParameterCombination":
                    raise lim.error(  # AWS: the group does not exist in the subnet's VPC
                        "SecurityGroupNotFound",
                        f"Security group '{g}' does not exist in the VPC of the subnet ({vpc}).",
                    ) from None
                if e.code == "InvalidParameterValue":  # it exists, but cannot be enforced here
                    raise lim.bad_request(e.message) from None
                raise lim.error("SecurityGroupNotFound", f"Security group '{g}' does not exist.") from None
        try:
            return sgs.check_attachable(ctx.account_id, ctx.region, groups, vpc)
        except ServiceError as e:
            raise lim.bad_request(e.message) from None

    def _subnet(self: EFSProvider, ctx: RequestContext, subnet_id: str) -> dict | None:
        net = getattr(self.runtime.peer("ec2"), "network", None)
        if net is None:
            return subnet(ctx.account_id, ctx.region, subnet_id)
        return net.subnet(ctx.account_id, ctx.region, subnet_id)

    def _guard(self: EFSProvider, doc: dict) -> None:
        """Enforce the mount target's groups on its NFS ports, and on its pool address's, which
        then serves it to other machines (blocking): the groups judge those clients by their own
        addresses, each mount target by its own groups (not with every guard of the port)."""
        public = exposure.pool_address(self.nfs_router, self.engine_address, doc)
        sgs = getattr(self.runtime.peer("ec2"), "security_groups", None)
        if sgs is not None:
            hosts = [doc["ip"], *([public] if public else [])]
            endpoints = [(host, port) for host in hosts for port in exposure.PORTS]
            sgs.guard(f"efs:{doc['id']}", doc["account"], doc["region"], endpoints, doc["groups"])
        exposure.expose(self.nfs_router, self.engine_address, doc)
        net = getattr(self.runtime.peer("ec2"), "network", None)
        if net is not None:  # its network interface sits in the subnet (DeleteSubnet: in use)
            net.use(f"efs:{doc['id']}", [doc["subnet"]])

    def endpoints_in_zone(self: EFSProvider, account: str, region: str, zone: str) -> list[tuple[str, int]]:
        """The NFS endpoints (address, port) of the account's mount targets in Availability Zone
        `zone`, for FIS's network disruption."""
        return [
            (m["ip"], port)
            for m in self.store.list_docs("mt")
            if m["account"] == account and m["region"] == region and m["az"] == zone
            for port in (NFS_PORT, ACCESS_POINT_PORT)
        ]

    def _unguard(self: EFSProvider, doc: dict) -> None:
        exposure.unexpose(self.nfs_router, self.engine_address, doc)
        sgs = getattr(self.runtime.peer("ec2"), "security_groups", None)
        if sgs is not None:
            sgs.unguard(f"efs:{doc['id']}")
        net = getattr(self.runtime.peer("ec2"), "network", None)
        if net is not None:
            net.release(f"efs:{doc['id']}")

    def _ip(self: EFSProvider, wanted: str | None, taken: set[str]) -> str:
        if wanted is None or self.nfs_router is not None:
            return self.exports.free_address(taken)
        try:
            ip = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise lim.bad_request(f"Invalid IpAddress: {wanted}") from None
        if not ip.is_loopback or wanted == "127.0.0.1":
            raise lim.bad_request(
                f"IpAddress {wanted} is not available: Strata's mount targets listen on loopback "
                "addresses (127.0.0.0/8 except 127.0.0.1)."
            )
        if wanted in taken or not self.exports.address_free(wanted):
            raise lim.error("IpAddressInUse", f"IpAddress {wanted} is already in use.")
        return wanted

    def _take_pool_address(self: EFSProvider, ip: str, wanted: str | None) -> None:
        """With a pool, a requested IpAddress is a pool address, which the new mount target (on
        loopback `ip`) takes now; refused unless it is a free one."""
        if wanted is None or self.nfs_router is None or self.engine_address is None:
            return
        try:
            ipaddress.IPv4Address(wanted)
        except ValueError:
            raise lim.bad_request(f"Invalid IpAddress: {wanted}") from None
        if wanted not in self.engine_address.pool:
            raise lim.bad_request(
                f"IpAddress {wanted} is not available: Strata's mount targets take the addresses of "
                "its engine address pool (--engine-address), except the first."
            )
        if not exposure.take(self.nfs_router, self.engine_address, ip, wanted):
            raise lim.error("IpAddressInUse", f"IpAddress {wanted} is already in use.")

    async def create_mount_target(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        async with self._mount_lock:
            return await self._create_mount_target(ctx, req)

    async def _create_mount_target(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        fs = self._fs(ctx, req["FileSystemId"])
        if req.get("IpAddressType") not in (None, "IPV4_ONLY") or req.get("Ipv6Address"):
            raise lim.bad_request("Strata's mount targets are IPv4 only (IpAddressType IPV4_ONLY).")
        net = self._subnet(ctx, req["SubnetId"])
        if net is None:
            raise lim.error("SubnetNotFound", f"Subnet '{req['SubnetId']}' does not exist.")
        others = {m["vpc"] for m in self._mount_targets(fs["id"])}
        if others and net["vpc"] not in others:
            raise lim.error(
                "MountTargetConflict",
                f"File system '{fs['id']}' has mount targets in {others.pop()}: all of its mount "
                "targets must be in one VPC.",
            )
        if fs.get("az") and net["az"] != fs["az"]:
            raise lim.error(
                "AvailabilityZonesMismatch",
                f"The subnet is in {net['az']}, but the One Zone file system is in {fs['az']}.",
            )
        groups = self._security_groups(ctx, req.get("SecurityGroups"), net["vpc"])
        all_mts = self.store.list_docs("mt")
        for m in all_mts:
            if m["fs"] == fs["id"] and m["az"] == net["az"]:
                raise lim.error(
                    "MountTargetConflict",
                    f"File system '{fs['id']}' already has a mount target in availability zone {net['az']}.",
                )
        ip = self._ip(req.get("IpAddress"), {m["ip"] for m in all_mts})
        self._take_pool_address(ip, req.get("IpAddress"))
        mt_id = lim.new_id("fsmt")
        doc = {
            "id": mt_id,
            "fs": fs["id"],
            "account": ctx.account_id,
            "region": ctx.region,
            "subnet": net["id"],
            "az": net["az"],
            "az_id": net["az_id"],
            "vpc": net["vpc"],
            "ip": ip,
            "eni": lim.new_id("eni"),
            "groups": groups,
            "created": clock.time(),
        }
        try:
            await run_blocking(self._serve, doc)
        except EngineError as e:
            await run_blocking(self.exports.unserve, mt_id)
            await run_blocking(exposure.unexpose, None, self.engine_address, doc)
            raise lim.error("InternalServerError", f"The NFS server could not start: {e}") from None
        self.store.put_doc("mt", mt_id, doc)
        await run_blocking(self._guard, doc)
        await run_blocking(self._limit, fs["id"])
        return self._render_mt(doc, "creating")

    def describe_mount_targets(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        given = [k for k in ("FileSystemId", "MountTargetId", "AccessPointId") if req.get(k)]
        if len(given) != 1:
            raise lim.bad_request("Specify exactly one of FileSystemId, MountTargetId or AccessPointId.")
        if req.get("MountTargetId"):
            docs = [self._mount_target(ctx, req["MountTargetId"])]
        elif req.get("AccessPointId"):
            docs = self._mount_targets(self._access_point(ctx, req["AccessPointId"])["fs"])
        else:
            docs = self._mount_targets(self._fs(ctx, req["FileSystemId"])["id"])
        docs.sort(key=lambda d: (d["created"], d["id"]))
        shown, marker = lim.page(docs, req.get("Marker"), req.get("MaxItems") or 10)
        out: dict[str, Any] = {"MountTargets": [self._render_mt(d) for d in shown]}
        if req.get("Marker"):
            out["Marker"] = req["Marker"]
        if marker:
            out["NextMarker"] = marker
        return out

    async def delete_mount_target(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        async with self._mount_lock:
            return await self._delete_mount_target(ctx, req)

    async def _delete_mount_target(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        doc = self._mount_target(ctx, req["MountTargetId"])
        self.store.delete_doc("mt", doc["id"])
        await run_blocking(self._unguard, doc)
        await run_blocking(self.exports.unserve, doc["id"])
        await run_blocking(self._limit, doc["fs"])
        return {}

    def describe_mount_target_security_groups(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        return {"SecurityGroups": self._mount_target(ctx, req["MountTargetId"])["groups"]}

    async def modify_mount_target_security_groups(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._mount_target(ctx, req["MountTargetId"])
        doc["groups"] = self._security_groups(ctx, req.get("SecurityGroups"), doc["vpc"])
        self.store.put_doc("mt", doc["id"], doc)
        await run_blocking(self._guard, doc)
        return {}

    # -- access points -----------------------------------------------------------------------------

    def _access_points(self: EFSProvider, fs_id: str) -> list[dict]:
        return [a for a in self.store.list_docs("ap") if a["fs"] == fs_id]

    def _access_point(self: EFSProvider, ctx: RequestContext, value: str | None) -> dict:
        ap_id = lim.access_point_id(value)
        doc = self.store.get_doc("ap", ap_id)
        if doc is None or doc["account"] != ctx.account_id or doc["region"] != ctx.region:
            raise lim.error("AccessPointNotFound", f"Access point '{ap_id}' does not exist.")
        return doc

    def _render_ap(self: EFSProvider, doc: dict, state: str = "available") -> dict:
        out: dict[str, Any] = {
            "ClientToken": doc["token"],
            "Tags": lim.tag_list(doc["tags"]),
            "AccessPointId": doc["id"],
            "AccessPointArn": f"arn:aws:elasticfilesystem:{doc['region']}:{doc['account']}:access-point/{doc['id']}",
            "FileSystemId": doc["fs"],
            "RootDirectory": doc["root"],
            "OwnerId": doc["account"],
            "LifeCycleState": state,
        }
        if "Name" in doc["tags"]:
            out["Name"] = doc["tags"]["Name"]
        if doc["posix"]:
            out["PosixUser"] = doc["posix"]
        return out

    async def _reload(self: EFSProvider, fs_id: str) -> None:
        for mt in self._mount_targets(fs_id):
            await run_blocking(self._serve, mt)

    async def create_access_point(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        async with self._mount_lock:
            return await self._create_access_point(ctx, req)

    async def _create_access_point(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        fs = self._fs(ctx, req["FileSystemId"])
        token_id = f"{ctx.account_id}:{ctx.region}:ap:{req['ClientToken']}"
        existing = self.store.get_doc("token", token_id)
        if existing is not None and self.store.get_doc("ap", existing["ap"]) is not None:
            raise lim.error(
                "AccessPointAlreadyExists",
                f"Access point '{existing['ap']}' already exists with client token '{req['ClientToken']}'",
                AccessPointId=existing["ap"],
            )
        root = dict(req.get("RootDirectory") or {})
        root.setdefault("Path", "/")
        if ".." in root["Path"].split("/") or "//" in root["Path"]:
            raise lim.bad_request(f"Invalid RootDirectory Path: {root['Path']}")
        if root["Path"] != "/" and root["Path"].endswith("/"):
            raise lim.bad_request(f"Invalid RootDirectory Path: {root['Path']}")
        posix = req.get("PosixUser")
        if posix is not None:
            posix = {k: v for k, v in posix.items() if v is not None}
        tags = lim.check_tags(req.get("Tags"))
        aps = self._access_points(fs["id"])
        if len(aps) >= lim.ACCESS_POINTS_PER_FILE_SYSTEM:
            raise lim.error(
                "AccessPointLimitExceeded",
                f"File system '{fs['id']}' already has {lim.ACCESS_POINTS_PER_FILE_SYSTEM} access points.",
            )
        export_id = fs["next_export_id"]
        fs["next_export_id"] = export_id + 1
        ap_id = lim.new_id("fsap")
        doc = {
            "id": ap_id,
            "fs": fs["id"],
            "account": ctx.account_id,
            "region": ctx.region,
            "token": req["ClientToken"],
            "posix": posix,
            "root": root,
            "tags": tags,
            "export_id": export_id,
        }
        with self.store.transaction():
            self.store.put_doc("fs", fs["id"], fs)
            self.store.put_doc("ap", ap_id, doc)
            self.store.put_doc("token", token_id, {"ap": ap_id})
        await self._reload(fs["id"])
        return self._render_ap(doc, "creating")

    def describe_access_points(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        if req.get("AccessPointId") and req.get("FileSystemId"):
            raise lim.bad_request("Specify either AccessPointId or FileSystemId, not both.")
        if req.get("AccessPointId"):
            docs = [self._access_point(ctx, req["AccessPointId"])]
        elif req.get("FileSystemId"):
            docs = self._access_points(self._fs(ctx, req["FileSystemId"])["id"])
        else:
            docs = [
                a
                for a in self.store.list_docs("ap")
                if a["account"] == ctx.account_id and a["region"] == ctx.region
            ]
        shown, token = lim.page(docs, req.get("NextToken"), req.get("MaxResults") or 100)
        out: dict[str, Any] = {"AccessPoints": [self._render_ap(d) for d in shown]}
        if token:
            out["NextToken"] = token
        return out

    async def delete_access_point(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        async with self._mount_lock:
            return await self._delete_access_point(ctx, req)

    async def _delete_access_point(self: EFSProvider, ctx: RequestContext, req: dict) -> dict:
        doc = self._access_point(ctx, req["AccessPointId"])
        with self.store.transaction():
            self.store.delete_doc("ap", doc["id"])
            self.store.delete_doc("token", f"{doc['account']}:{doc['region']}:ap:{doc['token']}")
        await self._reload(doc["fs"])
        return {}
