"""Where a cache deployment sits: its cache subnet group (operations: subnet_groups.py), the
subnets EC2 knows by those ids, their VPC and zones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.context import RequestContext
from strata.services.elasticache.errors import fault

if TYPE_CHECKING:
    from strata.services.ec2.network import Network
    from strata.services.elasticache.core import ElastiCacheCore

DEFAULT = "default"


def not_found(name: str) -> Exception:
    return fault("CacheSubnetGroupNotFoundFault", f"Cache subnet group {name} not found.")


def network(core: ElastiCacheCore) -> Network | None:
    return getattr(core.runtime.peer("ec2"), "network", None)


def find(core: ElastiCacheCore, ctx: RequestContext, name: str | None) -> dict:
    """The group called `name` ("default" when None): a record, or the default VPC's."""
    name = (name or DEFAULT).lower()
    doc = core.store.get_doc("subnet_group", name)
    if doc is not None:
        return doc
    if name != DEFAULT:
        raise not_found(name)
    net = network(core)
    subnets = (
        [] if net is None else [s["id"] for s in net.subnets(ctx.account_id, ctx.region) if s.get("default")]
    )
    return {"id": DEFAULT, "description": "Default CacheSubnetGroup", "subnets": subnets, "tags": {}}


def subnets_in(core: ElastiCacheCore, ctx: RequestContext, group: dict) -> list[dict]:
    net = network(core)
    if net is None:
        return []
    return [s for s in (net.subnet(ctx.account_id, ctx.region, i) for i in group["subnets"]) if s]


def vpc_of(core: ElastiCacheCore, ctx: RequestContext, name: str | None) -> str | None:
    """The VPC of a deployment in cache subnet group `name` (None: unknown, the default VPC)."""
    subnets = subnets_in(core, ctx, find(core, ctx, name))
    return subnets[0]["vpc"] if subnets else None


def placement(core: ElastiCacheCore, ctx: RequestContext, group: dict) -> dict:
    """What a new deployment records of its cache subnet group: its name, subnets and zones in
    order (nothing for the default group, whose zones are the region's in turn)."""
    if group["id"] == DEFAULT:
        return {}
    zones = sorted({s["az"] for s in subnets_in(core, ctx, group)})
    return {"subnet_group": group["id"], "subnets": list(group["subnets"]), "zones": zones}
