"""A replication group's members: their records, roles and endpoints, the sync check, and starting
the group's engines.

What the replication group operations (groups.py), failover, membership and replica changes build
on: who is primary (the record, or the engine in cluster mode), which addresses each node binds,
where the reader endpoint routes, and whether the replicas have everything the primary wrote.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis

from strata.context import RequestContext
from strata.engines import redis_cluster
from strata.engines.process import EngineError, wait_until
from strata.engines.redis import RedisServer
from strata.services.elasticache import exposure
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import ElastiCacheCore, now_iso
from strata.services.elasticache.errors import fault
from strata.services.elasticache.nodes import PRIMARY, READER, free_address_index, node_address
from strata.services.elasticache.render import render_group

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

SYNC_TIMEOUT = 60.0  # seconds a replica may take to reach its primary's offset (a full sync included)

log = logging.getLogger("strata.elasticache")


class GroupMemberOperations(ElastiCacheCore):
    """A replication group's members, roles, endpoints and start (a mixin of ElastiCacheProvider)."""

    # -- members, roles and endpoints ------------------------------------------------------------------

    def _reader_route(self: ElastiCacheProvider, group: dict) -> str:
        """The reader endpoint's route name (per account: another account's group has its own)."""
        return f"reader-{self.store.engine_key(group['id'])}"

    def _members(self: ElastiCacheProvider, group: dict) -> dict[str, dict]:
        return {
            d["id"]: d
            for d in (
                self.store.get_doc("cluster", cid) for ng in group["node_groups"] for cid in ng["members"]
            )
            if d is not None
        }

    def _roles(self: ElastiCacheProvider, group: dict) -> dict[str, str]:
        """Member id -> "primary"/"replica" (from the record; cluster mode asks the engine)."""
        out = {}
        for ng in group["node_groups"]:
            for cid in ng["members"]:
                if group.get("cluster_mode"):
                    server = self.engines.get(cid)
                    try:
                        role = server.role() if server is not None and server.running() else ""  # type: ignore[union-attr]
                    except (redis.RedisError, OSError):
                        role = ""
                    out[cid] = "primary" if role == "master" else "replica"
                else:
                    out[cid] = "primary" if cid == ng["primary"] else "replica"
        return out

    def _wanted_binds(self: ElastiCacheProvider, group: dict) -> dict[str, list[str]]:
        """Member id -> endpoint addresses it should hold right now."""
        out: dict[str, list[str]] = {cid: [] for ng in group["node_groups"] for cid in ng["members"]}
        if group.get("cluster_mode"):
            if group.get("config_holder") in out:
                out[group["config_holder"]].append(PRIMARY)
            return out
        ng = group["node_groups"][0]
        out[ng["primary"]].append(PRIMARY)
        if self.router is None:  # no router: the reader endpoint is one replica's extra address
            out[self._readers(group)[0]].append(READER)
        return out

    def _readers(self: ElastiCacheProvider, group: dict) -> list[str]:
        """The members behind the reader endpoint: the live replicas, else the primary."""
        ng = group["node_groups"][0]
        replicas = [c for c in ng["members"] if c != ng["primary"] and self._alive(c)]
        return replicas or [ng["primary"]]

    def _apply_endpoints(self: ElastiCacheProvider, group: dict) -> None:
        """Put every endpoint where the roles now are: the addresses nodes bind (primary endpoint,
        configuration endpoint) and the reader endpoint's route. Blocking.

        The reader endpoint is a route of the endpoint router (kernel DNAT where possible) that
        spreads connections over the live replicas, as AWS's reader endpoint (DNS round robin over
        the replicas) does; without a router it is the first live replica's extra address."""
        self.engines.apply_binds(self._wanted_binds(group))
        exposure.expose(
            self.router, self.settings.exposed_engines, group["port"], self._node_addresses(group)
        )
        if self.router is None or group.get("cluster_mode"):
            return
        members = self._members(group)
        backends = [
            (members[c]["nodes"][0]["address"], group["port"]) for c in self._readers(group) if c in members
        ]
        self.router.set_route(self._reader_route(group), group["port"], backends, balance=True, host=READER)

    def _node_addresses(self: ElastiCacheProvider, group: dict) -> list[str]:
        """The loopback addresses of the group's nodes (each served on a pool address: exposure.py)."""
        return [n["address"] for m in self._members(group).values() for n in m["nodes"]]

    def _drop_reader_route(self: ElastiCacheProvider, group: dict) -> None:
        if self.router is not None:
            self.router.remove_route(self._reader_route(group))

    def _alive(self: ElastiCacheProvider, cid: str) -> bool:
        server = self.engines.get(cid)
        return server is not None and server.running()

    def _server(self: ElastiCacheProvider, cid: str) -> RedisServer:
        return self.engines.redis(cid)

    def _in_sync(self: ElastiCacheProvider, group: dict, timeout: float = SYNC_TIMEOUT) -> bool:
        """Wait until every live replica is linked to its node group's primary and has everything the
        primary had written when called; blocking. False (logged) if some replica did not get there.

        What "available" promises: a replica that is not in sync would, promoted, lose writes the
        primary acknowledged.
        """
        roles = self._roles(group)
        lagging: list[str] = []
        for ng in group["node_groups"]:
            live = [c for c in ng["members"] if self._alive(c)]
            primary = next((c for c in live if roles.get(c) == "primary"), None)
            if primary is None:
                continue
            try:
                offset = self._server(primary).primary_offset()
            except (redis.RedisError, OSError):
                continue
            for cid in live:
                # a replica that dies meanwhile is the monitor's to restart (it needs this lock)
                if cid != primary and not wait_until(
                    lambda c=cid, o=offset: not self._alive(c) or self._server(c).caught_up(o), timeout
                ):
                    lagging.append(cid)
        if lagging:
            log.warning("replication group %s: %s not in sync with the primary", group["id"], lagging)
        return not lagging

    def _render_group(
        self: ElastiCacheProvider, ctx: RequestContext, group: dict, status: str | None = None
    ) -> dict:
        shown = {**group, "status": status or group["status"]}
        out = render_group(shown, self._members(group), self._roles(group), ctx.region, ctx.account_id)
        out = exposure.advertise(out, self.settings.exposed_engines, self.router)
        role = self._global_role(group)
        if role:
            out["GlobalReplicationGroupInfo"] = {
                "GlobalReplicationGroupId": group["global"],
                "GlobalReplicationGroupMemberRole": role,
            }
        return out

    def _save_group(self: ElastiCacheProvider, group: dict, status: str | None = None) -> None:
        if status:
            group["status"] = status
        self.store.put_doc("group", group["id"], group)
        for member in self._members(group).values():
            if status and member["status"] != status:
                member["status"] = status
                self.store.put_doc("cluster", member["id"], member)

    def _new_member(
        self: ElastiCacheProvider,
        group: dict,
        ng: dict,
        region: str,
        cid: str | None = None,
        az: str | None = None,
    ) -> dict:
        """A member record (not yet saved) in node group `ng`, with the next free id and address."""
        members = self._members(group)
        used = [m["nodes"][0]["address"] for m in members.values()]
        if cid is None:
            prefix = f"{group['id']}-{ng['id']}-" if group.get("cluster_mode") else f"{group['id']}-"
            n = 1
            while (
                self.store.get_doc("cluster", f"{prefix}{n:03d}") is not None or f"{prefix}{n:03d}" in members
            ):
                n += 1
            cid = f"{prefix}{n:03d}"
        created = now_iso()
        zone = v.availability_zone(region, az, len(ng["members"]), group.get("zones"))
        return {
            "id": cid,
            "group": group["id"],
            "node_group": ng["id"],
            "status": "creating",
            "created": created,
            "az": zone,
            "nodes": [
                {
                    "id": "0001",
                    "address": node_address(free_address_index(used)),
                    "created": created,
                    "az": zone,
                }
            ],
        }

    def _node_group(self: ElastiCacheProvider, group: dict, ng_id: str | None) -> dict:
        for ng in group["node_groups"]:
            if ng["id"] == ng_id:
                return ng
        raise fault(
            "NodeGroupNotFoundFault", f"NodeGroup {ng_id} not found in replication group {group['id']}."
        )

    def _available(self: ElastiCacheProvider, group: dict) -> None:
        if group["status"] != "available":
            raise fault(
                "InvalidReplicationGroupStateFault",
                f"Replication group {group['id']} must be in available state, it is {group['status']}.",
            )

    # -- starting ----------------------------------------------------------------------------------------

    def _start_group(self: ElastiCacheProvider, group: dict, restore: dict | None) -> None:
        """Start (or restart) every member; form the cluster on first start in cluster mode. Blocking."""
        members = self._members(group)
        binds = self._wanted_binds(group)
        port = group["port"]
        exposure.expose(self.router, self.settings.exposed_engines, port, self._node_addresses(group))
        if not group.get("cluster_mode"):
            ng = group["node_groups"][0]
            primary = members[ng["primary"]]
            first = self.engines.build_redis(
                group,
                primary["id"],
                primary["nodes"][0],
                binds=binds[primary["id"]],
                replica_of=self._global_upstream(group),  # a global datastore's secondary follows its primary
            )
            if restore:
                self._place_snapshot_file(restore, 0, first.config.data_dir)
            self.engines.start_all([first])
            source = (primary["nodes"][0]["address"], port)
            replicas = [
                self.engines.build_redis(
                    group, cid, members[cid]["nodes"][0], replica_of=source, binds=binds[cid]
                )
                for cid in ng["members"]
                if cid != ng["primary"]
            ]
            self.engines.start_all(replicas)
            self._apply_endpoints(group)  # the reader endpoint moves to the replicas
            if not self._in_sync(group):
                raise EngineError(f"the replicas of {group['id']} did not sync with the primary")
            return
        shards: list[list[RedisServer]] = []
        fresh = True
        for i, ng in enumerate(group["node_groups"]):
            shard = []
            for cid in ng["members"]:
                server = self.engines.build_redis(group, cid, members[cid]["nodes"][0], binds=binds[cid])
                if (server.config.data_dir / "nodes.conf").exists():
                    fresh = False
                if restore and cid == ng["members"][0]:
                    self._place_snapshot_file(restore, i, server.config.data_dir)
                shard.append(server)
            shards.append(shard)
        self.engines.start_all([s for shard in shards for s in shard])
        if fresh:
            slots = [redis_cluster.parse_slots(ng["slots"]) for ng in group["node_groups"]]
            # loopback addresses no member uses, for the temporary stand-ins of replica-less shards
            used = [m["nodes"][0]["address"] for m in members.values()]
            spares = []
            for _ in range(sum(1 for shard in shards if len(shard) == 1)):
                spares.append(node_address(free_address_index(used + spares)))
            redis_cluster.form_cluster(shards, slots, spare_addresses=spares)
        else:
            for s in (s for shard in shards for s in shard):
                wait_until(lambda s=s: redis_cluster.cluster_ok(s), 30)
        if not self._in_sync(group):
            raise EngineError(f"the replicas of {group['id']} did not sync with their primaries")
