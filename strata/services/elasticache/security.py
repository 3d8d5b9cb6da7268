"""SecurityGroupIds of replication groups: validated against EC2's security groups, shown on each
member cache cluster, and enforced on the deployment's port (strata.services.ec2.security_groups).

The guard covers the deployment's port on every loopback address (127.0.0.0/8): its nodes, primary
and reader endpoints all listen on that one port, which no other deployment holds, so nodes added
or moved later are covered without re-guarding. It is keyed by the port's owner, which stays with
the port when a group's primary is retained as a standalone cluster (membership.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.elasticache import subnets
from strata.services.elasticache.errors import combination, invalid
from strata.services.elasticache.nodes import engine_cgroup, port_owner

if TYPE_CHECKING:
    from strata.services.ec2.security_groups import SecurityGroups
    from strata.services.elasticache.provider import ElastiCacheProvider

ALL_LOOPBACK = "127.0.0.0/8"


def _groups(provider: ElastiCacheProvider) -> SecurityGroups | None:
    return getattr(provider.runtime.peer("ec2"), "security_groups", None)


def security_groups(
    provider: ElastiCacheProvider, ctx: RequestContext, ids: list[str] | None, subnet_group: str | None = None
) -> list[str]:
    """The deployment's group ids, of the VPC of its cache subnet group (that VPC's default group
    when none are given)."""
    sgs = _groups(provider)
    if sgs is None:
        if ids:
            raise invalid("SecurityGroupIds need Strata's EC2 service")
        return []
    vpc = subnets.vpc_of(provider, ctx, subnet_group)
    try:
        return sgs.check_attachable(ctx.account_id, ctx.region, list(ids or []), vpc, egress=True)
    except ServiceError as e:
        if e.code == "InvalidParameterCombination":
            raise combination(e.message) from None
        raise invalid(e.message) from None


def replication(dep: dict) -> list[tuple[str, int]]:
    """What the deployment's nodes dial for replication, exempt from egress rules: its port on
    every loopback address (a replica to its primary, a global datastore's secondary to the primary
    group's port: every deployment's is exempt for every other of the account) and its cluster bus."""
    return [(ALL_LOOPBACK, p) for p in (dep["port"], dep.get("bus_port")) if p]


def guard(provider: ElastiCacheProvider, owner: str, dep: dict, *, engines: bool = True) -> None:
    """Enforce the deployment's groups on its port (and, `engines`: its nodes run in its engine
    cgroup, on their outbound connections) from now on, and record its cache subnet group's
    subnets as in use (DeleteSubnet: DependencyViolation) (blocking)."""
    sgs = _groups(provider)
    if sgs is not None and dep.get("security_groups"):
        account, region = dep["sg_scope"]
        sgs.guard(
            f"elasticache:{owner}",
            account,
            region,
            [(ALL_LOOPBACK, dep["port"])],
            dep["security_groups"],
            cgroup=engine_cgroup(dep) if engines else None,
            replication=replication(dep) if engines else None,
        )
    net = getattr(provider.runtime.peer("ec2"), "network", None)
    if net is not None and dep.get("subnets"):
        net.use(f"elasticache:{owner}", dep["subnets"])


def engines_guarded(provider: ElastiCacheProvider, owner: str, dep: dict) -> bool:
    """Whether the deployment's nodes are judged as its guard says (or nothing guards it): a
    guard recorded before its nodes' cgroup was (a serverless cache's) is not."""
    sgs = _groups(provider)
    if sgs is None or not dep.get("security_groups"):
        return True
    recorded = sgs.store.get_doc("guard", f"elasticache:{owner}")
    return recorded is not None and recorded.get("cgroup") == engine_cgroup(dep)


def relay(provider: ElastiCacheProvider, owner: str, destination: tuple[str, int], on: bool) -> None:
    """Exempt a replica-lag relay the deployment's replicas follow (replica_lag.py) from its
    egress rules while it runs (`on`), as the primary's port is (blocking)."""
    sgs = _groups(provider)
    if sgs is not None:
        sgs.relay(f"elasticache:{owner}", destination, on)


def unguard(provider: ElastiCacheProvider, owner: str) -> None:
    sgs = _groups(provider)
    if sgs is not None:
        sgs.unguard(f"elasticache:{owner}")
    net = getattr(provider.runtime.peer("ec2"), "network", None)
    if net is not None:
        net.release(f"elasticache:{owner}")


def guard_old_records(provider: ElastiCacheProvider) -> int:
    """At start-up: cache clusters and replication groups recorded before their groups were
    enforced carry none; give each its VPC's default group, as AWS gives every one, and guard it,
    rather than leave its port open until it is modified (blocking). How many were given one."""
    sgs = _groups(provider)
    if sgs is None:
        return 0
    store, n = provider.store, 0
    for kind in ("cluster", "group"):
        for doc in store.list_docs(kind):
            if doc.get("security_groups") or (kind == "cluster" and doc.get("group")) or not doc.get("port"):
                continue
            account, region = store.owner(doc), store.region_of(doc)
            with store.acting_for(doc):
                doc["security_groups"] = sgs.check_attachable(account, region, [])
                doc["sg_scope"] = [account, region]
                store.put_doc(kind, doc["id"], doc)
                guard(provider, port_owner(doc, kind), doc)
            n += 1
    return n


def rendered(dep: dict) -> list[dict]:
    return [{"SecurityGroupId": g, "Status": "active"} for g in dep.get("security_groups") or []]
