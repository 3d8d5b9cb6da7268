"""Power interruptions of an Availability Zone, for FIS's
aws:elasticache:replicationgroup-interrupt-az-power.

The nodes of a replication group in the zone lose power: their engine processes are killed
(SIGKILL: nothing flushed, no goodbye to clients or replicas) and nothing rebuilds them until
power returns, as AWS blocks the replacement of nodes in the zone for the action's duration. The
monitor meets the dead processes as it meets any crash, so a primary among them fails over the
way a crashed primary does (the replica that has read furthest is promoted by the engine:
REPLICAOF NO ONE, or CLUSTER FAILOVER TAKEOVER in cluster mode) and the primary endpoint moves
with it (in cluster mode the configuration endpoint too, when its node lost power); only the
rebuild waits. When power returns the monitor restarts the nodes, as replicas of the primaries of
the moment, holding the endpoint addresses they hold now. The interruption lives in memory: a Strata restart starts every
node again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import redis

from strata.services.base import run_blocking
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.errors import fault
from strata.services.elasticache.nodes import PRIMARY, node_cgroup
from strata.sim.clock import clock

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

log = logging.getLogger("strata.elasticache")
RETURN_TIMEOUT = 60.0  # seconds restore_az_power waits for the zone's nodes to answer again


class AzPowerOperations(ElastiCacheCore):
    """A mixin of ElastiCacheProvider; called by FIS, not ElastiCache API operations."""

    async def interrupt_az_power(self: ElastiCacheProvider, group_id: str, zone: str) -> list[str]:
        """Cut the power of the group's nodes in `zone`; returns the member ids that lost it.

        AWS runs this action only on groups with Multi-AZ enabled (InvalidReplicationGroupState
        otherwise)."""
        group = self._group_doc(group_id)
        async with self._resource_lock(group["id"]):
            group = self._group_doc(group["id"])
            if not group.get("multi_az"):
                raise fault(
                    "InvalidReplicationGroupStateFault",
                    f"Replication group {group['id']} does not have Multi-AZ enabled.",
                )
            hit = sorted(cid for cid, m in self._members(group).items() if m["az"] == zone)
            for cid in hit:
                self.unpowered.add(self.store.engine_key(cid))
            await run_blocking(self._cut_power, hit)
        log.warning("replication group %s: power interrupted in %s for %s", group["id"], zone, hit)
        return hit

    def _answering(self: ElastiCacheProvider, members: list[str]) -> bool:
        for cid in members:
            server = self.engines.get(cid)
            try:
                if server is None or not server.running() or not server.ping():
                    return False
            except (redis.RedisError, OSError):
                return False
        return True

    def _cut_power(self: ElastiCacheProvider, members: list[str]) -> None:
        for cid in members:
            server = self.engines.get(cid)
            if server is not None:
                server.kill()

    async def restore_az_power(self: ElastiCacheProvider, group_id: str, members: list[str]) -> None:
        """Give the nodes their power back and wait (bounded) until the monitor has them answering
        again, so that the action ends with the zone serving."""
        for cid in members:
            self.unpowered.discard(self.store.engine_key(cid))
        if self._monitor is None or self._monitor.done():
            return  # Strata is stopping: nothing will restart them now, start-up will
        deadline = clock.monotonic() + RETURN_TIMEOUT
        while clock.monotonic() < deadline:
            group = self.store.get_doc("group", group_id)
            current = set(self._members(group)) if group is not None else set()
            if await run_blocking(self._answering, [cid for cid in members if cid in current]):
                return
            await asyncio.sleep(0.1)
        log.warning("replication group %s: %s not back after the power returned", group_id, members)

    def cut_cgroups(self, zones: list[str]) -> list[str]:
        """The engine cgroups of the redis/valkey nodes in `zones` that a zone cut severs from the
        other engines (strata.engines.partition): a replica there stops receiving from its primary
        elsewhere, and the other way round. Left out: deployments that are not `available`
        (failing over: Strata's failover goes through the engines' replication) and cluster-mode
        groups (a cut cluster bus would make the engines' own cluster elect new primaries, which
        Strata does not follow)."""
        groups = {g["id"]: g for g in self.store.list_docs("group")}
        out = []
        for c in self.store.list_docs("cluster"):
            dep = groups.get(c.get("group") or "") or c
            if (
                dep.get("engine") == "memcached"
                or dep.get("cluster_mode")
                or dep.get("status") != "available"
            ):
                continue
            if any(n["az"] in zones for n in c["nodes"]):
                out.append(node_cgroup(dep, c["id"]))
        return out

    def endpoints_in_zone(
        self: ElastiCacheProvider, account: str, region: str, zone: str
    ) -> list[tuple[str, int]]:
        """The endpoints (address, port) served from Availability Zone `zone` right now, for FIS's
        network disruption: every node there, and a group's primary (or configuration) endpoint
        when the node holding it is there. Called inside the experiment's account and region."""
        out: list[tuple[str, int]] = []
        groups = {g["id"]: g for g in self.store.list_docs("group")}
        for c in self.store.list_docs("cluster"):
            dep = groups.get(c.get("group") or "") or c
            zoned = [n for n in c["nodes"] if n["az"] == zone]
            out += [(n["address"], dep["port"]) for n in zoned]
            if dep is c and zoned and len(zoned) == len(c["nodes"]):
                out.append((PRIMARY, c["port"]))
        for g in groups.values():
            members = self._members(g)
            holder = g.get("config_holder") if g.get("cluster_mode") else g["node_groups"][0]["primary"]
            if holder in members and members[holder]["az"] == zone:
                out.append((PRIMARY, g["port"]))
        return out
