"""Network ACLs: DescribeNetworkAcls, Create/DeleteNetworkAcl, Create/Replace/DeleteNetworkAclEntry,
ReplaceNetworkAclAssociation, with AWS's errors.

Every VPC has a default network ACL (derived from the VPC's id, stored only once its entries
change) that allows all traffic in and out (rule 100) and that every subnet is associated with
until ReplaceNetworkAclAssociation moves it; a created ACL denies everything (only the `*` rule,
32767, which every ACL has last) until entries allow something.

Strata does not filter traffic by network ACL (security groups are its enforcement: see
security_groups.py), so an ACL that would block something may exist only where it blocks
nothing: entries that leave an ACL restrictive (no allow-all rule, all protocols to 0.0.0.0/0,
ahead of every deny, in each direction) are refused on the default ACL (every new subnet gets
it) and on an ACL with subnets, and a restrictive ACL cannot be associated with a subnet —
rather than accepted and ignored. IPv6 entries are kept and shown: nothing reaches Strata's
endpoints over IPv6.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.services.ec2 import limits as lim
from strata.services.ec2.network import _hex
from strata.services.ec2.query import matching, page, spec_tags, tag_list
from strata.services.ec2.rules import PROTOCOLS

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider

LAST_RULE = 32767  # the `*` rule every ACL ends with
ALLOW_ALL = [
    {"n": 100, "egress": e, "proto": "-1", "action": "allow", "cidr": "0.0.0.0/0"} for e in (False, True)
]
_NUMBERS = {"-1": "-1", "tcp": "6", "udp": "17", "icmp": "1"}


def default_acl_id(vpc_id: str) -> str:
    return f"acl-{_hex('acl', vpc_id)}"


def _assoc_id(subnet_id: str) -> str:
    return f"aclassoc-{_hex('acl', subnet_id)}"


def restricts(entries: list[dict]) -> bool:
    """Whether the entries deny some IPv4 traffic in or out: no allow-all rule ahead of every deny."""
    for egress in (False, True):
        ordered = sorted(
            (e for e in entries if e["egress"] == egress and e.get("cidr")), key=lambda e: e["n"]
        )
        first_deny = next((e["n"] for e in ordered if e["action"] == "deny"), LAST_RULE)
        if not any(
            e["action"] == "allow" and e["proto"] == "-1" and e["cidr"] == "0.0.0.0/0" and e["n"] < first_deny
            for e in ordered
        ):
            return True
    return False


def _unenforced(acl_id: str) -> Exception:
    return lim.invalid(
        f"Network ACL {acl_id} would block traffic, which Strata does not filter by network ACL "
        "(security groups are enforced): the default ACL and an ACL with subnets must keep an "
        "allow-all rule (all protocols, 0.0.0.0/0) ahead of every deny in each direction"
    )


def _not_found(acl_id: str) -> Exception:
    if not acl_id.startswith("acl-"):
        return lim.fault("InvalidNetworkAclID.Malformed", f'Invalid id: "{acl_id}"')
    return lim.fault("InvalidNetworkAclID.NotFound", f"The networkAcl ID '{acl_id}' does not exist")


class NetworkAclsMixin:
    """Mixed into EC2Provider (which holds `network`)."""

    def _acls(self: EC2Provider, ctx: RequestContext) -> list[dict]:
        """Every ACL of the region (default ones derived unless stored), with its associations."""
        net = self.network
        vpcs = {v["id"] for v in net.vpcs(ctx.account_id, ctx.region)}
        stored = {
            d["id"]: d
            for d in self.store.list_docs("acl")
            if d["account"] == ctx.account_id and d["region"] == ctx.region and d["vpc"] in vpcs
        }
        out = [
            stored.pop(default_acl_id(v))
            if default_acl_id(v) in stored
            else {"id": default_acl_id(v), "vpc": v, "default": True, "entries": ALLOW_ALL, "tags": {}}
            for v in sorted(vpcs)
        ]
        out += list(stored.values())
        moved = {d["id"]: d for d in self.store.list_docs("acl_assoc")}
        for d in out:
            d["assocs"] = []
        by_id = {d["id"]: d for d in out}
        for s in net.subnets(ctx.account_id, ctx.region):
            held = moved.get(s["id"])
            acl = by_id.get(held["acl"]) if held else None
            if acl is None:
                acl, assoc = by_id[default_acl_id(s["vpc"])], _assoc_id(s["id"])
            else:
                assoc = held["assoc"] if held else _assoc_id(s["id"])
            acl["assocs"].append({"assoc": assoc, "subnet": s["id"]})
        return out

    def _acl(self: EC2Provider, ctx: RequestContext, acl_id: str | None) -> dict:
        if not acl_id:
            raise lim.missing("NetworkAclId")
        for d in self._acls(ctx):
            if d["id"] == acl_id:
                return d
        raise _not_found(acl_id)

    def _save_acl(self: EC2Provider, ctx: RequestContext, d: dict) -> None:
        doc = {k: v for k, v in d.items() if k != "assocs"} | {
            "account": ctx.account_id,
            "region": ctx.region,
        }
        self.store.put_doc("acl", d["id"], doc)

    def create_network_acl(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if not req.get("VpcId"):
            raise lim.missing("VpcId")
        tags = spec_tags(req, "network-acl")
        with self.network.lock:
            vpc = self.network.vpc(ctx.account_id, ctx.region, req["VpcId"])
            if req.get("DryRun"):
                raise lim.dry_run()
            d = {"id": lim.new_id("acl"), "vpc": vpc["id"], "entries": [], "tags": tags}
            self._save_acl(ctx, d)
        out: dict[str, Any] = {"NetworkAcl": self._acl_out(ctx, {**d, "assocs": []})}
        if req.get("ClientToken"):
            out["ClientToken"] = req["ClientToken"]
        return out

    def delete_network_acl(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        with self.network.lock:
            d = self._acl(ctx, req.get("NetworkAclId"))
            if d.get("default"):
                raise lim.invalid(f"cannot delete default network ACL {d['id']}")
            if d["assocs"]:
                raise lim.fault(
                    "DependencyViolation",
                    f"The networkAcl '{d['id']}' has dependencies and cannot be deleted.",
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            self.store.delete_doc("acl", d["id"])
        return {}

    def _entry(self: EC2Provider, req: dict) -> dict:
        n = req.get("RuleNumber")
        if n is None:
            raise lim.missing("RuleNumber")
        if not 1 <= n <= LAST_RULE - 1:
            raise lim.invalid(
                f"Value ({n}) for parameter ruleNumber is invalid. Must be between 1 and 32766."
            )
        proto = PROTOCOLS.get(str(req.get("Protocol", "")).lower())
        if proto is None:
            raise lim.invalid(f"Invalid value '{req.get('Protocol')}' for IP protocol. Unknown protocol.")
        action = req.get("RuleAction")
        if action not in ("allow", "deny"):
            raise lim.invalid(f"Value ({action}) for parameter ruleAction is invalid.")
        e: dict[str, Any] = {"n": n, "egress": bool(req.get("Egress")), "proto": proto, "action": action}
        if proto in ("tcp", "udp"):
            ports = req.get("PortRange") or {}
            if ports.get("From") is None or ports.get("To") is None:
                raise lim.missing("portRange")
            e["ports"] = [ports["From"], ports["To"]]
        if proto == "icmp" and req.get("IcmpTypeCode"):
            e["icmp"] = [req["IcmpTypeCode"].get("Type", -1), req["IcmpTypeCode"].get("Code", -1)]
        if req.get("CidrBlock") and req.get("Ipv6CidrBlock"):
            raise lim.combination("Only one of cidrBlock and ipv6CidrBlock may be given")
        try:
            if req.get("CidrBlock"):
                e["cidr"] = str(ipaddress.IPv4Network(req["CidrBlock"], strict=False))
            elif req.get("Ipv6CidrBlock"):
                e["cidr6"] = str(ipaddress.IPv6Network(req["Ipv6CidrBlock"], strict=False))
            else:
                raise lim.missing("cidrBlock")
        except ValueError:
            block = req.get("CidrBlock") or req.get("Ipv6CidrBlock")
            raise lim.invalid(f"Value ({block}) for parameter cidrBlock is invalid.") from None
        return e

    def _change_entries(self: EC2Provider, ctx: RequestContext, req: dict, change: str) -> dict:
        with self.network.lock:
            d = self._acl(ctx, req.get("NetworkAclId"))
            egress, n = bool(req.get("Egress")), req.get("RuleNumber")
            if n is None:
                raise lim.missing("RuleNumber")
            rest = [e for e in d["entries"] if not (e["egress"] == egress and e["n"] == n)]
            exists = len(rest) != len(d["entries"])
            if change == "create" and exists:
                raise lim.fault(
                    "NetworkAclEntryAlreadyExists", f"The network acl entry identified by {n} already exists."
                )
            if change != "create" and not exists:
                raise lim.fault(
                    "InvalidNetworkAclEntry.NotFound",
                    f"The network acl entry identified by {n} could not be found.",
                )
            entries = rest if change == "delete" else [*rest, self._entry(req)]
            if (d.get("default") or d["assocs"]) and restricts(entries):
                raise _unenforced(d["id"])
            if req.get("DryRun"):
                raise lim.dry_run()
            self._save_acl(ctx, {**d, "entries": sorted(entries, key=lambda e: (e["egress"], e["n"]))})
        return {}

    def create_network_acl_entry(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        return self._change_entries(ctx, req, "create")

    def replace_network_acl_entry(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        return self._change_entries(ctx, req, "replace")

    def delete_network_acl_entry(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        return self._change_entries(ctx, req, "delete")

    def replace_network_acl_association(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        assoc = req.get("AssociationId")
        if not assoc:
            raise lim.missing("AssociationId")
        with self.network.lock:
            acls = self._acls(ctx)
            held = next(((d, a) for d in acls for a in d["assocs"] if a["assoc"] == assoc), None)
            if held is None:
                raise lim.fault(
                    "InvalidAssociationID.NotFound", f"The association ID '{assoc}' does not exist"
                )
            target = self._acl(ctx, req.get("NetworkAclId"))
            if target["vpc"] != held[0]["vpc"]:
                raise lim.invalid(
                    f"Network ACL {target['id']} and subnet {held[1]['subnet']} belong to different networks"
                )
            if restricts(target["entries"]):
                raise _unenforced(target["id"])
            if req.get("DryRun"):
                raise lim.dry_run()
            new = lim.new_id("aclassoc")
            subnet = held[1]["subnet"]
            self.store.put_doc("acl_assoc", subnet, {"id": subnet, "acl": target["id"], "assoc": new})
        return {"NewAssociationId": new}

    def _release_subnet_acl(self: EC2Provider, subnet_id: str) -> None:
        self.store.delete_doc("acl_assoc", subnet_id)

    def _vpc_acls(self: EC2Provider, vpc_id: str) -> list[dict]:
        """The stored ACLs of a VPC (DeleteVpc: created ones are dependencies; the default goes)."""
        return [d for d in self.store.list_docs("acl") if d["vpc"] == vpc_id]

    def describe_network_acls(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        acls = self._acls(ctx)
        wanted = req.get("NetworkAclIds") or []
        for one in wanted:
            if not any(d["id"] == one for d in acls):
                raise _not_found(one)
        if wanted:
            acls = [d for d in acls if d["id"] in wanted]

        def values(d: dict, name: str) -> list[Any] | None:
            entries = self._entries_out(d)
            table: dict[str, list[Any]] = {
                "network-acl-id": [d["id"]],
                "vpc-id": [d["vpc"]],
                "default": [bool(d.get("default"))],
                "owner-id": [ctx.account_id],
                "association.association-id": [a["assoc"] for a in d["assocs"]],
                "association.network-acl-id": [d["id"]] if d["assocs"] else [],
                "association.subnet-id": [a["subnet"] for a in d["assocs"]],
                "entry.cidr": [e["CidrBlock"] for e in entries if "CidrBlock" in e],
                "entry.egress": [e["Egress"] for e in entries],
                "entry.protocol": [e["Protocol"] for e in entries],
                "entry.rule-action": [e["RuleAction"] for e in entries],
                "entry.rule-number": [e["RuleNumber"] for e in entries],
            }
            return table.get(name)

        shown, token = page(matching(acls, req.get("Filters"), values), req, ids_member="NetworkAclIds")
        out: dict[str, Any] = {"NetworkAcls": [self._acl_out(ctx, d) for d in shown]}
        if token:
            out["NextToken"] = token
        return out

    @staticmethod
    def _entries_out(d: dict) -> list[dict]:
        out = []
        last = [
            {"n": LAST_RULE, "egress": e, "proto": "-1", "action": "deny", "cidr": "0.0.0.0/0"}
            for e in (False, True)
        ]
        for e in [*d["entries"], *last]:
            item: dict[str, Any] = {
                "RuleNumber": e["n"],
                "Egress": e["egress"],
                "Protocol": _NUMBERS[e["proto"]],
                "RuleAction": e["action"],
            }
            if e.get("cidr"):
                item["CidrBlock"] = e["cidr"]
            else:
                item["Ipv6CidrBlock"] = e["cidr6"]
            if e.get("ports"):
                item["PortRange"] = {"From": e["ports"][0], "To": e["ports"][1]}
            if e.get("icmp"):
                item["IcmpTypeCode"] = {"Type": e["icmp"][0], "Code": e["icmp"][1]}
            out.append(item)
        return out

    def _acl_out(self: EC2Provider, ctx: RequestContext, d: dict) -> dict:
        out: dict[str, Any] = {
            "NetworkAclId": d["id"],
            "VpcId": d["vpc"],
            "IsDefault": bool(d.get("default")),
            "OwnerId": ctx.account_id,
            "Entries": self._entries_out(d),
            "Associations": [
                {"NetworkAclAssociationId": a["assoc"], "NetworkAclId": d["id"], "SubnetId": a["subnet"]}
                for a in d["assocs"]
            ],
        }
        if d.get("tags"):
            out["Tags"] = tag_list(d["tags"])
        return out
