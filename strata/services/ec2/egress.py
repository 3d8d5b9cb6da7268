"""Egress rules of security groups (Authorize/RevokeSecurityGroupEgress), stored as AWS keeps them.

Every group starts with AWS's default egress rule, all protocols to 0.0.0.0/0 (`rules.egress_rules`).
Egress rules filter the connections a group's members open, and Strata filters none of those: its
engines' own connections (replication) are the service's, and this machine's instances, which are
in the default group, are every local client. So a rule set that would restrict outbound traffic
(no all-protocols rule to 0.0.0.0/0 left) is accepted only where it restricts nothing: on a group
no resource carries, which `SecurityGroups.check_attachable` then refuses to attach. Revoking the
all-traffic rule of a group in use, the default group included, is refused rather than stored
unenforced. Terraform's way (revoke a new group's default egress rule, then authorize the
configured ones) works, and the group can be attached, when the configured rules keep 0.0.0.0/0.

What enforcing would take (not built): the outbound connections a resource's engine opens itself
(dblink, postgres_fdw, a logical replication subscription, Redis MIGRATE) are told apart from
every other local process only by the process, not the address; nftables can match a socket's
cgroup v2 (`socket cgroupv2 level N "<path>"` in an output chain, checked to work on this kind of
host), so each engine would have to start in a cgroup of its own (restarts and failovers
included), and the connections Strata makes on the resource's behalf (a replica's to its
source), which AWS's groups do not filter, exempted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.ec2 import limits as lim
from strata.services.ec2.rules import additions, egress_rules, removals, render_permissions, restricts_egress

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider


def unenforceable(group_id: str) -> ServiceError:
    return lim.invalid(
        f"Security group {group_id} restricts outbound traffic, which Strata does not filter: a group "
        "carried by a resource (the default group: this machine's instances) must keep an egress "
        "rule allowing all traffic to 0.0.0.0/0"
    )


class EgressMixin:
    """Mixed into EC2Provider (which holds `security_groups`), beside SecurityGroupsMixin."""

    def authorize_security_group_egress(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
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
        return {"Return": True, "SecurityGroupRules": [self._egress_out(ctx, g, r) for r in added]}

    def revoke_security_group_egress(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        sgs = self.security_groups
        if not req.get("GroupId"):
            raise lim.missing("GroupId")
        with sgs._lock:
            g = sgs.group(ctx.account_id, ctx.region, req["GroupId"])
            rules = egress_rules(g)
            gone, unknown = removals(req, rules, g, sgs)
            left = [r for r in rules if r not in gone]
            in_use = g["name"] == "default" or bool(sgs.users(g["id"]))
            if in_use and restricts_egress({**g, "egress": left}):
                raise unenforceable(g["id"])
            if req.get("DryRun"):
                raise lim.dry_run()
            g["egress"] = left
            self.store.put_doc("sg", g["id"], g)
        out: dict[str, Any] = {
            "Return": True,
            "RevokedSecurityGroupRules": [self._egress_out(ctx, g, r) for r in gone],
        }
        if unknown:
            out["UnknownIpPermissions"] = render_permissions(unknown, ctx.account_id)
        return out

    def _egress_out(self: EC2Provider, ctx: RequestContext, g: dict, r: dict) -> dict:
        return {**self._rule_out(ctx, g, r), "IsEgress": True}
