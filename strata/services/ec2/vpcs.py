"""Create/Describe/DeleteVpc and Create/Describe/DeleteSubnet (records: network.py).

AWS's rules are the spec: a VPC's IPv4 block is a /16 to /28 (InvalidVpc.Range otherwise), five
VPCs per region (VpcLimitExceeded); a subnet's block lies inside its VPC's (InvalidSubnet.Range)
and overlaps no other subnet of the VPC (InvalidSubnet.Conflict); a VPC with subnets or security
groups other than its default one, or a subnet something sits in, answers DependencyViolation on
delete. CreateVpc makes the VPC's default security group, DeleteVpc removes it. The default VPC
and its default subnets are derived (network.py) and may be deleted as any other (the VPC once its
subnets and other groups are gone; a resource without a subnet group then meets
DefaultVpcDoesNotExist), and created again with CreateDefaultVpc (the VPC, a default subnet per zone
and its default group) and CreateDefaultSubnet. This machine's instances are shown in the default
VPC while it exists, in none after.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.services.ec2 import limits as lim
from strata.services.ec2.network import (
    ZONES,
    _hex,
    cidr_block,
    default_subnets,
    default_vpc,
    no_default_vpc,
    subnet_not_found,
    vpc_blocks,
    vpc_not_found,
    zone_id,
)
from strata.services.ec2.query import matching, page, spec_tags, tag_list
from strata.services.ec2.states import network_state
from strata.sim.clock import clock

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider

VPCS_PER_REGION = 5  # AWS's default quota
SUBNETS_PER_VPC = 200
SMALLEST, LARGEST = 28, 16  # prefix lengths of a VPC's or subnet's IPv4 block


def _ids(req: dict, member: str, known: list[dict], not_found: Any) -> list[dict]:
    wanted = req.get(member) or []
    for one in wanted:
        if not any(d["id"] == one for d in known):
            raise not_found(one)
    return [d for d in known if d["id"] in wanted] if wanted else known


# DescribeVpcAttribute's Attribute -> the output member; ModifyVpcAttribute's members are the same.
# enableDnsSupport (true) and enableNetworkAddressUsageMetrics (false) cannot change
# (parameters.json refuses the other value: Strata cannot take name resolution away from a VPC's
# resources nor publishes the metrics); enableDnsHostnames is kept and shown (Strata's instances
# have no public DNS names for it to turn on or off).
ATTRIBUTES = {
    "enableDnsSupport": "EnableDnsSupport",
    "enableDnsHostnames": "EnableDnsHostnames",
    "enableNetworkAddressUsageMetrics": "EnableNetworkAddressUsageMetrics",
}


def _attributes(vpc: dict) -> dict[str, bool]:
    """A VPC's attributes: AWS's defaults (DNS hostnames on in a default VPC only), as modified."""
    defaults = {
        "enableDnsSupport": True,
        "enableDnsHostnames": bool(vpc.get("default")),
        "enableNetworkAddressUsageMetrics": False,
    }
    return {**defaults, **(vpc.get("attributes") or {})}


def _free_addresses(cidr: str) -> int:
    return ipaddress.IPv4Network(cidr).num_addresses - 5  # AWS keeps the first four and the last


class VpcsMixin:
    """Mixed into EC2Provider (which holds `network` and `security_groups`)."""

    # -- VPCs --------------------------------------------------------------------------------------

    def create_vpc(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if not req.get("CidrBlock"):
            raise lim.missing("CidrBlock")
        block = cidr_block(req["CidrBlock"])
        if not LARGEST <= block.prefixlen <= SMALLEST:
            raise lim.fault("InvalidVpc.Range", f"The CIDR '{req['CidrBlock']}' is invalid.")
        tags = spec_tags(req, "vpc")
        net = self.network
        with net.lock:
            if len(net.vpcs(ctx.account_id, ctx.region)) >= VPCS_PER_REGION:
                raise lim.fault("VpcLimitExceeded", "The maximum number of VPCs has been reached.")
            if req.get("DryRun"):
                raise lim.dry_run()
            doc: dict[str, Any] = {
                "id": lim.new_id("vpc"),
                "account": ctx.account_id,
                "region": ctx.region,
                "cidr": str(block),
                "tenancy": req.get("InstanceTenancy") or "default",
                "tags": tags,
                "created": clock.time(),
            }
            with self.store.transaction():
                self.store.put_doc("vpc", doc["id"], doc)
                self.security_groups.create_default(ctx.account_id, ctx.region, doc["id"])
        return {"Vpc": self._vpc_out(ctx, doc)}

    def delete_vpc(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if not req.get("VpcId"):
            raise lim.missing("VpcId")
        net, sgs = self.network, self.security_groups
        with net.lock, sgs._lock:
            vpc = net.vpc(ctx.account_id, ctx.region, req["VpcId"])
            groups = [g for g in sgs.groups(ctx.account_id, ctx.region) if g["vpc"] == vpc["id"]]
            subnets = [s for s in net.subnets(ctx.account_id, ctx.region) if s["vpc"] == vpc["id"]]
            tables, main_tables = self._vpc_route_tables(vpc["id"])
            acls = self._vpc_acls(vpc["id"])  # created ones are dependencies; the default one goes
            tables += [d for d in acls if not d.get("default")]
            if subnets or tables or any(g["name"] != "default" or sgs.users(g["id"]) for g in groups):
                raise lim.fault(
                    "DependencyViolation", f"The vpc '{vpc['id']}' has dependencies and cannot be deleted."
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            with self.store.transaction():
                for g in groups:
                    self.store.delete_doc("sg", g["id"])
                for d in acls:
                    self.store.delete_doc("acl", d["id"])
                for d in main_tables:
                    self.store.delete_doc("rtb", d["id"])
                self.store.delete_doc("rtb_main", vpc["id"])
                if vpc.get("default"):
                    net.delete_default(vpc)
                else:
                    self.store.delete_doc("vpc", vpc["id"])
        return {}

    def create_default_vpc(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        net = self.network
        with net.lock:
            vpcs = net.vpcs(ctx.account_id, ctx.region)
            if any(v.get("default") for v in vpcs):
                raise lim.fault(
                    "DefaultVpcAlreadyExists", "A Default VPC already exists for this account in this region."
                )
            if len(vpcs) >= VPCS_PER_REGION:
                raise lim.fault("VpcLimitExceeded", "The maximum number of VPCs has been reached.")
            if req.get("DryRun"):
                raise lim.dry_run()
            vpc = default_vpc(ctx.account_id, ctx.region)
            with self.store.transaction():  # its subnets come back with it; its group on first sight
                for s in default_subnets(ctx.account_id, ctx.region):
                    net.restore_default(s["id"])
                net.restore_default(vpc["id"])
            self.security_groups.groups(ctx.account_id, ctx.region)
        return {"Vpc": self._vpc_out(ctx, net.vpc(ctx.account_id, ctx.region, vpc["id"]))}

    def create_default_subnet(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if not req.get("AvailabilityZone") and not req.get("AvailabilityZoneId"):
            raise lim.missing("AvailabilityZone")
        if req.get("Ipv6Native"):
            raise lim.invalid("Strata's subnets have no IPv6 addresses: Ipv6Native must be false")
        az = self._zone(ctx, req)
        net = self.network
        with net.lock:
            vpc_id = default_vpc(ctx.account_id, ctx.region)["id"]
            if not any(v["id"] == vpc_id for v in net.vpcs(ctx.account_id, ctx.region)):
                raise no_default_vpc()
            present = net.subnets(ctx.account_id, ctx.region)
            if any(s.get("default") and s["az"] == az for s in present):
                raise lim.fault(
                    "DefaultSubnetAlreadyExistsInAvailabilityZone",
                    f"A default subnet already exists in availability zone {az}.",
                )
            s = next(s for s in default_subnets(ctx.account_id, ctx.region) if s["az"] == az)
            block = ipaddress.IPv4Network(s["cidr"])
            if any(o["vpc"] == vpc_id and block.overlaps(ipaddress.IPv4Network(o["cidr"])) for o in present):
                raise lim.fault(  # AWS would pick another free /20; Strata's default blocks are fixed
                    "InvalidSubnet.Conflict", f"The CIDR '{s['cidr']}' conflicts with another subnet"
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            net.restore_default(s["id"])
        return {"Subnet": self._subnet_out(ctx, net.subnet(ctx.account_id, ctx.region, s["id"]) or s)}

    def describe_vpcs(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        vpcs = _ids(req, "VpcIds", self.network.vpcs(ctx.account_id, ctx.region), vpc_not_found)

        def values(d: dict, name: str) -> list[Any] | None:
            table: dict[str, Any] = {
                "vpc-id": d["id"],
                "cidr": d["cidr"],
                "cidr-block-association.cidr-block": vpc_blocks(d),
                "cidr-block-association.association-id": [
                    self._association(d),
                    *(b["assoc"] for b in d.get("extra") or []),
                ],
                "cidr-block-association.state": "associated",
                "is-default": bool(d.get("default")),
                "state": network_state(d),
                "owner-id": ctx.account_id,
                "dhcp-options-id": "default",
                "instance-tenancy": d["tenancy"],
            }
            if name not in table:
                return None
            return table[name] if isinstance(table[name], list) else [table[name]]

        shown, token = page(matching(vpcs, req.get("Filters"), values), req, ids_member="VpcIds")
        out: dict[str, Any] = {"Vpcs": [self._vpc_out(ctx, d) for d in shown]}
        if token:
            out["NextToken"] = token
        return out

    def describe_vpc_attribute(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if not req.get("VpcId"):
            raise lim.missing("VpcId")
        name = req.get("Attribute")
        if name not in ATTRIBUTES:
            raise lim.invalid(f"Value ({name}) for parameter attribute is invalid. Unknown attribute.")
        vpc = self.network.vpc(ctx.account_id, ctx.region, req["VpcId"])
        if req.get("DryRun"):
            raise lim.dry_run()
        return {"VpcId": vpc["id"], ATTRIBUTES[name]: {"Value": _attributes(vpc)[name]}}

    def modify_vpc_attribute(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if not req.get("VpcId"):
            raise lim.missing("VpcId")
        given = {n: req[m]["Value"] for n, m in ATTRIBUTES.items() if isinstance(req.get(m), dict)}
        if len(given) != 1:  # AWS: one attribute per request
            raise lim.invalid("Exactly one attribute may be modified at a time")
        net = self.network
        with net.lock:
            vpc = net.vpc(ctx.account_id, ctx.region, req["VpcId"])
            if given.get("enableDnsHostnames") and not _attributes(vpc)["enableDnsSupport"]:
                raise lim.invalid("Cannot enable DNS hostnames when DNS resolution is disabled")
            attrs = {**(vpc.get("attributes") or {}), **given}
            if vpc.get("default"):
                held = self.store.get_doc("net_attrs", vpc["id"]) or {"id": vpc["id"]}
                self.store.put_doc("net_attrs", vpc["id"], {**held, "attributes": attrs})
            else:
                self.store.put_doc("vpc", vpc["id"], {**vpc, "attributes": attrs})
        return {}

    @staticmethod
    def _association(vpc: dict) -> str:
        return f"vpc-cidr-assoc-{_hex(vpc['id'])}"

    def _vpc_out(self: EC2Provider, ctx: RequestContext, d: dict) -> dict:
        out = {
            "VpcId": d["id"],
            "CidrBlock": d["cidr"],
            "CidrBlockAssociationSet": [
                {
                    "AssociationId": self._association(d),
                    "CidrBlock": d["cidr"],
                    "CidrBlockState": {"State": "associated"},
                },
                *(
                    {
                        "AssociationId": b["assoc"],
                        "CidrBlock": b["cidr"],
                        "CidrBlockState": {"State": "associated"},
                    }
                    for b in d.get("extra") or []
                ),
            ],
            "DhcpOptionsId": "default",
            "State": network_state(d),
            "InstanceTenancy": d["tenancy"],
            "IsDefault": bool(d.get("default")),
            "OwnerId": ctx.account_id,
        }
        if d.get("tags"):
            out["Tags"] = tag_list(d["tags"])
        return out

    # -- subnets -----------------------------------------------------------------------------------

    def _zone(self: EC2Provider, ctx: RequestContext, req: dict) -> str:
        zones = [f"{ctx.region}{z}" for z in ZONES]
        name, zid = req.get("AvailabilityZone"), req.get("AvailabilityZoneId")
        if name and zid:
            raise lim.combination("Only one of availabilityZone and availabilityZoneId may be given")
        if zid:
            match = [z for z in zones if zone_id(ctx.region, z) == zid]
            if not match:
                raise lim.invalid(f"Value ({zid}) for parameter availabilityZoneId is invalid.")
            return match[0]
        if name and name not in zones:
            raise lim.invalid(
                f"Value ({name}) for parameter availabilityZone is invalid. Subnets can currently only "
                f"be created in the following availability zones: {', '.join(zones)}."
            )
        return name or zones[0]

    def create_subnet(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if not req.get("VpcId"):
            raise lim.missing("VpcId")
        if not req.get("CidrBlock"):
            raise lim.missing("CidrBlock")
        net = self.network
        block = cidr_block(req["CidrBlock"])
        az = self._zone(ctx, req)
        tags = spec_tags(req, "subnet")
        with net.lock:
            vpc = net.vpc(ctx.account_id, ctx.region, req["VpcId"])
            if not LARGEST <= block.prefixlen <= SMALLEST or not any(
                block.subnet_of(ipaddress.IPv4Network(b)) for b in vpc_blocks(vpc)
            ):
                raise lim.fault("InvalidSubnet.Range", f"The CIDR '{req['CidrBlock']}' is invalid.")
            siblings = [s for s in net.subnets(ctx.account_id, ctx.region) if s["vpc"] == vpc["id"]]
            if any(block.overlaps(ipaddress.IPv4Network(s["cidr"])) for s in siblings):
                raise lim.fault(
                    "InvalidSubnet.Conflict", f"The CIDR '{req['CidrBlock']}' conflicts with another subnet"
                )
            if len(siblings) >= SUBNETS_PER_VPC:
                raise lim.fault("SubnetLimitExceeded", "The maximum number of subnets has been reached.")
            if req.get("DryRun"):
                raise lim.dry_run()
            doc = {
                "id": lim.new_id("subnet"),
                "account": ctx.account_id,
                "region": ctx.region,
                "vpc": vpc["id"],
                "az": az,
                "az_id": zone_id(ctx.region, az),
                "cidr": str(block),
                "tags": tags,
                "created": clock.time(),
            }
            self.store.put_doc("subnet", doc["id"], doc)
        return {"Subnet": self._subnet_out(ctx, doc)}

    def delete_subnet(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if not req.get("SubnetId"):
            raise lim.missing("SubnetId")
        net = self.network
        with net.lock:
            s = net.subnet(ctx.account_id, ctx.region, req["SubnetId"])
            if s is None:
                raise subnet_not_found(req["SubnetId"])
            if net.users(s["id"]):
                raise lim.fault(
                    "DependencyViolation", f"The subnet '{s['id']}' has dependencies and cannot be deleted."
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            with self.store.transaction():
                self._release_subnet_routes(s["id"])
                self._release_subnet_acl(s["id"])
                if s.get("default"):
                    net.delete_default(s)
                else:
                    self.store.delete_doc("subnet", s["id"])
        return {}

    def describe_subnets(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        subnets = _ids(req, "SubnetIds", self.network.subnets(ctx.account_id, ctx.region), subnet_not_found)

        def values(d: dict, name: str) -> list[Any] | None:
            table = {
                "subnet-id": d["id"],
                "subnet-arn": self._subnet_arn(ctx, d),
                "vpc-id": d["vpc"],
                "availability-zone": d["az"],
                "availability-zone-id": d["az_id"],
                "available-ip-address-count": _free_addresses(d["cidr"]),
                "cidr-block": d["cidr"],
                "cidr": d["cidr"],
                "cidrBlock": d["cidr"],
                "default-for-az": bool(d.get("default")),
                "defaultForAz": bool(d.get("default")),
                "map-public-ip-on-launch": bool(d.get("default")),
                "state": network_state(d),
                "owner-id": ctx.account_id,
            }
            return [table[name]] if name in table else None

        shown, token = page(matching(subnets, req.get("Filters"), values), req, ids_member="SubnetIds")
        out: dict[str, Any] = {"Subnets": [self._subnet_out(ctx, d) for d in shown]}
        if token:
            out["NextToken"] = token
        return out

    @staticmethod
    def _subnet_arn(ctx: RequestContext, d: dict) -> str:
        return f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:subnet/{d['id']}"

    def _subnet_out(self: EC2Provider, ctx: RequestContext, d: dict) -> dict:
        out = {
            "SubnetId": d["id"],
            "SubnetArn": self._subnet_arn(ctx, d),
            "VpcId": d["vpc"],
            "AvailabilityZone": d["az"],
            "AvailabilityZoneId": d["az_id"],
            "CidrBlock": d["cidr"],
            "AvailableIpAddressCount": _free_addresses(d["cidr"]),
            "DefaultForAz": bool(d.get("default")),
            "MapPublicIpOnLaunch": bool(d.get("default")),
            "State": network_state(d),
            "OwnerId": ctx.account_id,
            "AssignIpv6AddressOnCreation": False,
            "Ipv6CidrBlockAssociationSet": [],
        }
        if d.get("tags"):
            out["Tags"] = tag_list(d["tags"])
        return out
