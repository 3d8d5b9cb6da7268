"""Security groups (Create/Describe/DeleteSecurityGroup, Authorize/RevokeSecurityGroupIngress,
DescribeSecurityGroupRules; ModifySecurityGroupRules: rule_changes.py), stored in ec2.db and
enforced on the endpoints of the resources that carry them.

A group belongs to one VPC (network.py): each VPC has its own "default" group, names are unique
per VPC and looked up (GroupName) in the default VPC only, a rule references groups of its own
VPC, and a resource carries groups of its subnet group's VPC.

The source model (one machine, loopback addresses): a client's source address is the address its
socket is bound to (127.0.0.1 when it binds none), so a client bound to 127.0.0.2 is a different
"application server" from one on 127.0.0.1. This machine's instances (DescribeInstances: private
address 127.0.0.1) are members of their region's default security group, whose self-referencing
rule therefore lets unbound local clients reach a resource in the default group, as an instance in
the default group reaches one on AWS. A rule that references a group allows the addresses of that
group's members: the instances (default group) and the endpoint addresses of the resources
carrying it, except 127.0.0.1 (an RDS endpoint's address), which stands for the instances alone. Only TCP (or all-protocol) rules whose port range holds an endpoint's port apply.

Resources (RDS instances, ...) register `guards` here: the endpoints they listen on and their
group ids, kept as "guard" documents so rules are re-applied at every start. Enforcement is the
`strata.engines.firewall` nft table; where nftables cannot be used (not root, no nft) Strata
refuses what would restrict (a non-default group on a resource, revoking the default group's rule)
rather than accept it unenforced. Egress rules are filtered on the resources whose engines run in a
cgroup of their own (DB instances, ElastiCache nodes): see `egress`. The engines' own ports behind
the endpoints take connections only through them (or from Strata, or its replication): `internal`
(strata.engines.internal_guard), where cgroups tell Strata's processes apart.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.engines.cgroups import engine_cgroups
from strata.engines.egress_filter import Allow, Egress, EgressFilter
from strata.engines.firewall import Engines, Firewall, Guard
from strata.engines.internal_guard import InternalGuard
from strata.services.base import run_blocking
from strata.services.ec2 import limits as lim
from strata.services.ec2.egress import unenforceable
from strata.services.ec2.network import (
    default_security_group,
    default_vpc,
    default_vpc_deleted,
    no_default_vpc,
)
from strata.services.ec2.query import matching, page, spec_tags, tag_list, tag_values
from strata.services.ec2.rules import (
    additions,
    egress_rules,
    removals,
    render_permissions,
    restricts_egress,
    rule_id,
)

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider
    from strata.storage.metadata import MetadataStore

log = logging.getLogger("strata.ec2")
INSTANCE_ADDRESS = "127.0.0.1"  # this machine's instances (DescribeInstances' PrivateIpAddress)
MAX_NAME = 255


def _default_doc(account: str, region: str) -> dict:
    g = default_security_group(account, region)
    return {
        "id": g["id"],
        "name": "default",
        "description": "default VPC security group",
        "vpc": g["vpc"],
        "account": account,
        "region": region,
        "rules": [{"id": rule_id(g["id"], "self"), "proto": "-1", "from": -1, "to": -1, "group": g["id"]}],
    }


class SecurityGroups:
    """The stored groups and guards, and the firewall that enforces them."""

    def __init__(self, store: MetadataStore, firewall: Firewall | None) -> None:
        self.store = store
        self.firewall = firewall  # None: enforcement is not possible on this host
        self.egress: EgressFilter | None = None  # None: egress rules cannot be enforced here
        self.internal: InternalGuard | None = None  # None: engines' own ports are not kept behind
        # replication destinations that live only while Strata runs (a replica-lag relay's port),
        # by guard key: exempt as a guard's `replication` is (see `relay`)
        self.relays: dict[str, set[tuple[str, int]]] = {}
        self._lock = threading.RLock()

    # -- records -----------------------------------------------------------------------------------

    def groups(self, account: str, region: str) -> list[dict]:
        """The region's groups of the account, the default VPC's default one created on first sight
        (while that VPC exists)."""
        docs = [d for d in self.store.list_docs("sg") if d["account"] == account and d["region"] == region]
        default = default_security_group(account, region)["id"]
        if not any(d["id"] == default for d in docs) and not default_vpc_deleted(self.store, account, region):
            doc = _default_doc(account, region)
            self.store.put_doc("sg", doc["id"], doc)
            docs.append(doc)
        return docs

    def create_default(self, account: str, region: str, vpc_id: str) -> dict:
        """A new VPC's default security group (CreateVpc), stored."""
        gid = "sg-" + uuid.uuid4().hex[:17]
        doc = {
            **_default_doc(account, region),
            "id": gid,
            "vpc": vpc_id,
            "rules": [{"id": rule_id(gid, "self"), "proto": "-1", "from": -1, "to": -1, "group": gid}],
        }
        self.store.put_doc("sg", gid, doc)
        return doc

    def group(self, account: str, region: str, group_id: str | None, name: str | None = None) -> dict:
        """A group by id, or by name among the default VPC's (as AWS looks names up)."""
        default_vpc_id = default_vpc(account, region)["id"]
        for d in self.groups(account, region):
            if group_id and d["id"] == group_id:
                return d
            if not group_id and name and d["name"] == name and d["vpc"] == default_vpc_id:
                return d
        if group_id and not group_id.startswith("sg-"):
            raise lim.fault("InvalidGroupId.Malformed", f'Invalid id: "{group_id}" (expecting "sg-...")')
        raise lim.fault("InvalidGroup.NotFound", f"The security group '{group_id or name}' does not exist")

    def check_attachable(
        self,
        account: str,
        region: str,
        group_ids: list[str],
        vpc: str | None = None,
        *,
        egress: bool = False,
    ) -> list[str]:
        """The ids, validated for a resource in VPC `vpc` (the default VPC when None) to carry;
        none given: the VPC's default group. Errors as EC2 names them (a resource service may
        rename the code): a group of another VPC is InvalidParameterCombination. Refuses a
        restricting group where nothing enforces it: a group whose egress rules restrict unless
        the resource's engines are filtered (`egress`: they run in an engine cgroup) and this host
        can (egress.py), a non-default one without nftables."""
        filtered = egress and self.egress is not None
        if vpc is None and default_vpc_deleted(self.store, account, region):
            raise no_default_vpc()
        vpc = vpc or default_vpc(account, region)["id"]
        default = default_security_group(account, region)["id"]
        for g in group_ids:
            doc = self.group(account, region, g)
            if doc["vpc"] != vpc:
                raise lim.combination(
                    f"The security group {g} is in {doc['vpc']} and the resource in {vpc}: "
                    "a resource and its security groups must be in the same VPC"
                )
            if restricts_egress(doc) and not filtered:
                raise unenforceable(g)
            if g != default and self.firewall is None:
                raise lim.invalid(
                    f"Security group {g} cannot be enforced on this host (no nftables or not root): "
                    "only the default security group is supported"
                )
        if not group_ids:
            vpc_doc = next(
                d for d in self.groups(account, region) if d["vpc"] == vpc and d["name"] == "default"
            )
            vpc_default = vpc_doc["id"]
            if restricts_egress(vpc_doc) and not filtered:
                raise unenforceable(vpc_default)
            if vpc_default != default and self.firewall is None:
                raise lim.invalid(
                    f"The default security group of {vpc} cannot be enforced on this host "
                    "(no nftables or not root): only the default VPC's is supported"
                )
            return [vpc_default]
        return list(dict.fromkeys(group_ids))

    # -- guards ------------------------------------------------------------------------------------

    def guard(
        self,
        key: str,
        account: str,
        region: str,
        endpoints: list[tuple[str, int]],
        groups: list[str],
        *,
        own_addresses: bool = True,
        cgroup: str | None = None,
        replication: list[tuple[str, int]] | None = None,
        node_ports: tuple[int, int] | None = None,
    ) -> None:
        """Enforce `groups` on the resource `key`'s endpoints from now on (blocking).

        `own_addresses`: whether the endpoints' addresses are the resource's own, so that its
        connections come from them and a rule referencing one of its groups allows them. An Aurora
        cluster's endpoints are not (they are names for its members, as DNS names are on AWS).
        `cgroup`: the engine cgroup (strata.engines.cgroups) its engines run in, whose outbound
        connections the groups' egress rules then filter. `replication`: the (CIDR block, TCP port)
        destinations its engines dial for Strata's own replication (a Redis replica to its primary's
        node port): exempt from the egress rules of every resource of the same service and account
        (a global datastore's secondary dials the primary group's port), as AWS's groups do not
        filter its service traffic. `node_ports`: the range Strata allocates engine ports from,
        which its engines may dial on 127.0.0.1 for replication (a MariaDB replica to its source's
        node, whose port changes with failovers), except the ports of every guarded endpoint,
        which users reach and the egress rules filter."""
        with self._lock:
            doc: dict[str, Any] = {
                "id": key,
                "account": account,
                "region": region,
                "endpoints": endpoints,
                "groups": groups,
            }
            if not own_addresses:
                doc["own_addresses"] = False
            if cgroup:
                doc["cgroup"] = cgroup
            if replication:
                doc["replication"] = [[net, int(port)] for net, port in replication]
            if node_ports:
                doc["node_ports"] = list(node_ports)
            self.store.put_doc("guard", key, doc)
            self.apply()

    def relay(self, key: str, destination: tuple[str, int], on: bool) -> None:
        """Exempt (`on`) or no longer exempt a destination resource `key`'s engines dial for
        replication while Strata runs (a replica-lag relay), from its egress rules (blocking)."""
        with self._lock:
            held = self.relays.setdefault(key, set())
            (held.add if on else held.discard)(destination)
            if not held:
                del self.relays[key]
            self.apply()

    def unguard(self, key: str) -> None:
        with self._lock:
            self.relays.pop(key, None)
            if self.store.delete_doc("guard", key):
                self.apply()

    def users(self, group_id: str) -> list[dict]:
        return [d for d in self.store.list_docs("guard") if group_id in d["groups"]]

    def egress_unenforced(self, g: dict) -> bool:
        """Whether restricting `g`'s egress rules would go unenforced: it is the default VPC's
        default group (this machine's instances, whose connections are every local process's), or
        a resource whose engines Strata does not filter carries it."""
        if g["id"] == default_security_group(g["account"], g["region"])["id"]:
            return True
        # an Aurora cluster's endpoints are names for its members, which carry the group themselves
        users = [d for d in self.users(g["id"]) if d.get("own_addresses") is not False]
        return bool(users) and (self.egress is None or any(not d.get("cgroup") for d in users))

    def apply(self) -> None:
        """Rewrite the firewall from the stored groups and guards."""
        if self.firewall is None:
            return
        with self._lock:
            groups = {d["id"]: d for d in self.store.list_docs("sg")}
            guards_docs = self.store.list_docs("guard")
            members: dict[str, set[str]] = {}
            for d in guards_docs:  # 127.0.0.1 stands for the instances (default group) alone
                default = default_security_group(d["account"], d["region"])["id"]
                members.setdefault(default, set()).add(INSTANCE_ADDRESS)
                if d.get("own_addresses") is False:
                    continue
                for g in d["groups"]:
                    members.setdefault(g, set()).update(
                        a for a, _ in d["endpoints"] if a != INSTANCE_ADDRESS and "/" not in a
                    )
            wanted: dict[str, Guard] = {}
            for d in guards_docs:
                default = default_security_group(d["account"], d["region"])["id"]
                for address, port in d["endpoints"]:
                    sources: set[str] = set()
                    for gid in d["groups"]:
                        g = groups.get(gid) or (
                            _default_doc(d["account"], d["region"]) if gid == default else None
                        )
                        for r in (g or {}).get("rules", []):
                            if r["proto"] == "-1" or (r["proto"] == "tcp" and r["from"] <= port <= r["to"]):
                                if r.get("cidr"):
                                    sources.add(r["cidr"])
                                elif r.get("group"):
                                    sources.update(f"{a}/32" for a in members.get(r["group"], ()))
                    wanted[f"{d['id']}:{address}:{port}"] = Guard(address, int(port), tuple(sorted(sources)))
            engines = _engine_sets(guards_docs, self.relays)
            self.firewall.set_all(wanted, engines)
            if self.internal is not None:
                self.internal.set_all({int(p) for d in guards_docs for _, p in d["endpoints"]}, engines)
            if self.egress is not None:
                self.egress.set_all(_egress_sets(guards_docs, groups, members, self.relays))


def _service(d: dict) -> tuple[str, str]:
    return d["account"], d["id"].split(":", 1)[0]


def _egress_sets(
    guards: list[dict],
    groups: dict[str, dict],
    members: dict[str, set[str]],
    relays: dict[str, set[tuple[str, int]]] | None = None,
) -> dict[str, Egress]:
    """The egress sets of the guarded resources whose engines run in a cgroup of their own; what
    they dial for Strata's replication (`guard(replication=...)`) passes whatever the rules say."""
    cgroups = engine_cgroups()
    out: dict[str, Egress] = {}
    if cgroups is None:
        return out
    service = _service_destinations(guards, relays)
    for d in guards:
        if not d.get("cgroup"):
            continue
        allowed: set[Allow] = set(service[d["id"]])
        for gid in d["groups"]:
            for r in egress_rules(groups.get(gid) or {"id": gid}):
                nets = [r["cidr"]] if r.get("cidr") else [r["cidr6"]] if r.get("cidr6") else []
                if r.get("group"):
                    nets = [f"{a}/32" for a in members.get(r["group"], ())]
                allowed.update(Allow(r["proto"], r["from"], r["to"], n) for n in nets)
        out[d["id"]] = Egress(cgroups.ref(d["cgroup"]), tuple(sorted(allowed, key=repr)))
    return out


def _service_destinations(
    guards: list[dict], relays: dict[str, set[tuple[str, int]]] | None = None
) -> dict[str, set[Allow]]:
    """What each guarded resource with an engine cgroup dials for Strata's replication, by guard
    key: every `guard(replication=...)` destination of its service and account, its node ports
    (`guard(node_ports=...)`, but the guarded endpoints' ports) and its relays."""
    replication: dict[tuple[str, str], set[Allow]] = {}
    endpoint_ports = {int(p) for d in guards for _, p in d["endpoints"]}
    for d in guards:
        replication.setdefault(_service(d), set()).update(
            Allow("tcp", int(port), int(port), net) for net, port in d.get("replication") or ()
        )
    out: dict[str, set[Allow]] = {}
    for d in guards:
        if not d.get("cgroup"):
            continue
        allowed = set(replication.get(_service(d), set()))
        if d.get("node_ports"):
            lo, hi = d["node_ports"]
            allowed.update(_node_ports(lo, hi, endpoint_ports))
        allowed.update(Allow("tcp", port, port, f"{a}/32") for a, port in (relays or {}).get(d["id"], ()))
        out[d["id"]] = allowed
    return out


def _engine_sets(guards: list[dict], relays: dict[str, set[tuple[str, int]]]) -> dict[str, Engines]:
    """The engines whose own connections the firewall judges as a client's (strata.engines.firewall):
    those of every guarded resource that runs them in a cgroup of its own."""
    cgroups = engine_cgroups()
    if cgroups is None:
        return {}
    cgroup_of = {d["id"]: d.get("cgroup") for d in guards}
    return {
        key: Engines(cgroups.ref(cgroup_of[key]), tuple(sorted(allowed, key=repr)))
        for key, allowed in _service_destinations(guards, relays).items()
    }


def _node_ports(lo: int, hi: int, endpoints: set[int]) -> list[Allow]:
    """TCP to 127.0.0.1 on the ports lo..hi but `endpoints`, as port ranges."""
    out, start = [], lo
    for p in sorted(e for e in endpoints if lo <= e <= hi) + [hi + 1]:
        if start < p:
            out.append(Allow("tcp", start, p - 1, "127.0.0.1/32"))
        start = p + 1
    return out


class SecurityGroupsMixin:
    """Mixed into EC2Provider (which holds `security_groups`)."""

    def create_security_group(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        sgs = self.security_groups
        name, description = req.get("GroupName"), req.get("Description")
        if not name:
            raise lim.missing("GroupName")
        if not description:
            raise lim.missing("GroupDescription")
        if len(name) > MAX_NAME or len(description) > MAX_NAME:
            raise lim.invalid("Security group name and description may be at most 255 characters")
        if name.lower() == "default":
            raise lim.invalid("Cannot use reserved security group name: default")
        if name.lower().startswith("sg-"):
            raise lim.invalid("Group names may not be in the format sg-*.")
        vpc = default_vpc(ctx.account_id, ctx.region)["id"]
        if not req.get("VpcId") and default_vpc_deleted(self.store, ctx.account_id, ctx.region):
            raise lim.fault("VPCIdNotSpecified", "No default VPC for this user")
        if req.get("VpcId"):
            vpc = self.network.vpc(ctx.account_id, ctx.region, req["VpcId"])["id"]
        with sgs._lock:
            if any(d["name"] == name and d["vpc"] == vpc for d in sgs.groups(ctx.account_id, ctx.region)):
                raise lim.fault(
                    "InvalidGroup.Duplicate", f"The security group '{name}' already exists for VPC '{vpc}'"
                )
            tags = spec_tags(req, "security-group")
            if req.get("DryRun"):
                raise lim.dry_run()
            gid = "sg-" + uuid.uuid4().hex[:17]
            doc = {
                "tags": tags,
                "id": gid,
                "name": name,
                "description": description,
                "vpc": vpc,
                "account": ctx.account_id,
                "region": ctx.region,
                "rules": [],
            }
            self.store.put_doc("sg", gid, doc)
        out: dict[str, Any] = {"GroupId": gid, "SecurityGroupArn": self._sg_arn(ctx, gid)}
        if tags:
            out["Tags"] = tag_list(tags)
        return out

    def delete_security_group(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        sgs = self.security_groups
        with sgs._lock:
            g = sgs.group(ctx.account_id, ctx.region, req.get("GroupId"), req.get("GroupName"))
            if g["name"] == "default":
                raise lim.fault(
                    "CannotDelete",
                    f'the specified group: "{g["id"]}" name: "default" cannot be deleted by a user',
                )
            referenced = any(
                r.get("group") == g["id"]
                for d in sgs.groups(ctx.account_id, ctx.region)
                if d["id"] != g["id"]
                for r in d["rules"] + egress_rules(d)
            )
            if sgs.users(g["id"]) or referenced:
                raise lim.fault("DependencyViolation", f"resource {g['id']} has a dependent object")
            if req.get("DryRun"):
                raise lim.dry_run()
            self.store.delete_doc("sg", g["id"])
        return {"Return": True, "GroupId": g["id"]}

    def describe_security_groups(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if req.get("DryRun"):
            raise lim.dry_run()
        sgs = self.security_groups
        docs = sgs.groups(ctx.account_id, ctx.region)
        ids, names = req.get("GroupIds") or [], req.get("GroupNames") or []
        for gid in ids:
            sgs.group(ctx.account_id, ctx.region, gid)
        for name in names:
            sgs.group(ctx.account_id, ctx.region, None, name)
        if ids or names:
            default_vpc_id = default_vpc(ctx.account_id, ctx.region)["id"]
            docs = [d for d in docs if d["id"] in ids or (d["name"] in names and d["vpc"] == default_vpc_id)]

        def values(d: dict, name: str) -> list[Any] | None:
            table = {
                "group-id": [d["id"]],
                "group-name": [d["name"]],
                "vpc-id": [d["vpc"]],
                "owner-id": [ctx.account_id],
                "description": [d["description"]],
                "ip-permission.cidr": [r["cidr"] for r in d["rules"] if r.get("cidr")],
                "ip-permission.group-id": [r["group"] for r in d["rules"] if r.get("group")],
                "ip-permission.protocol": [r["proto"] for r in d["rules"]],
                "ip-permission.ipv6-cidr": [r["cidr6"] for r in d["rules"] if r.get("cidr6")],
                "ip-permission.from-port": [r["from"] for r in d["rules"]],
                "ip-permission.to-port": [r["to"] for r in d["rules"]],
                "egress.ip-permission.cidr": [r["cidr"] for r in egress_rules(d) if r.get("cidr")],
                "egress.ip-permission.group-id": [r["group"] for r in egress_rules(d) if r.get("group")],
                "egress.ip-permission.protocol": [r["proto"] for r in egress_rules(d)],
                "egress.ip-permission.ipv6-cidr": [r["cidr6"] for r in egress_rules(d) if r.get("cidr6")],
            }
            return table.get(name, tag_values(d, name))

        docs.sort(key=lambda d: d["id"])
        shown, token = page(matching(docs, req.get("Filters"), values), req, ids_member="GroupIds")
        out: dict[str, Any] = {
            "SecurityGroups": [
                {
                    "GroupId": d["id"],
                    "GroupName": d["name"],
                    "Description": d["description"],
                    "VpcId": d["vpc"],
                    "OwnerId": ctx.account_id,
                    "SecurityGroupArn": self._sg_arn(ctx, d["id"]),
                    "Tags": tag_list(d.get("tags") or {}),
                    "IpPermissions": render_permissions(d["rules"], ctx.account_id),
                    "IpPermissionsEgress": render_permissions(egress_rules(d), ctx.account_id),
                }
                for d in shown
            ]
        }
        if token:
            out["NextToken"] = token
        return out

    async def authorize_security_group_ingress(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        sgs = self.security_groups
        with sgs._lock:
            g = sgs.group(ctx.account_id, ctx.region, req.get("GroupId"), req.get("GroupName"))
            added = additions(req, g["rules"], g, sgs)
            if req.get("DryRun"):
                raise lim.dry_run()
            g["rules"] += added
            self.store.put_doc("sg", g["id"], g)
        await run_blocking(sgs.apply)
        return {
            "Return": True,
            "SecurityGroupRules": [self._rule_out(ctx, g, r) for r in added],
        }

    async def revoke_security_group_ingress(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        sgs = self.security_groups
        with sgs._lock:
            g = sgs.group(ctx.account_id, ctx.region, req.get("GroupId"), req.get("GroupName"))
            gone, unknown = removals(req, g["rules"], g, sgs)
            if gone and sgs.firewall is None and g["name"] == "default":
                raise lim.invalid(
                    "The default security group's rules cannot be restricted on this host "
                    "(no nftables or not root): Strata could not enforce them"
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            g["rules"] = [r for r in g["rules"] if r not in gone]
            self.store.put_doc("sg", g["id"], g)
        await run_blocking(sgs.apply)
        out: dict[str, Any] = {
            "Return": True,
            "RevokedSecurityGroupRules": [self._rule_out(ctx, g, r) for r in gone],
        }
        if unknown:
            out["UnknownIpPermissions"] = render_permissions(unknown, ctx.account_id)
        return out

    def describe_security_group_rules(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if req.get("DryRun"):
            raise lim.dry_run()
        rules = []
        for g in self.security_groups.groups(ctx.account_id, ctx.region):
            rules += [{"id": r["id"], "out": self._rule_out(ctx, g, r)} for r in g["rules"]]
            rules += [{"id": r["id"], "out": self._egress_out(ctx, g, r)} for r in egress_rules(g)]
        wanted = req.get("SecurityGroupRuleIds") or []
        for rid in wanted:
            if not any(r["id"] == rid for r in rules):
                raise lim.fault(
                    "InvalidSecurityGroupRuleId.NotFound",
                    f"The security group rule ID '{rid}' does not exist",
                )
        if wanted:
            rules = [r for r in rules if r["id"] in wanted]

        def values(d: dict, name: str) -> list[Any] | None:
            table = {"group-id": [d["out"]["GroupId"]], "security-group-rule-id": [d["id"]]}
            return table.get(name)

        rules.sort(key=lambda r: r["id"])
        shown, token = page(
            matching(rules, req.get("Filters"), values), req, ids_member="SecurityGroupRuleIds"
        )
        out: dict[str, Any] = {"SecurityGroupRules": [r["out"] for r in shown]}
        if token:
            out["NextToken"] = token
        return out

    def _sg_arn(self: EC2Provider, ctx: RequestContext, gid: str) -> str:
        return f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:security-group/{gid}"

    def _rule_out(self: EC2Provider, ctx: RequestContext, g: dict, r: dict) -> dict:
        out: dict[str, Any] = {
            "SecurityGroupRuleId": r["id"],
            "SecurityGroupRuleArn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:security-group-rule/{r['id']}",
            "GroupId": g["id"],
            "GroupOwnerId": ctx.account_id,
            "IsEgress": False,
            "IpProtocol": r["proto"],
            "FromPort": r["from"],
            "ToPort": r["to"],
        }
        if r.get("cidr"):
            out["CidrIpv4"] = r["cidr"]
        elif r.get("cidr6"):
            out["CidrIpv6"] = r["cidr6"]
        else:
            out["ReferencedGroupInfo"] = {"GroupId": r["group"], "UserId": ctx.account_id}
        if r.get("desc"):
            out["Description"] = r["desc"]
        return out
