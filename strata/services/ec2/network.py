"""The default network of every account and region: one default VPC, one default subnet per zone,
and the VPC's default security group (DescribeVpcs, DescribeSubnets; groups: security_groups.py).

AWS creates these with an account; EFS mount targets need a subnet per zone and a security group.
Strata has no virtual network, so the records are derived (never stored): the ids are hashes of
account, region and zone, the CIDRs are AWS's defaults (172.31.0.0/16, a /20 per zone). Creating
or changing VPCs and subnets is not served (501).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.services.ec2 import limits as lim
from strata.services.ec2.query import matching, page

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider

ZONES = "abcdef"
VPC_CIDR = "172.31.0.0/16"


def _hex(*parts: str, n: int = 17) -> str:
    return hashlib.sha256(":".join(("strata-network", *parts)).encode()).hexdigest()[:n]


def default_vpc(account: str, region: str) -> dict:
    return {"id": f"vpc-{_hex(account, region)}", "account": account, "region": region}


def default_subnets(account: str, region: str) -> list[dict]:
    """One default subnet per zone of the region, in zone order."""
    vpc = default_vpc(account, region)["id"]
    prefix = "".join(p[0] for p in region.split("-")[:-1]) + region.split("-")[-1]
    out = []
    for i, z in enumerate(ZONES):
        az = f"{region}{z}"
        out.append(
            {
                "id": f"subnet-{_hex(account, az)}",
                "az": az,
                "az_id": f"{prefix}-az{i + 1}",
                "vpc": vpc,
                "cidr": f"172.31.{16 * i}.0/20",
                "account": account,
                "region": region,
            }
        )
    return out


def default_security_group(account: str, region: str) -> dict:
    vpc = default_vpc(account, region)["id"]
    return {"id": f"sg-{_hex(account, region, 'default')}", "vpc": vpc, "account": account}


def subnet(account: str, region: str, subnet_id: str) -> dict | None:
    return next((s for s in default_subnets(account, region) if s["id"] == subnet_id), None)


def _ids(req: dict, member: str, prefix: str, known: list[dict], code: str, what: str) -> list[dict]:
    wanted = req.get(member) or []
    for one in wanted:
        if not any(d["id"] == one for d in known):
            if not one.startswith(prefix + "-"):
                raise lim.fault(f"{code}.Malformed", f'Invalid id: "{one}"')
            raise lim.fault(f"{code}.NotFound", f"The {what} ID '{one}' does not exist")
    return [d for d in known if d["id"] in wanted] if wanted else known


class NetworkMixin:
    """Mixed into EC2Provider."""

    def describe_vpcs(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        vpc = default_vpc(ctx.account_id, ctx.region)
        vpcs = _ids(req, "VpcIds", "vpc", [vpc], "InvalidVpcID", "vpc")

        def values(d: dict, name: str) -> list[Any] | None:
            table = {
                "vpc-id": d["id"],
                "cidr": VPC_CIDR,
                "cidr-block-association.cidr-block": VPC_CIDR,
                "is-default": True,
                "state": "available",
                "owner-id": ctx.account_id,
                "dhcp-options-id": "default",
            }
            return [table[name]] if name in table else None

        shown, token = page(matching(vpcs, req.get("Filters"), values), req, ids_member="VpcIds")
        out: dict[str, Any] = {
            "Vpcs": [
                {
                    "VpcId": d["id"],
                    "CidrBlock": VPC_CIDR,
                    "CidrBlockAssociationSet": [
                        {
                            "AssociationId": f"vpc-cidr-assoc-{_hex(d['id'])}",
                            "CidrBlock": VPC_CIDR,
                            "CidrBlockState": {"State": "associated"},
                        }
                    ],
                    "DhcpOptionsId": "default",
                    "State": "available",
                    "InstanceTenancy": "default",
                    "IsDefault": True,
                    "OwnerId": ctx.account_id,
                }
                for d in shown
            ]
        }
        if token:
            out["NextToken"] = token
        return out

    def describe_subnets(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        subnets = _ids(
            req,
            "SubnetIds",
            "subnet",
            default_subnets(ctx.account_id, ctx.region),
            "InvalidSubnetID",
            "subnet",
        )

        def values(d: dict, name: str) -> list[Any] | None:
            table = {
                "subnet-id": d["id"],
                "vpc-id": d["vpc"],
                "availability-zone": d["az"],
                "availability-zone-id": d["az_id"],
                "cidr-block": d["cidr"],
                "cidr": d["cidr"],
                "default-for-az": True,
                "state": "available",
                "owner-id": ctx.account_id,
            }
            return [table[name]] if name in table else None

        shown, token = page(matching(subnets, req.get("Filters"), values), req, ids_member="SubnetIds")
        out: dict[str, Any] = {
            "Subnets": [
                {
                    "SubnetId": d["id"],
                    "SubnetArn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:subnet/{d['id']}",
                    "VpcId": d["vpc"],
                    "AvailabilityZone": d["az"],
                    "AvailabilityZoneId": d["az_id"],
                    "CidrBlock": d["cidr"],
                    "AvailableIpAddressCount": 4091,
                    "DefaultForAz": True,
                    "MapPublicIpOnLaunch": True,
                    "State": "available",
                    "OwnerId": ctx.account_id,
                    "AssignIpv6AddressOnCreation": False,
                    "Ipv6CidrBlockAssociationSet": [],
                }
                for d in shown
            ]
        }
        if token:
            out["NextToken"] = token
        return out
