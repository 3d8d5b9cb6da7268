"""Security group rules: the request forms (IpPermissions, or the flat CidrIp/IpProtocol/FromPort/
ToPort form) parsed into rule records and rendered back, shared by ingress and egress; and the
egress rules a group has (AWS's default all-traffic rule until they are changed).

A rule record: {"id", "proto" ("-1", "tcp", "udp", "icmp"), "from", "to", "cidr" | "cidr6" | "group",
"desc"}. IPv6 rules ("cidr6") are stored and shown as AWS does; Strata's endpoints listen on IPv4
loopback addresses only, so no IPv6 source can reach them whatever the rules say.
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from typing import TYPE_CHECKING

from strata.protocol.errors import ServiceError
from strata.services.ec2 import limits as lim

if TYPE_CHECKING:
    from strata.services.ec2.security_groups import SecurityGroups

PROTOCOLS = {
    "-1": "-1",
    "all": "-1",
    "tcp": "tcp",
    "6": "tcp",
    "udp": "udp",
    "17": "udp",
    "icmp": "icmp",
    "1": "icmp",
}


def rule_id(*parts: str) -> str:
    return "sgr-" + hashlib.sha256(":".join(parts).encode()).hexdigest()[:17]


def same(a: dict, b: dict) -> bool:
    keys = ("proto", "from", "to", "cidr", "cidr6", "group")
    return all(a.get(k) == b.get(k) for k in keys)


def permissions(req: dict, group: dict, sgs: SecurityGroups) -> list[dict]:
    """IpPermissions (or the flat CidrIp/IpProtocol/FromPort/ToPort/SourceSecurityGroupName form)
    of a rule change to `group` -> rule records without ids."""
    account, region = group["account"], group["region"]
    perms = req.get("IpPermissions") or []
    if not perms and (req.get("CidrIp") or req.get("IpProtocol")):
        perms = [
            {
                "IpProtocol": req.get("IpProtocol") or "-1",
                "FromPort": req.get("FromPort"),
                "ToPort": req.get("ToPort"),
                "IpRanges": [{"CidrIp": req["CidrIp"]}] if req.get("CidrIp") else [],
            }
        ]
    if not perms:
        raise lim.missing("IpPermissions")
    rules = []
    for p in perms:
        proto = PROTOCOLS.get(str(p.get("IpProtocol", "")).lower())
        if proto is None:
            raise lim.invalid(f"Invalid value '{p.get('IpProtocol')}' for IP protocol. Unknown protocol.")
        lo, hi = p.get("FromPort"), p.get("ToPort")
        if proto == "-1":
            lo, hi = -1, -1
        elif proto in ("tcp", "udp"):
            if lo is None or hi is None:
                raise lim.invalid(
                    "Invalid value for portRange. Must specify both from and to ports with TCP/UDP."
                )
            if not (0 <= lo <= 65535 and 0 <= hi <= 65535) or lo > hi:
                raise lim.invalid(f"Invalid value for portRange. From port {lo} to port {hi} is not valid.")
        else:
            lo, hi = (-1 if lo is None else lo), (-1 if hi is None else hi)
        if p.get("PrefixListIds"):
            pl = p["PrefixListIds"][0].get("PrefixListId")
            found_list = sgs.store.get_doc("prefix_list", pl or "")
            if found_list is not None and (found_list["account"], found_list["region"]) == (account, region):
                raise lim.invalid(
                    "Security group rules that reference a prefix list are not supported by Strata."
                )
            raise lim.fault("InvalidPrefixListID.NotFound", f"The prefix list ID '{pl}' does not exist")
        found = False
        for r in p.get("IpRanges") or []:
            rules.append(rule(proto, lo, hi, cidr=r.get("CidrIp") or "", desc=r.get("Description")))
            found = True
        for r in p.get("Ipv6Ranges") or []:
            rules.append(rule(proto, lo, hi, cidr6=r.get("CidrIpv6") or "", desc=r.get("Description")))
            found = True
        for pair in p.get("UserIdGroupPairs") or []:
            g = referenced(group, sgs.group(account, region, pair.get("GroupId"), pair.get("GroupName")))
            rules.append(
                {"proto": proto, "from": lo, "to": hi, "group": g["id"], "desc": pair.get("Description")}
            )
            found = True
        if not found:
            raise lim.missing("IpRanges or UserIdGroupPairs")
    return rules


def rule(
    proto: str,
    lo: int,
    hi: int,
    *,
    cidr: str | None = None,
    cidr6: str | None = None,
    desc: str | None = None,
) -> dict:
    """A rule record for an IPv4 (`cidr`) or IPv6 (`cidr6`) range, the range checked."""
    out: dict = {"proto": proto, "from": lo, "to": hi, "desc": desc}
    try:
        if cidr6 is not None:
            out["cidr6"] = str(ipaddress.IPv6Network(cidr6, strict=False))
        else:
            out["cidr"] = str(ipaddress.IPv4Network(cidr or "", strict=False))
    except ValueError:
        raise lim.invalid(f"CIDR block {cidr6 if cidr6 is not None else cidr} is malformed") from None
    return out


def referenced(group: dict, other: dict) -> dict:
    """`other`, which a rule of `group` references: in the same VPC, as AWS requires (no peering)."""
    if other["vpc"] != group["vpc"]:
        raise lim.fault(
            "InvalidGroup.NotFound", "You have specified two resources that belong to different networks."
        )
    return other


def duplicate(r: dict) -> ServiceError:
    peer = r.get("cidr") or r.get("cidr6") or r.get("group")
    ports = "" if r["proto"] == "-1" else f", from port: {r['from']}, to port: {r['to']}"
    proto = "ALL" if r["proto"] == "-1" else r["proto"].upper()
    return lim.fault(
        "InvalidPermission.Duplicate",
        f'the specified rule "peer: {peer}, {proto}{ports}, ALLOW" already exists',
    )


def additions(req: dict, rules: list[dict], group: dict, sgs: SecurityGroups) -> list[dict]:
    """The new rules an Authorize* request adds to `rules` (ingress or egress) of `group`, with
    ids; InvalidPermission.Duplicate for one that is there already."""
    added: list[dict] = []
    for r in permissions(req, group, sgs):
        if any(same(r, old) for old in rules + added):
            raise duplicate(r)
        r["id"] = "sgr-" + uuid.uuid4().hex[:17]
        added.append(r)
    return added


def removals(req: dict, rules: list[dict], group: dict, sgs: SecurityGroups) -> tuple[list[dict], list[dict]]:
    """(the rules of `rules` a Revoke* request removes, the requested ones that match none).

    By SecurityGroupRuleIds, every id must be there; by permissions, as in a default VPC: a rule
    that matches none is no error but comes back in UnknownIpPermissions."""
    if req.get("SecurityGroupRuleIds"):
        gone = [r for r in rules if r["id"] in req["SecurityGroupRuleIds"]]
        if len(gone) != len(set(req["SecurityGroupRuleIds"])):
            raise lim.fault("InvalidSecurityGroupRuleId.NotFound", "The specified rule ID does not exist")
        return gone, []
    wanted = permissions(req, group, sgs)
    gone = [r for r in rules if any(same(r, w) for w in wanted)]
    return gone, [w for w in wanted if not any(same(w, r) for r in rules)]


def requested_rule(change: dict, group: dict, sgs: SecurityGroups) -> dict:
    """A ModifySecurityGroupRules SecurityGroupRuleRequest -> a rule record without id (checked
    as Authorize* checks its IpPermissions)."""
    peers = [k for k in ("CidrIpv4", "CidrIpv6", "PrefixListId", "ReferencedGroupId") if change.get(k)]
    if not peers:
        raise lim.missing("CidrIpv4, CidrIpv6, PrefixListId or ReferencedGroupId")
    if len(peers) > 1:
        raise lim.combination(f"Only one of {', '.join(peers)} may be given for a rule")
    desc = {"Description": change["Description"]} if change.get("Description") else {}
    perm = {
        "IpProtocol": change.get("IpProtocol") or "",
        "FromPort": change.get("FromPort"),
        "ToPort": change.get("ToPort"),
        "IpRanges": [{"CidrIp": change["CidrIpv4"], **desc}] if change.get("CidrIpv4") else [],
        "Ipv6Ranges": [{"CidrIpv6": change["CidrIpv6"], **desc}] if change.get("CidrIpv6") else [],
        "PrefixListIds": [{"PrefixListId": change["PrefixListId"]}] if change.get("PrefixListId") else [],
        "UserIdGroupPairs": (
            [{"GroupId": change["ReferencedGroupId"], **desc}] if change.get("ReferencedGroupId") else []
        ),
    }
    return permissions({"IpPermissions": [perm]}, group, sgs)[0]


def render_permissions(rules: list[dict], account: str) -> list[dict]:
    out: dict[tuple, dict] = {}
    for r in rules:
        key = (r["proto"], r["from"], r["to"])
        p = out.setdefault(
            key,
            {
                "IpProtocol": r["proto"],
                "IpRanges": [],
                "Ipv6Ranges": [],
                "PrefixListIds": [],
                "UserIdGroupPairs": [],
            },
        )
        if r["proto"] != "-1":
            p["FromPort"], p["ToPort"] = r["from"], r["to"]
        desc = {"Description": r["desc"]} if r.get("desc") else {}
        if r.get("cidr"):
            p["IpRanges"].append({"CidrIp": r["cidr"], **desc})
        elif r.get("cidr6"):
            p["Ipv6Ranges"].append({"CidrIpv6": r["cidr6"], **desc})
        else:
            p["UserIdGroupPairs"].append({"GroupId": r["group"], "UserId": account, **desc})
    return list(out.values())


ALL_TRAFFIC = {"proto": "-1", "from": -1, "to": -1, "cidr": "0.0.0.0/0"}


def egress_rules(group: dict) -> list[dict]:
    """The group's egress rules: the stored ones, or AWS's default one while none were changed
    (its id derived from the group's, as Describe showed it before egress rules were stored)."""
    if "egress" in group:
        return group["egress"]
    return [{**ALL_TRAFFIC, "id": rule_id(group["id"], "egress")}]


def restricts_egress(group: dict) -> bool:
    """Whether the group's egress rules deny some outbound traffic (no all-traffic IPv4 rule)."""
    return not any(r["proto"] == "-1" and r.get("cidr") == ALL_TRAFFIC["cidr"] for r in egress_rules(group))
