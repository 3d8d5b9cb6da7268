"""AssociateVpcCidrBlock/DisassociateVpcCidrBlock: a VPC's secondary IPv4 blocks, with AWS's quota
(five blocks a VPC: CidrLimitExceeded) and sizes (/16 to /28). Subnets may then be made inside any
of the VPC's blocks, and every route table of the VPC has a local route for each. IPv6 blocks
(AmazonProvidedIpv6CidrBlock, Ipv6CidrBlock, pools) are refused (parameters.json): Strata's
endpoints are IPv4 only. AWS's further restrictions on which ranges may join a VPC's primary
range (RFC 1918 families, 198.19.0.0/16) are not applied.

A created VPC keeps its secondary blocks in its record ("extra"); the default VPC, which is
derived, in its "net_attrs" document.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.services.ec2 import limits as lim
from strata.services.ec2.network import cidr_block, vpc_blocks

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider

BLOCKS_PER_VPC = 5  # AWS's default quota of IPv4 blocks a VPC
SMALLEST, LARGEST = 28, 16


class VpcCidrsMixin:
    """Mixed into EC2Provider (which holds `network`)."""

    def _save_extra(self: EC2Provider, vpc: dict, extra: list[dict]) -> None:
        if vpc.get("default"):
            held = self.store.get_doc("net_attrs", vpc["id"]) or {"id": vpc["id"]}
            self.store.put_doc("net_attrs", vpc["id"], {**held, "extra": extra})
        else:
            self.store.put_doc("vpc", vpc["id"], {**vpc, "extra": extra})

    def associate_vpc_cidr_block(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if not req.get("VpcId"):
            raise lim.missing("VpcId")
        if not req.get("CidrBlock"):
            raise lim.missing("CidrBlock")
        block = cidr_block(req["CidrBlock"])
        if not LARGEST <= block.prefixlen <= SMALLEST:
            raise lim.fault("InvalidVpc.Range", f"The CIDR '{req['CidrBlock']}' is invalid.")
        net = self.network
        with net.lock:
            vpc = net.vpc(ctx.account_id, ctx.region, req["VpcId"])
            blocks = vpc_blocks(vpc)
            if len(blocks) >= BLOCKS_PER_VPC:
                raise lim.fault(
                    "CidrLimitExceeded",
                    f"This network '{vpc['id']}' has met its maximum number of allowed CIDRs: {BLOCKS_PER_VPC}",
                )
            if any(block.overlaps(ipaddress.IPv4Network(b)) for b in blocks):
                raise lim.fault(
                    "InvalidVpc.Range", f"The CIDR '{block}' overlaps a CIDR block of {vpc['id']}."
                )
            added = {"assoc": lim.new_id("vpc-cidr-assoc"), "cidr": str(block)}
            self._save_extra(vpc, [*(vpc.get("extra") or []), added])
        return {
            "VpcId": vpc["id"],
            "CidrBlockAssociation": {
                "AssociationId": added["assoc"],
                "CidrBlock": added["cidr"],
                "CidrBlockState": {"State": "associating"},
            },
        }

    def disassociate_vpc_cidr_block(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        assoc = req.get("AssociationId")
        if not assoc:
            raise lim.missing("AssociationId")
        net = self.network
        with net.lock:
            vpcs = net.vpcs(ctx.account_id, ctx.region)
            primary = next((v for v in vpcs if self._association(v) == assoc), None)
            if primary is not None:
                raise lim.fault(
                    "OperationNotPermitted",
                    f"The vpc CIDR block with association ID {assoc} may not be disassociated. "
                    "It is the primary IPv4 CIDR block of the VPC",
                )
            found = next(((v, b) for v in vpcs for b in v.get("extra") or [] if b["assoc"] == assoc), None)
            if found is None:
                raise lim.fault(
                    "InvalidVpcCidrBlockAssociationID.NotFound",
                    f"The vpc CIDR block association ID '{assoc}' does not exist",
                )
            vpc, gone = found
            block = ipaddress.IPv4Network(gone["cidr"])
            subnets = [s for s in net.subnets(ctx.account_id, ctx.region) if s["vpc"] == vpc["id"]]
            if any(ipaddress.IPv4Network(s["cidr"]).subnet_of(block) for s in subnets):
                raise lim.fault(
                    "DependencyViolation",
                    f"The vpc CIDR block {gone['cidr']} has subnets in it and cannot be disassociated.",
                )
            self._save_extra(vpc, [b for b in vpc["extra"] if b["assoc"] != assoc])
        out: dict[str, Any] = {
            "VpcId": vpc["id"],
            "CidrBlockAssociation": {
                "AssociationId": assoc,
                "CidrBlock": gone["cidr"],
                "CidrBlockState": {"State": "disassociating"},
            },
        }
        return out
