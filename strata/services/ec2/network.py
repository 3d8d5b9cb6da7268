"""The VPCs and subnets of every account and region: the default ones AWS creates with an account
(one default VPC, a default subnet per zone, the VPC's default security group) and those made with
CreateVpc/CreateSubnet (operations: vpcs.py).

The defaults are derived, never stored: their ids are hashes of account, region and zone, their
CIDRs AWS's (172.31.0.0/16, a /20 per zone), so they exist from the first start. Deleting one
(DeleteSubnet, DeleteVpc, as AWS allows) stores a "net_deleted" document for its id, which
CreateDefaultSubnet/CreateDefaultVpc remove again: a re-created default keeps its derived id (AWS
gives a new one). Created VPCs and
subnets are "vpc" and "subnet" documents in ec2.db. Strata has no virtual network: a VPC and its
subnets are the addresses and zones AWS would show, and a resource's security groups are enforced
on its endpoint whatever its VPC (security_groups.py). Other services' resources that sit in a
subnet (RDS instances and clusters, ElastiCache deployments, EFS mount targets: what has a network
interface there on AWS) record it with `Network.use`, so that DeleteSubnet answers
DependencyViolation while they are there.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from typing import TYPE_CHECKING

from strata.services.ec2 import limits as lim

if TYPE_CHECKING:
    from strata.storage.metadata import MetadataStore

ZONES = "abcdef"
VPC_CIDR = "172.31.0.0/16"


def _hex(*parts: str, n: int = 17) -> str:
    return hashlib.sha256(":".join(("strata-network", *parts)).encode()).hexdigest()[:n]


def zone_id(region: str, az: str) -> str:
    """AWS's zone ID (use1-az1) of a zone name (us-east-1a) of the region."""
    prefix = "".join(p[0] for p in region.split("-")[:-1]) + region.split("-")[-1]
    return f"{prefix}-az{ZONES.index(az[-1]) + 1}"


def default_vpc(account: str, region: str) -> dict:
    return {
        "id": f"vpc-{_hex(account, region)}",
        "account": account,
        "region": region,
        "cidr": VPC_CIDR,
        "default": True,
        "tenancy": "default",
    }


def default_subnets(account: str, region: str) -> list[dict]:
    """One default subnet per zone of the region, in zone order."""
    vpc = default_vpc(account, region)["id"]
    out = []
    for i, z in enumerate(ZONES):
        az = f"{region}{z}"
        out.append(
            {
                "id": f"subnet-{_hex(account, az)}",
                "az": az,
                "az_id": zone_id(region, az),
                "vpc": vpc,
                "cidr": f"172.31.{16 * i}.0/20",
                "account": account,
                "region": region,
                "default": True,
            }
        )
    return out


def default_security_group(account: str, region: str) -> dict:
    vpc = default_vpc(account, region)["id"]
    return {"id": f"sg-{_hex(account, region, 'default')}", "vpc": vpc, "account": account}


def vpc_blocks(vpc: dict) -> list[str]:
    """A VPC's IPv4 blocks: its primary one, then those AssociateVpcCidrBlock added."""
    return [vpc["cidr"], *(b["cidr"] for b in vpc.get("extra") or [])]


def default_vpc_deleted(store: MetadataStore, account: str, region: str) -> bool:
    """Whether the region's default VPC was deleted (DeleteVpc) and not created again."""
    return store.get_doc("net_deleted", default_vpc(account, region)["id"]) is not None


def no_default_vpc() -> Exception:
    return lim.fault(
        "DefaultVpcDoesNotExist",
        "There is no default VPC in which to carry out the request. Specify a VPC or create a default VPC.",
    )


def subnet(account: str, region: str, subnet_id: str) -> dict | None:
    """A default subnet by id (a service without Strata's EC2 knows only these)."""
    return next((s for s in default_subnets(account, region) if s["id"] == subnet_id), None)


def vpc_not_found(vpc_id: str) -> Exception:
    if not vpc_id.startswith("vpc-"):
        return lim.fault("InvalidVpcID.Malformed", f'Invalid id: "{vpc_id}"')
    return lim.fault("InvalidVpcID.NotFound", f"The vpc ID '{vpc_id}' does not exist")


def subnet_not_found(subnet_id: str) -> Exception:
    if not subnet_id.startswith("subnet-"):
        return lim.fault("InvalidSubnetID.Malformed", f'Invalid id: "{subnet_id}"')
    return lim.fault("InvalidSubnetID.NotFound", f"The subnet ID '{subnet_id}' does not exist")


def cidr_block(value: str | None, member: str = "cidrBlock") -> ipaddress.IPv4Network:
    """An IPv4 CIDR block as CreateVpc/CreateSubnet take it: network address, no host bits."""
    try:
        return ipaddress.IPv4Network(value or "", strict=True)
    except ValueError:
        raise lim.invalid(
            f"Value ({value}) for parameter {member} is invalid. This is not a valid CIDR block."
        ) from None


class Network:
    """The VPCs and subnets (defaults derived, created ones stored) and who uses which subnet."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.lock = threading.RLock()

    def _with_tags(self, defaults: list[dict]) -> list[dict]:
        """The default records with the tags CreateTags gave them ("net_tags" documents)."""
        for d in defaults:
            d["tags"] = (self.store.get_doc("net_tags", d["id"]) or {}).get("tags") or {}
        return defaults

    def tag_doc(self, account: str, region: str, resource_id: str) -> tuple[str, dict] | None:
        """(document kind, document) holding the tags of a VPC or subnet (CreateTags)."""
        kind = "vpc" if resource_id.startswith("vpc-") else "subnet"
        found = self.vpcs(account, region) if kind == "vpc" else self.subnets(account, region)
        doc = next((d for d in found if d["id"] == resource_id), None)
        if doc is None:
            return None
        if not doc.get("default"):
            return kind, doc
        held = self.store.get_doc("net_tags", resource_id)
        return "net_tags", held or {
            "id": resource_id,
            "account": account,
            "region": region,
            "type": kind,
            "tags": {},
        }

    def vpcs(self, account: str, region: str) -> list[dict]:
        stored = [d for d in self.store.list_docs("vpc") if d["account"] == account and d["region"] == region]
        defaults = self._with_tags(self._present([default_vpc(account, region)]))
        for d in defaults:  # ModifyVpcAttribute's changes, AssociateVpcCidrBlock's ("net_attrs" documents)
            held = self.store.get_doc("net_attrs", d["id"]) or {}
            d["attributes"] = held.get("attributes") or {}
            d["extra"] = held.get("extra") or []
        return [*defaults, *stored]

    def _present(self, defaults: list[dict]) -> list[dict]:
        deleted = {d["id"] for d in self.store.list_docs("net_deleted")}
        return [d for d in defaults if d["id"] not in deleted]

    def delete_default(self, doc: dict) -> None:
        """Record a default VPC or subnet as deleted (its tags go with it)."""
        with self.store.transaction():
            self.store.put_doc(
                "net_deleted",
                doc["id"],
                {"id": doc["id"], "account": doc["account"], "region": doc["region"]},
            )
            self.store.delete_doc("net_tags", doc["id"])
            self.store.delete_doc("net_attrs", doc["id"])

    def restore_default(self, resource_id: str) -> None:
        self.store.delete_doc("net_deleted", resource_id)

    def vpc(self, account: str, region: str, vpc_id: str | None) -> dict:
        for d in self.vpcs(account, region):
            if d["id"] == vpc_id:
                return d
        raise vpc_not_found(vpc_id or "")

    def subnets(self, account: str, region: str) -> list[dict]:
        stored = [
            d for d in self.store.list_docs("subnet") if d["account"] == account and d["region"] == region
        ]
        return [*self._with_tags(self._present(default_subnets(account, region))), *stored]

    def subnet(self, account: str, region: str, subnet_id: str | None) -> dict | None:
        return next((s for s in self.subnets(account, region) if s["id"] == subnet_id), None)

    # -- who sits in a subnet ----------------------------------------------------------------------

    def use(self, key: str, subnet_ids: list[str]) -> None:
        """Record that resource `key` (e.g. "rds:subnet-group:<account>:<region>:<name>") sits in
        these subnets, replacing what it recorded before (blocking)."""
        if subnet_ids:
            self.store.put_doc("subnet_use", key, {"id": key, "subnets": list(subnet_ids)})
        else:
            self.store.delete_doc("subnet_use", key)

    def release(self, key: str) -> None:
        self.store.delete_doc("subnet_use", key)

    def users(self, subnet_id: str) -> list[str]:
        return [d["id"] for d in self.store.list_docs("subnet_use") if subnet_id in d["subnets"]]
