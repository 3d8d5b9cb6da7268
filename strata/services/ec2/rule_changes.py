"""ModifySecurityGroupRules: a group's rules (ingress or egress) changed in place, by rule id.

Each SecurityGroupRuleRequest replaces the whole rule (protocol, ports, one peer, description),
checked as Authorize* checks its IpPermissions; the rule keeps its id. The same limits apply as to
Revoke*: a change that would leave a group in use restricting outbound traffic is refused
(egress.py), and so is a change to a default group's inbound rules where nothing enforces them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.ec2 import limits as lim
from strata.services.ec2.egress import unenforceable
from strata.services.ec2.rules import duplicate, egress_rules, requested_rule, restricts_egress, same

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider


class RuleChangesMixin:
    """Mixed into EC2Provider (which holds `security_groups`)."""

    async def modify_security_group_rules(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        sgs = self.security_groups
        if not req.get("GroupId"):
            raise lim.missing("GroupId")
        if not req.get("SecurityGroupRules"):
            raise lim.missing("SecurityGroupRules")
        with sgs._lock:
            g = sgs.group(ctx.account_id, ctx.region, req["GroupId"])
            sides = {"rules": list(g["rules"]), "egress": list(egress_rules(g))}
            changed: set[str] = set()
            for change in req["SecurityGroupRules"]:
                rid = change.get("SecurityGroupRuleId")
                side = next((k for k, rules in sides.items() if any(r["id"] == rid for r in rules)), None)
                if side is None:
                    raise lim.fault(
                        "InvalidSecurityGroupRuleId.NotFound",
                        f"The security group rule ID '{rid}' does not exist",
                    )
                new = {**requested_rule(change.get("SecurityGroupRule") or {}, g, sgs), "id": rid}
                rules = sides[side]
                if any(same(new, r) for r in rules if r["id"] != rid):
                    raise duplicate(new)
                sides[side] = [new if r["id"] == rid else r for r in rules]
                changed.add(side)
            restricting = restricts_egress({**g, "egress": sides["egress"]})
            if "egress" in changed and restricting and sgs.egress_unenforced(g):
                raise unenforceable(g["id"])
            if "rules" in changed and sgs.firewall is None and g["name"] == "default":
                raise lim.invalid(
                    "The default security group's rules cannot be changed on this host "
                    "(no nftables or not root): Strata could not enforce them"
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            for side in changed:
                g[side] = sides[side]
            self.store.put_doc("sg", g["id"], g)
        await run_blocking(sgs.apply)
        return {"Return": True}
