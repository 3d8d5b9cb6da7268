"""Security group rules: the request forms (IpPermissions, or the flat CidrIp/IpProtocol/FromPort/
ToPort form) parsed into rule records and rendered back, shared by ingress and egress; and the
egress rules a group has (AWS's default all-traffic rule until they are changed).

A rule record: {"id", "proto" ("-1", "tcp", "udp", "icmp"), "from", "to", "cidr" | "group", "desc"}.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import TYPE_CHECKING

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
    keys = ("proto", "from", "to", "cidr", "group")
    return all(a.get(k) == b.get(k) for k in keys)


def permissions(req: dict, account: str, region: str, sgs: SecurityGroups) -> list[dict]:
    """IpPermissions (or the flat CidrIp/IpProtocol/FromPort/ToPort/SourceSecurityGroupName form)
    -> rule records without ids."""
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
            raise lim.fault("InvalidPrefixListID.NotFound", f"The prefix list ID '{pl}' does not exist")
        if p.get("Ipv6Ranges"):
            raise lim.invalid("IPv6 rules are not supported: Strata's endpoints are IPv4 only")
        found = False
        for r in p.get("IpRanges") or []:
            cidr = r.get("CidrIp") or ""
            try:
                net = ipaddress.IPv4Network(cidr, strict=False)
            except ValueError:
                raise lim.invalid(f"CIDR block {cidr} is malformed") from None
            rules.append(
                {"proto": proto, "from": lo, "to": hi, "cidr": str(net), "desc": r.get("Description")}
            )
            found = True
        for pair in p.get("UserIdGroupPairs") or []:
            g = sgs.group(account, region, pair.get("GroupId"), pair.get("GroupName"))
            rules.append(
                {"proto": proto, "from": lo, "to": hi, "group": g["id"], "desc": pair.get("Description")}
            )
            found = True
        if not found:
            raise lim.missing("IpRanges or UserIdGroupPairs")
    return rules


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
