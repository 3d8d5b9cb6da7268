"""Moving a cache cluster into or out of a replication group, as AWS allows:

- CreateReplicationGroup with PrimaryClusterId: an existing standalone Redis/Valkey cluster becomes
  the group's primary (its data, address and port stay) and new replicas sync from it.
- DeleteReplicationGroup with RetainPrimaryCluster: the replicas go, the primary stays as a
  standalone cache cluster on the same address and port.

The port keeps its allocation owner across the move (`port_owner` in the record), so it is released
only when the resource now using it is deleted.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.elasticache import events
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.errors import combination, fault
from strata.services.elasticache.nodes import PRIMARY, port_owner
from strata.sim.clock import clock
from strata.sim.meter import meter

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

# Settings that belong to the deployment: they move between a standalone cluster and its group.
DEPLOYMENT_FIELDS = (
    "security_groups",
    "sg_scope",
    "engine",
    "engine_version",
    "node_type",
    "port",
    "auth",
    "auth_modified",
    "param_group",
    "transit",
    "at_rest",
    "retention",
    "window",
    "maintenance_window",
    "last_auto_snapshot",
    "metered_at",
)


def new_port_owner(kind: str, name: str) -> str:
    """A fresh allocation owner: unique per resource *instance*, so a group re-created under the name
    of one whose primary was retained never shares that primary's port."""
    return f"elasticache/{kind}/{name}/{uuid.uuid4().hex[:8]}"


class MembershipOperations(ElastiCacheCore):
    """A mixin of ElastiCacheProvider (through ReplicationGroupOperations)."""

    async def _create_group_from_cluster(
        self: ElastiCacheProvider, ctx: RequestContext, req: dict, gid: str
    ) -> dict:
        """CreateReplicationGroup with PrimaryClusterId (cluster mode disabled only)."""
        primary = self._cluster_doc(req["PrimaryClusterId"])
        if primary.get("group"):
            raise fault(
                "InvalidCacheClusterStateFault",
                f"Cache cluster {primary['id']} is already in a replication group.",
            )
        if primary["engine"] not in v.REDIS_LIKE:
            raise combination(
                "Only Valkey and Redis OSS clusters can become the primary of a replication group."
            )
        if (req.get("NumNodeGroups") or 1) > 1 or req.get("ClusterMode") == "enabled":
            raise combination("PrimaryClusterId cannot be used with cluster mode enabled.")
        total = req.get("NumCacheClusters") or ((req.get("ReplicasPerNodeGroup") or 0) + 1)
        if not 1 <= total <= v.MAX_CLUSTERS_PER_GROUP:
            raise fault(
                "InvalidParameterValueException",
                f"NumCacheClusters must be between 1 and {v.MAX_CLUSTERS_PER_GROUP}.",
            )
        failover = bool(req.get("AutomaticFailoverEnabled"))
        if failover and total < 2:
            raise combination(
                "Automatic failover requires at least one read replica (NumCacheClusters >= 2)."
            )
        if req.get("MultiAZEnabled") and not failover:
            raise combination("MultiAZEnabled requires AutomaticFailoverEnabled.")
        async with self._resource_lock(primary["id"]), self._resource_lock(gid):
            primary = self._cluster_doc(primary["id"])
            if primary["status"] != "available":
                raise fault(
                    "InvalidCacheClusterStateFault", f"Cache cluster {primary['id']} is not available."
                )
            group: dict = {
                "id": gid,
                "description": req["ReplicationGroupDescription"],
                "status": "creating",
                "created": clock.now().isoformat(),
                "bus_port": None,
                "cluster_mode": False,
                "kms_key_id": None,
                "tags": v.tags(req.get("Tags")),
                "automatic_failover": failover,
                "multi_az": bool(req.get("MultiAZEnabled")),
                "snapshotting_cluster": None,
                "config_holder": None,
                "port_owner": port_owner(primary, "cluster"),
                "node_groups": [
                    {"id": "0001", "slots": None, "primary": primary["id"], "members": [primary["id"]]}
                ],
            }
            for name in DEPLOYMENT_FIELDS:
                if name in primary:
                    group[name] = primary.pop(name)
            primary.pop("port_owner", None)
            primary.pop("tags", None)
            primary.update(group=gid, node_group="0001")
            self.store.put_doc("group", gid, group)
            self.store.put_doc("cluster", primary["id"], primary)
            ng = group["node_groups"][0]
            for _ in range(total - 1):
                member = self._new_member(group, ng, ctx.region)
                await run_blocking(self._add_replica, group, ng, member)
            self._save_group(group, "available")
            events.record(self.store, gid, "replication-group", f"Replication group {gid} created")
            meter.record(
                "elasticache", "NodeCreated", total - 1, "node", node_type=group["node_type"], group=gid
            )
            return {"ReplicationGroup": await run_blocking(self._render_group, ctx, group, "creating")}

    async def _retain_primary(self: ElastiCacheProvider, group: dict) -> None:
        """DeleteReplicationGroup with RetainPrimaryCluster: drop the replicas, keep the primary as a
        standalone cluster (the caller holds the group's lock and deletes the group record)."""
        if group.get("cluster_mode"):
            raise combination("RetainPrimaryCluster is not supported with cluster mode enabled.")
        ng = group["node_groups"][0]
        for cid in [c for c in ng["members"] if c != ng["primary"]]:
            await run_blocking(self.engines.stop_cluster, cid, True)
            ng["members"].remove(cid)
            self.store.delete_doc("cluster", cid)
        primary = self._cluster_doc(ng["primary"])
        for name in DEPLOYMENT_FIELDS:
            if name in group:
                primary[name] = group[name]
        primary.update(
            group=None, node_group=None, tags=[], port_owner=port_owner(group, "group"), status="available"
        )
        self.store.put_doc("cluster", primary["id"], primary)
        await run_blocking(self._drop_reader_route, group)
        server = self.engines.get(primary["id"])
        if server is not None and server.running():
            await run_blocking(self.engines.apply_binds, {primary["id"]: [PRIMARY]})
