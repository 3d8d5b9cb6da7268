"""Failover: TestFailover, ModifyReplicationGroup's PrimaryClusterId, and recovery of dead nodes.

A planned failover (TestFailover, PrimaryClusterId) is the engine's own coordinated one (FAILOVER,
CLUSTER FAILOVER): the primary pauses writes until the replica has them all, so nothing it
acknowledged is lost. An unplanned one (the primary's process died) promotes the replica that has
read furthest (REPLICAOF NO ONE, or CLUSTER FAILOVER TAKEOVER in cluster mode) and brings the dead
node back as a replica. The primary endpoint address moves with the role.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import redis

from strata.context import RequestContext
from strata.engines import redis_cluster
from strata.engines.process import wait_until
from strata.services.base import run_blocking
from strata.services.elasticache import events
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.errors import fault
from strata.services.elasticache.replicas import ng_members
from strata.sim import timings
from strata.sim.meter import meter

log = logging.getLogger("strata.elasticache")

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider


class FailoverOperations(ElastiCacheCore):
    """Failover and recovery (a mixin of ElastiCacheProvider, through ReplicationGroupOperations)."""

    def _failover(self: ElastiCacheProvider, group: dict, target: str | None, dead: str | None) -> str:
        """Make `target` (or the most caught-up replica) the primary; blocking. Returns the new primary.

        Planned (the old primary alive, `dead` None): the engine's own FAILOVER pauses writes on the
        old primary, waits until the target has every one of them, then swaps the roles, so nothing
        acknowledged is lost. Unplanned (`dead` names the old primary, which died): the replica that
        has read furthest is promoted (REPLICAOF NO ONE), the others follow it, and the dead node
        comes back as a replica. Under `--timings aws` an unplanned failover holds AWS's failover
        time (strata.sim.timings) before the promotion, the primary endpoint unanswered meanwhile.
        """
        ng = group["node_groups"][0]
        old = ng["primary"]
        old_server = self.engines.get(old)
        planned = dead is None and old_server is not None and old_server.running()
        if planned and self._global_upstream(group) is not None:
            raise fault(
                "InvalidReplicationGroupStateFault",
                f"Replication group {group['id']} is a global datastore's secondary: Strata fails it over "
                "only when its primary node fails (FailoverGlobalReplicationGroup promotes the group).",
            )
        if planned:
            self._in_sync(group)  # FAILOVER needs a linked target (one restarted a moment ago may not be)
        candidates = [c for c in ng["members"] if c != old and self._alive(c)]
        if target is None:
            if not candidates:
                raise fault(
                    "InvalidReplicationGroupStateFault",
                    f"Replication group {group['id']} has no live replica.",
                )
            target = max(candidates, key=lambda c: self._server(c).replication_offset())
        new = self._server(target)
        port = group["port"]
        source = (new.config.address, port)
        started = time.monotonic()
        if not planned:  # --timings aws: the primary is lost for AWS's time before the promotion
            timings.wait(timings.seconds(self.settings, "elasticache_failover"))
        if planned:
            try:
                with old_server.client(timeout=30) as c:  # type: ignore[union-attr]
                    c.execute_command("FAILOVER", "TO", new.config.address, str(port), "TIMEOUT", "10000")
            except redis.RedisError as e:  # e.g. the target is not (yet) a linked replica
                raise fault(
                    "InvalidReplicationGroupStateFault", f"The engine refused the failover: {e}"
                ) from e
            if not wait_until(lambda: new.role() == "master", 15):
                raise fault("InvalidReplicationGroupStateFault", "The engine did not complete the failover.")
            old_server.config.replica_of = source  # type: ignore[union-attr]
            new.config.replica_of = None
            new.write_config()
            old_server.write_config()  # type: ignore[union-attr]
        else:  # a global datastore's secondary group: the promoted node follows the global primary
            new.replicate(self._global_upstream(group))
        ng["primary"] = target
        for cid in ng["members"]:
            if cid not in (target, old) and self._alive(cid):
                self._server(cid).replicate(source)
        self._apply_endpoints(group)
        if planned:
            old_server.drop_clients()  # type: ignore[union-attr]
        elif old in self._members(group) and self._powered(old):
            member = self._members(group)[old]
            restarted = self.engines.build_redis(
                group, old, member["nodes"][0], replica_of=source, binds=self._wanted_binds(group)[old]
            )
            self.engines.start_all([restarted])
            self._apply_endpoints(group)
        self.store.put_doc("group", group["id"], group)
        log.info(
            "replication group %s %s failed over from %s to %s in %.2f s",
            group["id"],
            "planned:" if planned else "unplanned:",
            old,
            target,
            time.monotonic() - started,
        )
        self._in_sync(group)  # "available" again only once the replicas have caught up
        meter.record("elasticache", "Failover", 1, "event", group=group["id"])
        events.record(
            self.store,
            group["id"],
            "replication-group",
            f"Failover from master node {old} to replica node {target} completed",
        )
        return target

    def _cluster_failover(self: ElastiCacheProvider, group: dict, ng: dict, dead: str | None = None) -> str:
        """Cluster mode: promote the node group's most caught-up replica; blocking. Returns its member id.

        Planned (`dead` None): CLUSTER FAILOVER, which the engine coordinates like FAILOVER (the
        primary pauses writes until the replica has them all, then the roles swap, the old primary
        following the new one). Unplanned (`dead` names the primary that died): CLUSTER FAILOVER
        TAKEOVER on the replica that has read furthest, then the dead node is restarted and rejoins
        as a replica. Either way the configuration endpoint moves off a node that is no longer fit.
        """
        roles = self._roles(group)
        primary = dead or next((c for c in ng["members"] if roles.get(c) == "primary"), None)
        if dead is None:
            self._in_sync(group)  # the engine's coordinated failover needs a linked replica
        replicas = [c for c in ng["members"] if c != primary and self._alive(c)]
        if not replicas:
            raise fault("InvalidReplicationGroupStateFault", f"Node group {ng['id']} has no live replica.")
        old = self.engines.get(primary) if primary else None
        started = time.monotonic()
        best = max(replicas, key=lambda c: self._server(c).replication_offset())
        promoted = self._server(best)
        # The live nodes that must see the new owner of the slots (below).
        viewers = [self._server(c) for c in ng_members(group) if c != primary and self._alive(c)]
        if dead is None:
            # The engine drops a manual failover it cannot finish in its own 5 s (a replica slow to
            # reach the primary's offset on a loaded machine): nothing changed, so ask again.
            for attempt in range(3):
                try:
                    redis_cluster.cluster_failover(promoted, takeover=False)
                except redis.RedisError as e:
                    if attempt and promoted.role() == "master":
                        break  # the earlier request finished meanwhile
                    raise fault(
                        "InvalidReplicationGroupStateFault", f"The engine refused the failover: {e}"
                    ) from e
                if wait_until(lambda: promoted.role() == "master", 10):
                    break
                log.warning("shard %s: CLUSTER FAILOVER to %s did not finish; asked again", ng["id"], best)
        else:
            timings.wait(timings.seconds(self.settings, "elasticache_failover"))  # --timings aws
            # TAKEOVER takes the epoch after the newest the replica has heard of: it must have heard
            # of the newest any live node knows (the old primary's included), or it can tie with the
            # old primary, which restarted would then win its slots back, empty.
            newest = redis_cluster.newest_epoch(viewers)
            if not wait_until(lambda: redis_cluster.current_epoch(promoted) >= newest, 5):
                log.warning("shard %s: %s has not heard of epoch %d", ng["id"], best, newest)
            redis_cluster.cluster_failover(promoted, takeover=True)
        if not wait_until(lambda: promoted.role() == "master", 15):
            log.warning("shard %s: %s did not become primary after CLUSTER FAILOVER", ng["id"], best)
            raise fault("InvalidReplicationGroupStateFault", "The engine did not complete the failover.")
        # Every live node must know the new owner of the slots before the old primary comes back
        # with its stale view, so that the cluster corrects it rather than the other way round.
        if ng.get("slots") and not wait_until(
            lambda: all(redis_cluster.serves_slots(v, promoted, ng["slots"]) for v in viewers), 15
        ):
            log.warning("shard %s: not every node sees %s serving slots %s", ng["id"], best, ng["slots"])
        if group.get("config_holder") == primary or not self._alive(group.get("config_holder") or ""):
            group["config_holder"] = best
            self._apply_endpoints(group)
        if dead is None and old is not None:
            old.drop_clients()  # type: ignore[union-attr]
        elif old is not None and primary is not None and self._powered(primary):
            members = self._members(group)
            server = self.engines.build_redis(
                group, primary, members[primary]["nodes"][0], binds=self._wanted_binds(group)[primary]
            )
            self.engines.start_all([server])
        log.info(
            "shard %s %s failed over from %s to %s in %.2f s",
            ng["id"],
            "planned:" if dead is None else "unplanned:",
            primary,
            best,
            time.monotonic() - started,
        )
        ng["primary"] = best
        self.store.put_doc("group", group["id"], group)
        self._in_sync(group)
        meter.record("elasticache", "Failover", 1, "event", group=group["id"])
        events.record(
            self.store, group["id"], "replication-group", f"Failover to replica node {best} completed"
        )
        return best

    async def test_failover(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        group = self._group_doc(req.get("ReplicationGroupId"))
        async with self._resource_lock(group["id"]):
            group = self._group_doc(group["id"])
            self._available(group)
            ng = self._node_group(group, req.get("NodeGroupId"))
            if not group.get("automatic_failover"):
                raise fault(
                    "InvalidReplicationGroupStateFault",
                    f"Replication group {group['id']} must have automatic failover enabled to test failover.",
                )
            if len(ng["members"]) < 2:
                raise fault(
                    "TestFailoverNotAvailableFault", f"Node group {ng['id']} has no replica to fail over to."
                )
            events.record(
                self.store,
                group["id"],
                "replication-group",
                f"Test Failover API called for node group {ng['id']}",
            )
            # A planned failover, coordinated by the engine: nothing the primary acknowledged is lost.
            if group.get("cluster_mode"):
                await run_blocking(self._cluster_failover, group, ng)
            else:
                await run_blocking(self._failover, group, None, None)
            return {"ReplicationGroup": await run_blocking(self._render_group, ctx, group)}

    async def _recover_member(self: ElastiCacheProvider, group: dict, cid: str) -> None:
        """A member's process died (the monitor holds the group's lock): fail over if it was a primary
        and automatic failover is on, else restart it in its role."""
        member = self._members(group).get(cid)
        if member is None:
            return
        ng = self._node_group(group, member["node_group"])
        if group.get("cluster_mode"):

            def followed() -> bool:  # some live replica was following the dead node: it was a primary
                address = member["nodes"][0]["address"]
                return any(
                    self._alive(c) and self._server(c).info("replication").get("master_host") == address
                    for c in ng["members"]
                    if c != cid
                )

            # The group's record says who the shard's primary is; a live replica following the dead
            # node says so too (and covers a record that missed a change). Either way its slots must
            # move to a replica: restarted in place, it would come back as an empty primary.
            recorded = ng.get("primary") == cid and any(self._alive(c) for c in ng["members"] if c != cid)
            if recorded or await run_blocking(followed):
                log.warning("ElastiCache shard %s lost its primary %s: failing over", ng["id"], cid)
                await run_blocking(self._cluster_failover, group, ng, cid)
                return
            if self._powered(cid):
                log.warning("ElastiCache shard %s: replica %s restarted in place", ng["id"], cid)
                # With the endpoint addresses it holds now: a primary that lost its power held the
                # configuration endpoint, which the failover moved to another node meanwhile.
                server = self.engines.build_redis(
                    group, cid, member["nodes"][0], binds=self._wanted_binds(group)[cid]
                )
                await run_blocking(self.engines.start_all, [server])
            return
        if (
            cid == ng["primary"]
            and group.get("automatic_failover")
            and any(self._alive(c) for c in ng["members"] if c != cid)
        ):
            await run_blocking(self._failover, group, None, cid)
            return
        if not self._powered(cid):
            return  # rebuilt once its zone has power again
        binds = self._wanted_binds(group)[cid]
        source = (
            None
            if cid == ng["primary"]
            else (self._members(group)[ng["primary"]]["nodes"][0]["address"], group["port"])
        )
        server = self.engines.build_redis(group, cid, member["nodes"][0], replica_of=source, binds=binds)
        await run_blocking(self.engines.start_all, [server])
        await run_blocking(self._apply_endpoints, group)
