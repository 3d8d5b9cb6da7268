"""Serverless caches' engine nodes: starting and stopping them, their endpoints' security
groups, their memory cap, and their recovery (a mixin of ElastiCacheProvider; the API is in
serverless.py).

A Valkey/Redis OSS cache is a primary and one replica forming a one-shard Redis Cluster; a
memcached cache is one node. DataStorage.Maximum is the engine's memory cap (redis `maxmemory`
with `volatile-lru`; memcached `-m`). The nodes are named `<name>~serverless` (a `~` is in no
cache cluster id, so they never collide with a cluster's) and are restarted by the service's
monitor like every node: a dead primary's replica takes over first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from strata.engines import redis_cluster
from strata.engines.process import EngineError, wait_until
from strata.engines.redis import RedisServer
from strata.services.base import run_blocking
from strata.services.elasticache import security
from strata.services.elasticache.nodes import PRIMARY, node_address
from strata.services.elasticache.serverless_ecpu import (
    PRIMARY_NODE,
    REPLICA_NODE,
    SUFFIX,
    ServerlessEcpuOperations,
    node_addresses,
)
from strata.sim.meter import meter

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

log = logging.getLogger("strata.elasticache")

GIB = 1024**3
MAX_STORAGE_GB = 5000
MEMCACHED_UNLIMITED_MB = MAX_STORAGE_GB * 1024


def lead_node(doc: dict) -> str:
    """The node id of a serverless cache's primary (it changes when a replica takes over)."""
    return doc.get("primary_node") or PRIMARY_NODE


def engine_id(name: str) -> str:
    """The engine-side cluster id of a serverless cache's nodes."""
    return name + SUFFIX


def storage_cap(doc: dict, gb_bytes: int = GIB) -> int:
    """The engine's memory cap in bytes (0: none); `gb_bytes`: what one GB of DataStorage is."""
    gb = (doc.get("limits") or {}).get("DataStorage", {}).get("Maximum")
    return int(gb * gb_bytes) if gb else 0


class ServerlessNodeOperations(ServerlessEcpuOperations):
    """A mixin of ElastiCacheProvider."""

    def _reader_route_of(self, doc: dict) -> str:
        return f"serverless-reader-{self.store.engine_key(doc['id'])}"

    def _storage_cap(self, doc: dict) -> int:
        """The cache's memory cap in bytes. A GB is 2**30 bytes unless the deployment shrinks it
        (STRATA_LIMIT_ELASTICACHE_SERVERLESS_GB_BYTES: tests reach the maximum in megabytes)."""
        return storage_cap(doc, self.settings.limit("elasticache_serverless_gb_bytes", GIB))

    def _start_serverless(self, doc: dict, restore: dict | None = None) -> None:
        """Start (or restart) the cache's nodes and point its reader endpoint (blocking); a new
        cache's primary first gets the snapshot it restores (serverless_snapshots.py)."""
        cid = engine_id(doc["id"])
        first = {"id": PRIMARY_NODE, "address": node_address(1)}
        if doc["engine"] == "memcached":
            # never on the endpoint address: the proxy or the endpoint's route is (serverless_ecpu.py)
            node = self.engines.build_memcached(doc, cid, first, binds=[])
            node.config.memory_mb = (self._storage_cap(doc) // (1024 * 1024)) or MEMCACHED_UNLIMITED_MB
            self.engines.start_all([node])
            reader = first["address"]
            if not self._proxied(doc):  # routed to the node (with a maximum, `_open_ecpu` routes)
                self._route_writer(doc, (reader, doc["port"]))
        else:
            # cluster mode enabled, one shard holding every slot: as AWS's serverless caches are.
            # The node recorded as primary holds the endpoint address (it moves on a failover).
            lead = lead_node(doc)
            nodes = [
                self.engines.build_redis(
                    doc,
                    cid,
                    {"id": n, "address": node_address(i)},
                    binds=[PRIMARY] if n == lead and not self._proxied(doc) else [],
                )
                for i, n in ((1, PRIMARY_NODE), (2, REPLICA_NODE))
            ]
            primary, replica = nodes if lead == PRIMARY_NODE else nodes[::-1]
            for server in (primary, replica):
                server.config.parameters = {}  # serverless caches have no parameter group
                server.config.maxmemory = self._storage_cap(doc)
                server.config.maxmemory_policy = "volatile-lru"
            fresh = not (Path(primary.config.data_dir) / "nodes.conf").exists()
            if restore is not None:
                self._place_sls_snapshot(restore, primary.config.data_dir)  # type: ignore[attr-defined]
            self.engines.start_all([primary, replica])
            if fresh:
                redis_cluster.form_cluster([[primary, replica]], redis_cluster.slot_ranges(1))
            elif not all(wait_until(lambda s=s: redis_cluster.cluster_ok(s), 30) for s in (primary, replica)):
                raise EngineError(f"serverless cache {doc['id']}: its cluster did not come back")
            reader = replica.config.address
        if self.router is not None:
            self.router.set_route(self._reader_route_of(doc), doc["reader_port"], [(reader, doc["port"])])

    def _stop_serverless(self, doc: dict) -> None:
        if self.router is not None:
            self.router.remove_route(self._reader_route_of(doc))
            self.router.remove_route(self._writer_route_of(doc))
        self.engines.stop_cluster(engine_id(doc["id"]), True)

    def _guard_serverless(self: ElastiCacheProvider, doc: dict) -> None:
        """The cache's groups on its endpoints. Its nodes are engines like any cache's (`engines`:
        their cgroup, elasticache-<port>, is the firewall's and the internal guard's to judge), so
        a connection a user makes one dial meets the destination's groups and no other engine's
        own port takes it; its replication and cluster bus pass (security.replication)."""
        security.guard(self, doc["port_owner"], doc)
        reader = {**doc, "port": doc["reader_port"], "subnets": []}
        security.guard(self, doc["port_owner"] + "/reader", reader, engines=False)
        proxy_port = self._reader_proxy_port(doc)
        if proxy_port:  # the ECPU proxy's own reader port, which the reader endpoint leads to
            proxy = {**doc, "port": proxy_port, "subnets": []}
            security.guard(self, doc["port_owner"] + "/reader-proxy", proxy, engines=False)

    def _unguard_serverless(self: ElastiCacheProvider, doc: dict) -> None:
        for owner in (doc["port_owner"], doc["port_owner"] + "/reader", doc["port_owner"] + "/reader-proxy"):
            security.unguard(self, owner)
        self.ports.release_prefix(doc["port_owner"])

    def _apply_storage_cap(self, doc: dict) -> None:
        """Send a changed DataStorage maximum to the running redis nodes (memcached: at restart)."""
        for node in (PRIMARY_NODE, REPLICA_NODE):
            server = self.engines.get(engine_id(doc["id"]), node)
            if isinstance(server, RedisServer):
                server.config.maxmemory = self._storage_cap(doc)
                if server.running():
                    server.config_set("maxmemory", server.config.maxmemory)
                server.write_config()
            elif server is not None:
                server.config.memory_mb = (self._storage_cap(doc) // (1024 * 1024)) or MEMCACHED_UNLIMITED_MB

    def _serverless_servers(self, doc: dict) -> list[RedisServer]:
        cid = engine_id(doc["id"])
        found = [self.engines.get(cid, n) for n in (PRIMARY_NODE, REPLICA_NODE)]
        return [s for s in found if isinstance(s, RedisServer)]

    async def _recover_serverless(self, cid: str, node_id: str) -> None:
        """The monitor's answer to a serverless cache's node whose process exited: a dead primary's
        replica takes over first (CLUSTER FAILOVER TAKEOVER: it has every write it acknowledged to
        have replicated; the endpoint address moves to it), then the dead node is restarted and
        rejoins as the replica (the cluster's newer epoch tells it so)."""
        name = cid.removesuffix(SUFFIX)
        async with self._resource_lock(cid):
            server = self.engines.get(cid, node_id)
            doc = self.store.get_doc("serverless", name)
            if server is None or server.running() or doc is None:
                return
            log.warning("serverless cache %s: node %s exited; recovering", name, node_id)
            meter.record("elasticache", "NodeReplaced", 1, "node", serverless_cache=name)
            other = self.engines.get(cid, REPLICA_NODE if node_id == PRIMARY_NODE else PRIMARY_NODE)
            lead = lead_node(doc)
            if isinstance(server, RedisServer) and isinstance(other, RedisServer) and node_id == lead:
                if other.running():
                    await run_blocking(self._take_over, doc, server, other)
                    self.store.put_doc("serverless", name, doc)
            await run_blocking(server.start)
            if lead_node(doc) != node_id:  # the restarted node is the replica: reads go to it again
                await run_blocking(self._point_reads, doc, server.config.address)

    def _point_reads(self, doc: dict, address: str) -> None:
        if not self._point_proxies(doc, node_addresses(doc)[0], address) and self.router is not None:
            self.router.set_route(self._reader_route_of(doc), doc["reader_port"], [(address, doc["port"])])

    def _take_over(self, doc: dict, dead: RedisServer, replica: RedisServer) -> None:
        """Promote the replica of a dead primary and give it the endpoint address (blocking)."""
        redis_cluster.cluster_failover(replica, takeover=True)
        if not wait_until(lambda: replica.role() == "master", 15):
            raise EngineError(f"serverless cache {doc['id']}: the replica did not take over")
        dead.config.extra_binds = []  # it restarts without the endpoint address
        doc["primary_node"] = REPLICA_NODE if lead_node(doc) == PRIMARY_NODE else PRIMARY_NODE
        # reads go to the new primary until the old node is back; a proxy on the endpoint follows
        address = replica.config.address
        if not self._point_proxies(doc, address, address, cut=True):
            replica.set_binds([PRIMARY])
            if self.router is not None:
                self.router.set_route(
                    self._reader_route_of(doc), doc["reader_port"], [(address, doc["port"])]
                )
        log.info("serverless cache %s: node %s took over as primary", doc["id"], doc["primary_node"])
