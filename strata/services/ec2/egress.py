"""Egress rules of security groups (Authorize/RevokeSecurityGroupEgress), stored as AWS keeps them
and enforced on the connections a resource's engines open (strata.engines.egress_filter).

Every group starts with AWS's default egress rule, all protocols to 0.0.0.0/0 (`rules.egress_rules`).
On one machine a resource's outbound connections are told from every other process's by the
process, not the address: engines whose resource registers an engine cgroup with its guard
(`SecurityGroups.guard(cgroup=...)`: DB instances and Aurora members, ElastiCache cache clusters
and replication groups) run in a cgroup of their own, which nftables matches, and
their new connections to destinations no egress rule of their groups allows are dropped.
Connections Strata makes on a resource's behalf are not filtered, as AWS's groups do not filter
its service traffic: PostgreSQL replicas stream from their source over unix sockets, and what a
resource's engines dial for replication over TCP is exempt: a MariaDB replica to its source's node
port (`guard(node_ports=...)`: 127.0.0.1 on the engine port range but the guarded endpoints'
ports), a Redis replica to its primary's port, a global datastore's secondary to the primary
group's (`guard(replication=...)`).

Where that is not possible a restricting rule set (no all-protocols rule to 0.0.0.0/0 left) is
refused rather than stored unenforced: on the default VPC's default group (this machine's
instances, whose connections are every local process's), on a group a resource carries whose
engines are not in a cgroup (ElastiCache Serverless; NFS servers, which open no connections for
a user), and on every group where Strata
cannot make cgroups or nft rules (not root, no cgroup v2 under /sys/fs/cgroup, no nftables); such
a group cannot be attached to those resources either (`SecurityGroups.check_attachable`).
Terraform's way (revoke a new group's default egress rule, then authorize the configured ones)
works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.ec2 import limits as lim
from strata.services.ec2.rules import additions, egress_rules, removals, render_permissions, restricts_egress

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider


def unenforceable(group_id: str) -> ServiceError:
    return lim.invalid(
        f"Security group {group_id} restricts outbound traffic, which Strata can filter only for "
        "DB instances and ElastiCache nodes on a host with nftables and cgroup v2: a group "
        "carried by another "
        "resource (the default VPC's default group: this machine's instances) must keep an egress "
        "rule allowing all traffic to 0.0.0.0/0"
    )


class EgressMixin:
    """Mixed into EC2Provider (which holds `security_groups`), beside SecurityGroupsMixin."""

    async def authorize_security_group_egress(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        sgs = self.security_groups
        if not req.get("GroupId"):
            raise lim.missing("GroupId")
        with sgs._lock:
            g = sgs.group(ctx.account_id, ctx.region, req["GroupId"])
            rules = egress_rules(g)
            added = additions(req, rules, g, sgs)
            if req.get("DryRun"):
                raise lim.dry_run()
            g["egress"] = rules + added
            self.store.put_doc("sg", g["id"], g)
        await run_blocking(sgs.apply)
        return {"Return": True, "SecurityGroupRules": [self._egress_out(ctx, g, r) for r in added]}

    async def revoke_security_group_egress(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        sgs = self.security_groups
        if not req.get("GroupId"):
            raise lim.missing("GroupId")
        with sgs._lock:
            g = sgs.group(ctx.account_id, ctx.region, req["GroupId"])
            rules = egress_rules(g)
            gone, unknown = removals(req, rules, g, sgs)
            left = [r for r in rules if r not in gone]
            if restricts_egress({**g, "egress": left}) and sgs.egress_unenforced(g):
                raise unenforceable(g["id"])
            if req.get("DryRun"):
                raise lim.dry_run()
            g["egress"] = left
            self.store.put_doc("sg", g["id"], g)
        await run_blocking(sgs.apply)
        out: dict[str, Any] = {
            "Return": True,
            "RevokedSecurityGroupRules": [self._egress_out(ctx, g, r) for r in gone],
        }
        if unknown:
            out["UnknownIpPermissions"] = render_permissions(unknown, ctx.account_id)
        return out

    def _egress_out(self: EC2Provider, ctx: RequestContext, g: dict, r: dict) -> dict:
        return {**self._rule_out(ctx, g, r), "IsEgress": True}
