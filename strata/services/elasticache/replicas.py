"""Replica count changes: IncreaseReplicaCount, DecreaseReplicaCount, and CreateCacheCluster /
DeleteCacheCluster on a member of a replication group.

A new replica is a fresh node told to follow its node group's primary: REPLICAOF without cluster
mode, CLUSTER MEET + CLUSTER REPLICATE with it. A removed one is stopped and, in cluster mode,
forgotten by every other node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from strata.context import RequestContext
from strata.engines import redis_cluster
from strata.engines.process import EngineError, wait_until
from strata.services.base import run_blocking
from strata.services.elasticache import exposure
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.errors import combination, fault, invalid

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider


def ng_members(group: dict) -> list[str]:
    return [c for ng in group["node_groups"] for c in ng["members"]]


class ReplicaOperations(ElastiCacheCore):
    """A mixin of ElastiCacheProvider (through ReplicationGroupOperations)."""

    def _add_replica(self: ElastiCacheProvider, group: dict, ng: dict, member: dict) -> None:
        """Start a new member as a replica of the node group's primary; blocking."""
        ng["members"].append(member["id"])
        self.store.put_doc("cluster", member["id"], member)
        self.store.put_doc("group", group["id"], group)
        if group.get("cluster_mode"):
            # its node's route first: the node announces the pool address it is served on
            exposure.expose(
                self.router, self.settings.exposed_engines, group["port"], self._node_addresses(group)
            )
            server = self.engines.build_redis(group, member["id"], member["nodes"][0])
            self.engines.start_all([server])
            roles = self._roles(group)
            primary = next(c for c in ng["members"] if roles.get(c) == "primary")
            anchor = self._server(primary)
            with anchor.client() as c:
                c.execute_command(
                    "CLUSTER", "MEET", server.config.address, str(group["port"]), str(group["bus_port"])
                )
            primary_id = redis_cluster.node_id(anchor)
            if not wait_until(
                lambda: primary_id in str(server.client().execute_command("CLUSTER", "NODES")), 30
            ):
                raise EngineError("the new node did not join the cluster")
            with server.client() as c:
                c.execute_command("CLUSTER", "REPLICATE", primary_id)
        else:
            members = self._members(group)
            source = (members[ng["primary"]]["nodes"][0]["address"], group["port"])
            server = self.engines.build_redis(group, member["id"], member["nodes"][0], replica_of=source)
            self.engines.start_all([server])
            self._apply_endpoints(group)
        self._in_sync(group)  # "available" again once the new replica has the primary's data
        member["status"] = "available"
        self.store.put_doc("cluster", member["id"], member)

    def _remove_replica(self: ElastiCacheProvider, group: dict, ng: dict, cid: str) -> None:
        """Stop a replica and forget it; blocking."""
        if group.get("cluster_mode") and self._alive(cid):
            gone = redis_cluster.node_id(self._server(cid))
            self.engines.stop(cid, "0001", remove=True)
            for other in ng_members(group):
                if other != cid and self._alive(other):
                    try:
                        with self._server(other).client() as c:
                            c.execute_command("CLUSTER", "FORGET", gone)
                    except redis.RedisError:
                        pass
        else:
            self.engines.stop(cid, "0001", remove=True)
        self.engines.stop_cluster(cid, remove=True)
        ng["members"].remove(cid)
        if group.get("snapshotting_cluster") == cid:
            group["snapshotting_cluster"] = None
        self.store.delete_doc("cluster", cid)
        self.store.put_doc("group", group["id"], group)
        self._apply_endpoints(group)  # (the node's route on its pool address goes too: exposure.py)

    def _replica_targets(self: ElastiCacheProvider, group: dict, req: dict) -> dict[str, int]:
        """Node group id -> wanted replica count, from NewReplicaCount or ReplicaConfiguration."""
        if req.get("ReplicaConfiguration"):
            out = {}
            for conf in req["ReplicaConfiguration"]:
                ng = self._node_group(group, conf.get("NodeGroupId"))
                out[ng["id"]] = conf["NewReplicaCount"]
            return out
        if req.get("NewReplicaCount") is None:
            raise invalid("Either NewReplicaCount or ReplicaConfiguration must be provided.")
        return {ng["id"]: req["NewReplicaCount"] for ng in group["node_groups"]}

    async def increase_replica_count(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        group = self._group_doc(req.get("ReplicationGroupId"))
        async with self._resource_lock(group["id"]):
            group = self._group_doc(group["id"])
            self._available(group)
            targets = self._replica_targets(group, req)
            for ng in group["node_groups"]:
                want = targets.get(ng["id"], len(ng["members"]) - 1)
                if want > v.MAX_CLUSTERS_PER_GROUP - 1:
                    raise invalid("A node group can have at most 5 replicas.")
            if all(targets.get(ng["id"], 0) <= len(ng["members"]) - 1 for ng in group["node_groups"]):
                raise fault("NoOperationFault", "The new replica count is not greater than the current one.")
            self._meter_usage(group)
            self._save_group(group, "modifying")
            try:
                for ng in group["node_groups"]:
                    for _ in range(targets.get(ng["id"], 0) - (len(ng["members"]) - 1)):
                        member = self._new_member(group, ng, ctx.region)
                        await run_blocking(self._add_replica, group, ng, member)
            finally:
                self._save_group(group, "available")
            return {"ReplicationGroup": await run_blocking(self._render_group, ctx, group)}

    async def decrease_replica_count(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        group = self._group_doc(req.get("ReplicationGroupId"))
        async with self._resource_lock(group["id"]):
            group = self._group_doc(group["id"])
            self._available(group)
            roles = await run_blocking(self._roles, group)
            removals: list[tuple[dict, str]] = []
            if req.get("ReplicasToRemove"):
                for cid in (c.lower() for c in req["ReplicasToRemove"]):
                    ng = next((n for n in group["node_groups"] if cid in n["members"]), None)
                    if ng is None:
                        raise invalid(f"Cache cluster {cid} is not a member of {group['id']}.")
                    if roles.get(cid) == "primary":
                        raise invalid(f"Cache cluster {cid} is a primary; only replicas can be removed.")
                    removals.append((ng, cid))
            else:
                targets = self._replica_targets(group, req)
                for ng in group["node_groups"]:
                    want = targets.get(ng["id"], len(ng["members"]) - 1)
                    if want < 0:
                        raise invalid("NewReplicaCount must not be negative.")
                    replicas = [c for c in ng["members"] if roles.get(c) != "primary"]
                    removals += [(ng, c) for c in replicas[::-1][: max(0, len(replicas) - want)]]
            if not removals:
                raise fault("NoOperationFault", "The new replica count is not smaller than the current one.")
            for ng in group["node_groups"]:
                left = len(ng["members"]) - 1 - sum(1 for n, _ in removals if n is ng)
                if group.get("automatic_failover") and left < 1:
                    raise invalid(
                        "With automatic failover enabled each node group needs at least one replica."
                    )
            self._meter_usage(group)
            for ng, cid in removals:
                await run_blocking(self._remove_replica, group, ng, cid)
            self._save_group(group)
            return {"ReplicationGroup": await run_blocking(self._render_group, ctx, group)}

    async def _add_member_cluster(
        self: ElastiCacheProvider, ctx: RequestContext, req: dict, cid: str
    ) -> dict:
        """CreateCacheCluster with ReplicationGroupId: a new read replica in the group."""
        group = self._group_doc(req["ReplicationGroupId"])
        if self.store.get_doc("cluster", cid) is not None:
            raise fault("CacheClusterAlreadyExistsFault", "Cache cluster already exists")
        if group.get("cluster_mode"):
            raise combination(
                "Use IncreaseReplicaCount to add replicas to a group with cluster mode enabled."
            )
        async with self._resource_lock(group["id"]):
            group = self._group_doc(group["id"])
            self._available(group)
            ng = group["node_groups"][0]
            if len(ng["members"]) >= v.MAX_CLUSTERS_PER_GROUP:
                raise fault(
                    "NodeQuotaForClusterExceededFault", "A replication group can have at most 5 replicas."
                )
            member = self._new_member(group, ng, ctx.region, cid=cid, az=req.get("PreferredAvailabilityZone"))
            self._meter_usage(group)
            await run_blocking(self._add_replica, group, ng, member)
            return {"CacheCluster": self._render(ctx, {**member, "status": "creating"}, show_nodes=False)}

    async def _delete_member_cluster(
        self: ElastiCacheProvider, ctx: RequestContext, cluster: dict, req: dict
    ) -> dict:
        """DeleteCacheCluster on a member: only a replica, and never the last one under automatic failover."""
        async with self._resource_lock(cluster["group"]):
            group = self._group_doc(cluster["group"])
            ng = self._node_group(group, cluster["node_group"])
            roles = await run_blocking(self._roles, group)
            if roles.get(cluster["id"]) == "primary":
                raise fault(
                    "InvalidCacheClusterStateFault",
                    f"Cannot delete the primary cluster {cluster['id']} of replication group {group['id']}.",
                )
            if group.get("automatic_failover") and len(ng["members"]) <= 2:
                raise fault(
                    "InvalidCacheClusterStateFault",
                    "Cannot delete the last replica of a replication group with automatic failover enabled.",
                )
            rendered = self._render(ctx, {**cluster, "status": "deleting"}, show_nodes=False)
            self._meter_usage(group)
            await run_blocking(self._remove_replica, group, ng, cluster["id"])
            return {"CacheCluster": rendered}
