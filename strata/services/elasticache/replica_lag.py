"""Replica lag on demand, for FIS's strata:elasticache:replica-lag: the replicas of a replication
group in an Availability Zone receive their primary's stream `seconds` late, so a read from a replica (its node or the
reader endpoint) after a write to the primary sees the old value until the delay has passed.

Redis has no delayed-apply setting of its own, so each replica follows a relay
(strata.engines.lag_relay) that holds the primary's stream back, instead of the primary itself:
REPLICAOF at run time only, never written to the node's configuration, so a restart of the node
(or of Strata) lifts the lag, as do a failover (which points every replica at the new primary)
and set_replica_lag(..., 0). The replica's repl-timeout grows by the delay meanwhile, or it
would take the quiet first `seconds` for a dead link. Cluster-mode groups are refused: their
replicas follow their primary by node id (CLUSTER REPLICATE), not by address.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from strata.engines.lag_relay import LagRelay
from strata.engines.redis import RedisServer
from strata.services.base import run_blocking
from strata.services.elasticache import security
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.errors import fault
from strata.services.elasticache.nodes import port_owner

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

log = logging.getLogger("strata.elasticache")
REPL_TIMEOUT = 60  # Redis's default repl-timeout, restored when the lag ends


def _follow(server: RedisServer, source: tuple[str, int], repl_timeout: int) -> None:
    """Point the replica at `source` for now (its configuration keeps the real primary)."""
    with server.client() as c:
        server.admin(c, "CONFIG", "SET", "repl-timeout", repl_timeout)
        server.admin(c, "REPLICAOF", source[0], str(source[1]))


class ReplicaLagOperations(ElastiCacheCore):
    """A mixin of ElastiCacheProvider; called by FIS, not ElastiCache API operations."""

    async def set_replica_lag(
        self: ElastiCacheProvider, group_id: str, seconds: float, zone: str | None = None
    ) -> list[str]:
        """Hold the group's replicas (in `zone`, when given) `seconds` behind their primary; 0 lifts
        the lag (also when the group is gone meanwhile). Returns the member ids held."""
        key = self.store.engine_key(group_id.lower())
        relays = self.lag_relays.pop(key, {})
        try:
            if seconds > 0:
                await self._hold_replicas(group_id, seconds, zone, relays)
            else:
                await self._release_replicas(group_id, relays)
            return sorted(relays)
        finally:
            if seconds > 0:
                self.lag_relays[key] = relays
            else:
                group = self.store.get_doc("group", group_id.lower())
                for relay in relays.values():
                    await relay.close()
                    if group is not None:
                        destination = (relay.host, relay.port)
                        await run_blocking(
                            security.relay, self, port_owner(group, "group"), destination, False
                        )

    async def _hold_replicas(
        self: ElastiCacheProvider,
        group_id: str,
        seconds: float,
        zone: str | None,
        relays: dict[str, LagRelay],
    ) -> None:
        group = self._group_doc(group_id)
        async with self._resource_lock(group["id"]):
            group = self._group_doc(group["id"])
            if group.get("cluster_mode"):
                raise fault(
                    "InvalidReplicationGroupStateFault",
                    f"Replication group {group['id']} has cluster mode enabled: Strata holds replicas "
                    "back only in groups without cluster mode.",
                )
            ng, members = group["node_groups"][0], self._members(group)
            replicas = [
                c
                for c in ng["members"]
                if c != ng["primary"] and self._alive(c) and (zone is None or members[c]["az"] == zone)
            ]
            if not replicas:
                where = f" in {zone}" if zone else ""
                raise fault(
                    "InvalidReplicationGroupStateFault",
                    f"Replication group {group['id']} has no replica{where}.",
                )
            for cid in replicas:
                server = self._server(cid)
                source = server.config.replica_of
                if source is None or cid in relays:
                    continue
                relay = LagRelay(server.config.address, source, seconds, server.config.tls)
                await relay.start()
                relays[cid] = relay
                # the replica dials the relay now: exempt from the group's egress rules
                destination = (relay.host, relay.port)
                await run_blocking(security.relay, self, port_owner(group, "group"), destination, True)
                await run_blocking(
                    _follow, server, (server.config.address, relay.port), REPL_TIMEOUT + int(seconds)
                )
        log.warning(
            "replication group %s: replicas %s held %s s behind", group["id"], sorted(relays), seconds
        )

    async def _release_replicas(
        self: ElastiCacheProvider, group_id: str, relays: dict[str, LagRelay]
    ) -> None:
        """Point the held replicas at their primary again (the one of the moment)."""
        group = self.store.get_doc("group", group_id.lower())
        if group is None:
            return
        async with self._resource_lock(group["id"]):
            for cid in relays:
                server = self.engines.get(cid)
                if not isinstance(server, RedisServer) or not server.running():
                    continue  # restarted (or being restarted) from its configuration: not held
                source = server.config.replica_of
                if source is not None:
                    await run_blocking(_follow, server, source, REPL_TIMEOUT)
