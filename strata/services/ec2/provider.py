"""EC2, as far as EBS needs it: regions and zones, volumes, snapshots, tags, encryption by default,
and one Strata-provided instance per zone that volumes attach to (and are then served over NBD).

Contents:
- this module: the provider, regions and availability zones, the per-zone instances
  (DescribeInstances), AttachVolume/DetachVolume, tags, EBS encryption by default;
- `volumes`: Create/Describe/Delete/ModifyVolume, modifications, attributes, status;
- `snapshots`: Create/Describe/Delete/CopySnapshot, createVolumePermission;
- `blocks`: the content-addressed block store; `nbd`: the NBD server; `crypto`: KMS glue;
- `limits`: the volume type table and errors; `query`: filters, pagination, tags.

Records are JSON documents in `<data>/ec2/ec2.db` (with the block map tables); block bodies are
files under `<data>/ec2/blocks/`. Strata has no compute: instance `i-...` of zone Z stands for
"this machine" in Z; each zone has 16 of them (`strata-host-<zone>`, then `-2` .. `-16`), all
standing for this machine, so that an io1/io2 volume with Multi-Attach can be attached to as many
instances as AWS allows. A volume attached to any of them is served at
`nbd://<host>:<nbd port>/<volume id>` (the NBD URI; also `strata ebs nbd-uri` and the admin API
`/_strata/ebs/nbd?volume=`): one export per volume, however many attachments it has, which
several NBD clients may use at once (a Multi-Attach volume's instances, each an NBD client).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import os
from datetime import UTC, datetime
from typing import Any

from strata.context import RequestContext
from strata.engines.cgroups import engine_cgroups
from strata.engines.egress_filter import EgressFilter, supported
from strata.engines.firewall import Firewall
from strata.engines.floating import nft_addresses
from strata.engines.internal_guard import strata_guard
from strata.engines.nft import nft_usable
from strata.engines.ports import PortAllocator
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime, run_blocking
from strata.services.ec2 import limits as lim
from strata.services.ec2.blocks import SCHEMA, BlockStore
from strata.services.ec2.crypto import Encryption
from strata.services.ec2.egress import EgressMixin
from strata.services.ec2.nbd import NbdServer
from strata.services.ec2.network import Network, default_security_group, default_vpc, default_vpc_deleted
from strata.services.ec2.network_acls import NetworkAclsMixin
from strata.services.ec2.prefix_lists import PrefixListsMixin
from strata.services.ec2.query import check_tags, matching, page, tag_list
from strata.services.ec2.route_tables import RouteTablesMixin
from strata.services.ec2.rule_changes import RuleChangesMixin
from strata.services.ec2.security_groups import SecurityGroups, SecurityGroupsMixin
from strata.services.ec2.snapshots import SnapshotsMixin
from strata.services.ec2.states import attachments, volume_state
from strata.services.ec2.volume_files import SnapshotJob
from strata.services.ec2.volumes import VolumesMixin
from strata.services.ec2.vpc_cidrs import VpcCidrsMixin
from strata.services.ec2.vpcs import VpcsMixin
from strata.services.parameters import refusing
from strata.services.s3.names import KNOWN_REGIONS
from strata.sim.clock import clock
from strata.storage.metadata import MetadataStore

log = logging.getLogger("strata.ec2")


def egress_usable() -> bool:
    """Whether engines can run in cgroups of their own that nft rules match here (blocking)."""
    cgroups = engine_cgroups()
    if cgroups is None:
        return False
    ok = supported(cgroups.ref("probe"))
    cgroups.path("probe").rmdir()
    return ok


ZONES = "abcdef"
INSTANCES_PER_ZONE = lim.MULTI_ATTACH_MAX
DEVICE_NAMES = tuple(f"/dev/sd{c}" for c in "bcdefghijklmnop") + tuple(
    f"/dev/xvd{c}" for c in "bcdefghijklmnop"
)


@refusing("ec2")
class EC2Provider(
    VolumesMixin,
    SnapshotsMixin,
    VpcsMixin,
    VpcCidrsMixin,
    RouteTablesMixin,
    NetworkAclsMixin,
    SecurityGroupsMixin,
    EgressMixin,
    RuleChangesMixin,
    PrefixListsMixin,
):
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        data = runtime.data_dir
        self.store = MetadataStore(data / "ec2.db", fsync=runtime.settings.fsync, schema=SCHEMA)
        self.blocks = BlockStore(self.store, data / "blocks", fsync=runtime.settings.fsync)
        self.crypto = Encryption(self.store, lambda: runtime.peer("kms"))
        self.nbd = NbdServer(self)
        self.snapshot_jobs: dict[str, SnapshotJob] = {}  # snapshots of plain volumes being taken
        # other services' resources register their endpoints here (RDS: VpcSecurityGroupIds)
        self.security_groups = SecurityGroups(self.store, None)
        self.network = Network(self.store)  # VPCs and subnets (other services: subnet groups)

    async def start(self) -> None:
        for doc in self.store.list_docs("snapshot"):
            if doc["state"] == "pending" and doc.get("job"):  # its job died with the last server
                doc["state"] = "error"
                self.store.put_doc("snapshot", doc["id"], doc)
        live = {d["id"] for kind in ("volume", "snapshot") for d in self.store.list_docs(kind)}
        dropped, removed = await run_blocking(self.blocks.sweep, live)
        if dropped or removed:
            log.info("EBS start-up sweep: %d orphan block maps, %d orphan block files", dropped, removed)
        # A stable port (kept in the engine port table) so an NBD URI outlives a restart.
        port = int(os.environ.get("STRATA_NBD_PORT", "0"))
        ports = PortAllocator.for_settings(self.settings)
        if not port:
            port = await run_blocking(ports.allocate, "ec2-nbd")
        host = "127.0.0.1" if self.settings.host in ("127.0.0.1", "localhost", "::1") else self.settings.host
        exposed = self.settings.exposed_engines
        await self.nbd.start(host, port, exposed.address if exposed is not None else None)
        # STRATA_SECURITY_GROUPS=unenforced: behave as on a host without nftables (refuse what
        # would restrict), e.g. to leave the kernel's tables alone.
        wanted = os.environ.get("STRATA_SECURITY_GROUPS", "enforced").lower() != "unenforced"
        if wanted and await run_blocking(nft_usable):
            exposed = self.settings.exposed_engines
            self.security_groups.firewall = Firewall(
                "security_groups",
                private_ports=self.settings.engine_port_range,
                exposed=nft_addresses(exposed) if exposed is not None else None,
            )
            if await run_blocking(egress_usable):  # egress: engines in cgroups of their own
                self.security_groups.egress = EgressFilter("security_groups_egress")
                # engines' own ports: only through their endpoints (or Strata, or replication)
                self.security_groups.internal = await run_blocking(strata_guard, ports, {port})
            else:
                log.warning(
                    "security group egress rules cannot be enforced here (no cgroup v2 under "
                    "/sys/fs/cgroup, or nft without socket cgroupv2): restricting egress is refused, "
                    "and engines' own ports stay reachable by local processes past the endpoints' groups"
                )
            await run_blocking(self.security_groups.apply)
            await run_blocking(self._guard_attached)
        else:
            log.warning(
                "security groups cannot be enforced here (no nftables or not root): only default "
                "groups, and engines' own ports stay reachable by local processes"
            )

    async def stop(self) -> None:
        if self.security_groups.internal is not None:
            await run_blocking(self.security_groups.internal.stop)
        if self.security_groups.firewall is not None:
            await run_blocking(self.security_groups.firewall.stop)
        if self.security_groups.egress is not None:
            await run_blocking(self.security_groups.egress.stop)
        await self.nbd.stop()
        await run_blocking(self.blocks.close_all)

    def health(self) -> dict:
        enforced = self.security_groups.firewall is not None
        return {
            "state": "running",
            "nbd": self.nbd.address(),
            "security_groups": "enforced" if enforced else "unenforced",
            "security_group_egress": "enforced" if self.security_groups.egress is not None else "unenforced",
            "engine_ports": "endpoints only" if self.security_groups.internal is not None else "unguarded",
        }

    # -- regions and zones -------------------------------------------------------------------------

    @staticmethod
    def _regions() -> list[str]:
        return sorted(KNOWN_REGIONS)

    @staticmethod
    def _azs(region: str) -> list[str]:
        return [f"{region}{z}" for z in ZONES]

    def describe_regions(self, ctx: RequestContext, req: dict) -> dict:
        names = req.get("RegionNames") or []
        unknown = [n for n in names if n not in KNOWN_REGIONS]
        if unknown:
            raise lim.invalid(f"Invalid region names: {unknown[0]}")
        regions = [
            {
                "id": r,
                "RegionName": r,
                "Endpoint": f"ec2.{r}.amazonaws.com",
                "OptInStatus": "opt-in-not-required",
            }
            for r in (names or self._regions())
        ]

        def values(d: dict, name: str) -> list[str] | None:
            table = {
                "region-name": d["RegionName"],
                "endpoint": d["Endpoint"],
                "opt-in-status": d["OptInStatus"],
            }
            return [table[name]] if name in table else None

        regions = matching(regions, req.get("Filters"), values)
        return {"Regions": [{k: v for k, v in r.items() if k != "id"} for r in regions]}

    def describe_availability_zones(self, ctx: RequestContext, req: dict) -> dict:
        prefix = "".join(p[0] for p in ctx.region.split("-")[:-1]) + ctx.region.split("-")[-1]
        zones = [
            {
                "id": name,
                "ZoneName": name,
                "ZoneId": f"{prefix}-az{i + 1}",
                "State": "available",
                "RegionName": ctx.region,
                "ZoneType": "availability-zone",
                "GroupName": ctx.region,
                "NetworkBorderGroup": ctx.region,
                "OptInStatus": "opt-in-not-required",
                "Messages": [],
            }
            for i, name in enumerate(self._azs(ctx.region))
        ]
        names, ids = req.get("ZoneNames") or [], req.get("ZoneIds") or []
        for n in names:
            if n not in self._azs(ctx.region):
                raise lim.invalid(f"The zone '{n}' does not exist.")
        if names or ids:
            zones = [z for z in zones if z["ZoneName"] in names or z["ZoneId"] in ids]

        def values(d: dict, name: str) -> list[str] | None:
            table = {
                "zone-name": d["ZoneName"],
                "zone-id": d["ZoneId"],
                "state": d["State"],
                "region-name": d["RegionName"],
                "zone-type": d["ZoneType"],
                "group-name": d["GroupName"],
                "opt-in-status": d["OptInStatus"],
            }
            return [table[name]] if name in table else None

        zones = matching(zones, req.get("Filters"), values)
        return {"AvailabilityZones": [{k: v for k, v in z.items() if k != "id"} for z in zones]}

    # -- the per-zone instances --------------------------------------------------------------------

    @staticmethod
    def _instance_id(az: str, n: int = 1) -> str:
        seed = f"strata-host:{az}" if n == 1 else f"strata-host:{az}:{n}"
        return "i-" + hashlib.sha256(seed.encode()).hexdigest()[:17]

    def _instances(self, ctx: RequestContext) -> list[dict]:
        out = []
        for az in self._azs(ctx.region):
            for n in range(1, INSTANCES_PER_ZONE + 1):
                instance_id = self._instance_id(az, n)
                name = f"strata-host-{az}" if n == 1 else f"strata-host-{az}-{n}"
                out.append({"InstanceId": instance_id, "az": az, "id": instance_id, "name": name})
        return out

    def _instance(self, ctx: RequestContext, instance_id: str | None) -> dict:
        for inst in self._instances(ctx):
            if inst["InstanceId"] == instance_id:
                return inst
        if not instance_id or not instance_id.startswith("i-"):
            raise lim.fault("InvalidInstanceID.Malformed", f'Invalid id: "{instance_id}"')
        raise lim.fault("InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist")

    def _attached(self, ctx: RequestContext, instance_id: str) -> list[tuple[dict, dict]]:
        """(volume, its attachment) for each volume attached (or attaching, detaching) to the instance."""
        return [
            (d, att)
            for d in self.store.list_docs("volume")
            if d["region"] == ctx.region
            for att in attachments(d)
            if att["instance"] == instance_id
        ]

    def _render_instance(self, inst: dict, volumes: list[tuple[dict, dict]]) -> dict:
        return {
            "InstanceId": inst["InstanceId"],
            "ImageId": "ami-00000000000000000",
            "InstanceType": "t3.micro",
            "State": {"Code": 16, "Name": "running"},
            "Placement": {"AvailabilityZone": inst["az"], "Tenancy": "default"},
            "LaunchTime": datetime.fromtimestamp(0, UTC),
            "PrivateIpAddress": "127.0.0.1",
            "PrivateDnsName": "localhost",
            "Architecture": "x86_64",
            "RootDeviceType": "ebs",
            "RootDeviceName": "/dev/xvda",
            "Hypervisor": "xen",
            "VirtualizationType": "hvm",
            "Tags": [{"Key": "Name", "Value": inst["name"]}],
            "BlockDeviceMappings": [
                {
                    "DeviceName": att["device"],
                    "Ebs": {
                        "VolumeId": v["id"],
                        "Status": att["state"],
                        "AttachTime": datetime.fromtimestamp(att["time"], UTC),
                        "DeleteOnTermination": False,
                    },
                }
                for v, att in volumes
            ],
        }

    def describe_instances(self, ctx: RequestContext, req: dict) -> dict:
        instances = self._instances(ctx)
        ids = req.get("InstanceIds") or []
        if ids:
            instances = [self._instance(ctx, i) for i in dict.fromkeys(ids)]

        def values(d: dict, name: str) -> list[str] | None:
            table = {
                "instance-id": d["InstanceId"],
                "availability-zone": d["az"],
                "instance-state-name": "running",
                "instance-type": "t3.micro",
                "tag:Name": d["name"],
            }
            return [table[name]] if name in table else None

        instances = matching(instances, req.get("Filters"), values)
        shown, token = page(instances, req, low=5, high=1000, ids_member="InstanceIds")
        attached: dict[str, list[tuple[dict, dict]]] = {}
        for d in self.store.list_docs("volume"):
            if d["region"] == ctx.region:
                for att in attachments(d):
                    attached.setdefault(att["instance"], []).append((d, att))
        default_group = default_security_group(ctx.account_id, ctx.region)["id"]
        in_vpc: dict[str, Any] = (
            {}  # the default VPC was deleted (DeleteVpc): in no VPC, no group
            if default_vpc_deleted(self.store, ctx.account_id, ctx.region)
            else {
                "SecurityGroups": [{"GroupId": default_group, "GroupName": "default"}],
                "VpcId": default_vpc(ctx.account_id, ctx.region)["id"],
            }
        )
        out: dict[str, Any] = {
            "Reservations": [
                {
                    "ReservationId": "r-" + i["InstanceId"][2:],
                    "OwnerId": ctx.account_id,
                    "Instances": [
                        {
                            **self._render_instance(i, attached.get(i["InstanceId"], [])),
                            # the instances are the default group's members (security_groups.py)
                            **in_vpc,
                        }
                    ],
                    "Groups": [],
                }
                for i in shown
            ]
        }
        if token:
            out["NextToken"] = token
        return out

    # -- attach / detach ---------------------------------------------------------------------------

    async def attach_volume(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._volume(ctx, req.get("VolumeId"))
        inst = self._instance(ctx, req.get("InstanceId"))
        device = req.get("Device")
        if not device:
            raise lim.missing("Device")
        if device not in DEVICE_NAMES:
            raise lim.invalid(
                f"Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name."
            )
        now = clock.time()
        state = volume_state(doc, now)
        current = attachments(doc, now)
        if state == "creating":
            raise lim.fault("IncorrectState", f"{doc['id']} is not 'available'.")
        if current and not doc.get("multi_attach"):
            raise lim.fault("VolumeInUse", f"{doc['id']} is already attached to an instance")
        if any(a["instance"] == inst["InstanceId"] for a in current):
            raise lim.fault(
                "VolumeInUse", f"{doc['id']} is already attached to instance {inst['InstanceId']}"
            )
        if doc["az"] != inst["az"]:
            raise lim.fault(
                "InvalidVolume.ZoneMismatch",
                f"The volume '{doc['id']}' is not in the same availability zone as instance '{inst['InstanceId']}'",
            )
        if len(current) >= lim.MULTI_ATTACH_MAX:
            raise lim.fault(
                "AttachmentLimitExceeded",
                f"Volume {doc['id']} is already attached to {lim.MULTI_ATTACH_MAX} instances.",
            )
        if any(att["device"] == device for _, att in self._attached(ctx, inst["InstanceId"])):
            raise lim.invalid(f"Attachment point {device} is already in use")
        if req.get("DryRun"):
            raise lim.dry_run()
        att = {"instance": inst["InstanceId"], "device": device, "time": now, "detach_at": None}
        doc["attachments"] = [a for a in current] + [att]
        doc.pop("attachment", None)
        for a in doc["attachments"]:
            a.pop("state", None)
        self.store.put_doc("volume", doc["id"], doc)
        await run_blocking(self._guard_export, ctx.account_id, ctx.region, doc["id"])
        return {
            "AttachTime": datetime.fromtimestamp(now, UTC),
            "Device": device,
            "InstanceId": inst["InstanceId"],
            "State": "attaching",
            "VolumeId": doc["id"],
            "DeleteOnTermination": False,
        }

    def _guard_attached(self) -> int:
        """At start-up: guard the export of every attached volume, those attached before exports
        were guarded included (and with the NBD port of this start) (blocking). How many."""
        now = clock.time()
        attached = [
            d
            for d in self.store.list_docs("volume")
            if any(a["state"] != "detaching" for a in attachments(d, now))
        ]
        for d in attached:
            self._guard_export(d["account"], d["region"], d["id"])
        return len(attached)

    def _guard_export(self, account: str, region: str, volume_id: str) -> None:
        """While a volume is attached, its NBD export (the NBD port) takes new connections only
        from sources the attached instances' security groups allow, as the instances' own
        endpoints would: the default group (DescribeInstances), whose self-referencing rule lets
        this machine's unbound clients in. One port serves every volume, so the guard is the
        port's: any volume attached guards it (blocking)."""
        host, port = self.nbd.address()
        try:
            if ipaddress.ip_address(host).version != 4:
                return  # the firewall's table is IPv4 (as Strata's other engine endpoints)
        except ValueError:
            return
        default = default_security_group(account, region)["id"]
        self.security_groups.guard(
            f"ebs:volume:{volume_id}",
            account,
            region,
            [(host, port)],
            [default],
            own_addresses=False,
        )

    async def detach_volume(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._volume(ctx, req.get("VolumeId"))
        now = clock.time()
        current = attachments(doc, now)
        live = [a for a in current if a["state"] != "detaching"]
        if not live:
            raise lim.fault(
                "IncorrectState", f"Volume '{doc['id']}' is in the '{volume_state(doc, now)}' state."
            )
        if req.get("InstanceId"):
            live = [a for a in live if a["instance"] == req["InstanceId"]]
            if not live:
                raise lim.fault(
                    "InvalidAttachment.NotFound",
                    f"The volume '{doc['id']}' is not attached to instance '{req['InstanceId']}'",
                )
        elif len(live) > 1:
            raise lim.missing("InstanceId")  # AWS: a multi-attached volume needs the instance named
        if req.get("Device"):
            live = [a for a in live if a["device"] == req["Device"]]
            if not live:
                raise lim.fault(
                    "InvalidAttachment.NotFound",
                    f"The volume '{doc['id']}' is not attached at {req['Device']}",
                )
        att = live[0]
        if req.get("DryRun"):
            raise lim.dry_run()
        last = len([a for a in current if a["state"] != "detaching"]) == 1
        for a in current:
            if a["instance"] == att["instance"]:
                a["detach_at"] = now
            a.pop("state", None)
        doc["attachments"] = current
        doc.pop("attachment", None)
        # Recorded before the connections are ended: a client finishing its handshake meanwhile
        # then finds the volume no longer served (the NBD server checks as it admits one).
        self.store.put_doc("volume", doc["id"], doc)
        if last:  # the last attachment: no more NBD
            await self.nbd.disconnect(doc["id"])
            await run_blocking(self.security_groups.unguard, f"ebs:volume:{doc['id']}")
            dev = self.blocks.open_device(doc["id"])
            if dev is not None:
                await run_blocking(dev.flush)
        return {
            "AttachTime": datetime.fromtimestamp(att["time"], UTC),
            "Device": att["device"],
            "InstanceId": att["instance"],
            "State": "detaching",
            "VolumeId": doc["id"],
            "DeleteOnTermination": False,
        }

    # -- tags --------------------------------------------------------------------------------------

    def _taggable(self, ctx: RequestContext, resource_id: str) -> tuple[str, dict]:
        if resource_id.startswith("vol-"):
            return "volume", self._volume(ctx, resource_id)
        if resource_id.startswith("snap-"):
            return "snapshot", self._owned_snapshot(ctx, resource_id)
        if resource_id.startswith("sg-"):
            return "sg", self.security_groups.group(ctx.account_id, ctx.region, resource_id)
        if resource_id.startswith(("vpc-", "subnet-")):
            found = self.network.tag_doc(ctx.account_id, ctx.region, resource_id)
            if found is None:
                kind = "Vpc" if resource_id.startswith("vpc-") else "Subnet"
                raise lim.fault(f"Invalid{kind}ID.NotFound", f"The ID '{resource_id}' does not exist")
            return found
        if resource_id.startswith("rtb-"):  # a derived main table is stored from its first tag on
            d = self._route_table(ctx, resource_id)
            return "rtb", self._stored(d, d["assocs"])
        if resource_id.startswith("acl-"):  # a derived default ACL likewise
            acl = self._acl(ctx, resource_id)
            doc = {k: v for k, v in acl.items() if k != "assocs"}
            return "acl", doc | {"account": ctx.account_id, "region": ctx.region}
        raise lim.fault("InvalidID", f"The ID '{resource_id}' is not valid")

    def create_tags(self, ctx: RequestContext, req: dict) -> dict:
        resources = req.get("Resources") or []
        if not resources:
            raise lim.missing("ResourceId")
        tags = check_tags(req.get("Tags") or [])
        found = [self._taggable(ctx, r) for r in resources]
        if req.get("DryRun"):
            raise lim.dry_run()
        with self.store.transaction():
            for kind, doc in found:
                merged = dict(doc.get("tags") or {})
                merged.update(tags)
                doc["tags"] = check_tags(tag_list(merged))
                self.store.put_doc(kind, doc["id"], doc)
        return {}

    def delete_tags(self, ctx: RequestContext, req: dict) -> dict:
        resources = req.get("Resources") or []
        if not resources:
            raise lim.missing("ResourceId")
        found = [self._taggable(ctx, r) for r in resources]
        if req.get("DryRun"):
            raise lim.dry_run()
        with self.store.transaction():
            for kind, doc in found:
                current = doc.get("tags") or {}
                if req.get("Tags") is None:
                    current = {}
                for tag in req.get("Tags") or []:
                    if tag["Key"] in current and (
                        tag.get("Value") is None or current[tag["Key"]] == tag["Value"]
                    ):
                        del current[tag["Key"]]
                doc["tags"] = current
                self.store.put_doc(kind, doc["id"], doc)
        return {}

    def describe_tags(self, ctx: RequestContext, req: dict) -> dict:
        rows = []
        for kind in ("volume", "snapshot", "sg", "vpc", "subnet", "net_tags", "rtb", "acl"):
            for doc in self.store.list_docs(kind):
                if doc["region"] != ctx.region or doc["account"] != ctx.account_id:
                    continue
                for key, value in (doc.get("tags") or {}).items():
                    rows.append(
                        {
                            "id": f"{doc['id']}\x00{key}",
                            "ResourceId": doc["id"],
                            "ResourceType": {
                                "sg": "security-group",
                                "net_tags": doc.get("type"),
                                "rtb": "route-table",
                                "acl": "network-acl",
                            }.get(kind, kind),
                            "Key": key,
                            "Value": value,
                        }
                    )

        def values(d: dict, name: str) -> list[str] | None:
            table = {
                "resource-id": d["ResourceId"],
                "resource-type": d["ResourceType"],
                "key": d["Key"],
                "value": d["Value"],
            }
            return [table[name]] if name in table else None

        rows = matching(rows, req.get("Filters"), values)
        shown, token = page(rows, req, low=5, high=1000)
        out: dict[str, Any] = {"Tags": [{k: v for k, v in r.items() if k != "id"} for r in shown]}
        if token:
            out["NextToken"] = token
        return out

    # -- encryption by default ---------------------------------------------------------------------

    def get_ebs_encryption_by_default(self, ctx: RequestContext, req: dict) -> dict:
        return {"EbsEncryptionByDefault": self.crypto.by_default(ctx), "SseType": "sse-ebs"}

    def enable_ebs_encryption_by_default(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("DryRun"):
            raise lim.dry_run()
        self.crypto.set_by_default(ctx, True)
        return {"EbsEncryptionByDefault": True}

    def disable_ebs_encryption_by_default(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("DryRun"):
            raise lim.dry_run()
        self.crypto.set_by_default(ctx, False)
        return {"EbsEncryptionByDefault": False}

    def get_ebs_default_kms_key_id(self, ctx: RequestContext, req: dict) -> dict:
        return {"KmsKeyId": self.crypto.default_key(ctx)}

    def modify_ebs_default_kms_key_id(self, ctx: RequestContext, req: dict) -> dict:
        if not req.get("KmsKeyId"):
            raise lim.missing("KmsKeyId")
        if req.get("DryRun"):
            raise lim.dry_run()
        return {"KmsKeyId": self.crypto.set_default_key(ctx, req["KmsKeyId"])}

    def reset_ebs_default_kms_key_id(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("DryRun"):
            raise lim.dry_run()
        return {"KmsKeyId": self.crypto.set_default_key(ctx, None)}


def _dry_run_after(fn: Any) -> Any:
    """A read-only operation under DryRun: checked like the real call, then DryRunOperation."""

    @functools.wraps(fn)
    def op(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        result = fn(self, ctx, req)
        if req.get("DryRun"):
            raise lim.dry_run()
        return result

    return op


for _name in sorted(
    {
        n
        for cls in (EC2Provider, VolumesMixin, SnapshotsMixin, VpcsMixin)
        for n in vars(cls)
        if n.startswith(("describe_", "get_"))
    }
):
    setattr(EC2Provider, _name, _dry_run_after(getattr(EC2Provider, _name)))

__all__ = ["EC2Provider", "ServiceError"]
