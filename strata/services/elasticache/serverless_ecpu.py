"""ECPUs of serverless caches: the ECPUPerSecond maximum honoured by a proxy on the cache's endpoints.

A serverless cache with `CacheUsageLimits.ECPUPerSecond.Maximum` is served through
`strata.engines.ecpu_proxy`: the proxy listens on the endpoint address (PRIMARY, the cache's port)
in place of the primary engine, and on a free port the reader endpoint's route points at, and
holds commands over the rate (AWS: "ElastiCache will begin throttling requests"); ThrottledCmds
counts the commands that waited. Caches without a maximum keep the engine itself on the endpoint:
the proxy costs Strata about 50-60 us of CPU per request (redis-benchmark -P 1 over TLS: ~5k req/s
through it against 35-48k direct on a busy 2-core machine, `bench/elasticache_serverless_ecpu.py`).
memcached cannot change the addresses it listens on while it runs (and a restart would empty the
cache), so a memcached node listens on its node address alone and the endpoint is a kernel route
of the endpoint router (as the reader endpoint is): to the node without a maximum, to the proxy
(listening on the cache's port at MEMCACHED_PROXY) with one. A route switch leaves the
connections already made where they were, so adding a maximum then destroys the node's
connections (`ss -K`, conn_kill.py; memcached has no CLIENT KILL) and they reconnect through the
proxy. Without kernel routes (no router, or HAProxy's) or `ss -K` a memcached serverless cache is
always behind the proxy on the endpoint address (counting only, without a maximum).

ModifyServerlessCache replaces CacheUsageLimits whole: a Modify whose limits leave out
ECPUPerSecond removes the maximum. The endpoint address never changes. Adding a maximum to a
Valkey/Redis cache moves the endpoint address from the engine (CONFIG SET bind) to the proxy and
disconnects the clients that were connected directly (they reconnect through the proxy);
removing it closes the proxy (its clients reconnect to the engine). A routed memcached cache
switches its route instead, then cuts the direct connections (adding) or closes the proxy
(removing). A proxy connection opened in the instant between the switch and the cut is cut too
(its client reconnects, as the others). A failover points the proxy at the new primary and ends
its relayed connections, as the engine's own failover would.

While a proxy runs, the cache's ECPUs are metered from its counts (1 per KB a command and its
answers transfer, at least 1 per command: AWS's rule for simple commands), otherwise from the
engine's counters (serverless.py `_meter_serverless`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from strata.engines.conn_kill import can_kill, kill_connections
from strata.engines.ecpu_proxy import EcpuLimiter, EcpuProxy
from strata.engines.nft import NftRouter
from strata.engines.redis import RedisServer
from strata.services.base import run_blocking
from strata.services.elasticache import security
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.nodes import PRIMARY, node_address

log = logging.getLogger("strata.elasticache")
SUFFIX = "~serverless"  # engine-side cluster ids of serverless caches: `<name>~serverless`
PRIMARY_NODE, REPLICA_NODE = "0001", "0002"
# where a routed memcached cache's proxy listens (on the cache's port): the second node's address,
# which a one-node memcached cache leaves free, and which the cache's security groups cover
MEMCACHED_PROXY = node_address(2)


def ecpu_maximum(doc: dict) -> int | None:
    """The cache's ECPUPerSecond.Maximum (None: no maximum)."""
    return (doc.get("limits") or {}).get("ECPUPerSecond", {}).get("Maximum")


def node_addresses(doc: dict) -> tuple[str, str]:
    """(the primary's node address, the address reads go to) of a serverless cache."""
    if doc["engine"] == "memcached":
        return node_address(1), node_address(1)
    lead = doc.get("primary_node") or PRIMARY_NODE
    return (node_address(1), node_address(2)) if lead == PRIMARY_NODE else (node_address(2), node_address(1))


def _announce(doc: dict) -> dict[bytes, bytes]:
    """What the proxy rewrites in CLUSTER SLOTS/SHARDS/NODES answers: both nodes' addresses to the
    endpoint's (same length: 127.0.1.x and 127.0.0.1), so a cluster client's connections to "the
    nodes" come through the proxy too (both at the endpoint's port: its reads go to the primary)."""
    if doc["engine"] == "memcached":
        return {}
    out = {node_address(i).encode(): PRIMARY.encode() for i in (1, 2)}
    assert all(len(k) == len(v) for k, v in out.items())
    return out


@dataclass
class CacheProxy:
    limiter: EcpuLimiter
    writer: EcpuProxy
    reader: EcpuProxy | None  # None: no endpoint router, the reader endpoint is the endpoint
    metered: float = 0.0  # the ECPUs counted that the meter has
    published: tuple[float, int] = (0.0, 0)  # (ECPUs, throttled commands) CloudWatch has


class ServerlessEcpuOperations(ElastiCacheCore):
    """A mixin of ElastiCacheProvider."""

    def _memcached_routed(self) -> bool:
        """Do memcached serverless caches' endpoints go through a kernel route (to the node, or to
        the proxy while there is a maximum)? Needs the endpoint router, and a way to cut the
        direct connections when a maximum comes (conn_kill.py). Otherwise always the proxy. Only
        the kernel's routes: HAProxy (the router where nftables cannot be used) would be a
        user-space hop of its own, whose connections to the node the security groups filter."""
        return isinstance(self.router, NftRouter) and can_kill()

    def _proxied(self, doc: dict) -> bool:
        """Is the cache served through the ECPU proxy? (See the module docstring.)"""
        if ecpu_maximum(doc) is not None:
            return True
        return doc["engine"] == "memcached" and not self._memcached_routed()

    def _writer_route_of(self, doc: dict) -> str:
        """The route of a memcached serverless cache's endpoint (see `_memcached_routed`)."""
        return f"serverless-writer-{self.store.engine_key(doc['id'])}"

    def _route_writer(self, doc: dict, backend: tuple[str, int]) -> None:
        """Point a routed memcached cache's endpoint (PRIMARY, its port) at `backend` (blocking)."""
        assert self.router is not None
        self.router.set_route(self._writer_route_of(doc), doc["port"], [backend])

    def _unmetered_ecpus(self, name: str) -> float | None:
        """The ECPUs the cache's proxy counted since they were last metered (None: not proxied)."""
        found = self.ecpu_proxies.get(self.store.engine_key(name + SUFFIX))
        if found is None:
            return None
        total = found.limiter.counters.ecpus
        new, found.metered = total - found.metered, total
        return new

    def _ecpu_unpublished(self, engine_key: str) -> tuple[float, int] | None:
        """(ECPUs, throttled commands) counted by the proxy of the serverless cache whose engine
        key is `engine_key` since CloudWatch last took them (None: not proxied)."""
        found = self.ecpu_proxies.get(engine_key)
        if found is None:
            return None
        now = (found.limiter.counters.ecpus, found.limiter.counters.throttled)
        before, found.published = found.published, now
        return now[0] - before[0], now[1] - before[1]

    async def _open_ecpu(self, doc: dict) -> None:
        """Serve the cache through its proxy (started if it is not), at its current rate; the
        caller has started the engines, the primary without the endpoint address."""
        key = self.store.engine_key(doc["id"] + SUFFIX)
        lead, reads = node_addresses(doc)
        found = self.ecpu_proxies.get(key)
        if found is None:
            server = self.engines.get(doc["id"] + SUFFIX, doc.get("primary_node") or PRIMARY_NODE)
            tls = getattr(getattr(server, "config", None), "tls", None)
            protocol = "memcached" if doc["engine"] == "memcached" else "resp"
            limiter = EcpuLimiter(ecpu_maximum(doc))
            routed = doc["engine"] == "memcached" and self._memcached_routed()
            host = MEMCACHED_PROXY if routed else PRIMARY  # routed: the endpoint's route leads to it
            writer = EcpuProxy(host, doc["port"], (lead, doc["port"]), protocol, limiter, tls=tls)
            writer.announce = _announce(doc)
            await writer.start()
            reader = None
            if self.router is not None:
                reader = EcpuProxy(PRIMARY, 0, (reads, doc["port"]), protocol, limiter, tls=tls)
                reader.announce = _announce(doc)
                try:
                    await reader.start()
                except OSError:
                    await writer.close()
                    raise
            found = CacheProxy(limiter, writer, reader)
            self.ecpu_proxies[key] = found
            if reader is not None:  # the cache's security groups cover the reader proxy's port too
                await run_blocking(self._guard_serverless, doc)  # type: ignore[attr-defined]
            if routed:  # the endpoint to the proxy; clients connected to the node reconnect to it
                await run_blocking(self._route_writer, doc, (writer.host, writer.port))
                await run_blocking(kill_connections, lead, doc["port"])
        found.limiter.rate = ecpu_maximum(doc)
        await run_blocking(self._point_proxies, doc, lead, reads)

    def _point_proxies(self, doc: dict, lead: str, reads: str, *, cut: bool = False) -> bool:
        """Send the cache's proxied connections to these nodes (blocking; any thread); False when
        the cache has no proxy (the caller moves the engine's endpoint itself)."""
        found = self.ecpu_proxies.get(self.store.engine_key(doc["id"] + SUFFIX))
        if found is None:
            return False
        found.writer.upstream = (lead, doc["port"])
        if found.reader is not None:
            found.reader.upstream = (reads, doc["port"])
            if self.router is not None:
                self.router.set_route(
                    self._reader_route_of(doc),  # type: ignore[attr-defined]
                    doc["reader_port"],
                    [(found.reader.host, found.reader.port)],
                )
        if cut and self._loop is not None:
            for proxy in (found.writer, found.reader):
                if proxy is not None:
                    self._loop.call_soon_threadsafe(proxy.cut)
        return True

    def _reader_proxy_port(self, doc: dict) -> int | None:
        found = self.ecpu_proxies.get(self.store.engine_key(doc["id"] + SUFFIX))
        return found.reader.port if found is not None and found.reader is not None else None

    async def _close_ecpu(self, doc: dict) -> None:
        found = self.ecpu_proxies.pop(self.store.engine_key(doc["id"] + SUFFIX), None)
        if found is not None:
            for proxy in (found.writer, found.reader):
                if proxy is not None:
                    await proxy.close()
            await run_blocking(security.unguard, self, doc["port_owner"] + "/reader-proxy")  # type: ignore[arg-type]

    async def _apply_ecpu(self, doc: dict) -> None:
        """A changed ECPUPerSecond limit, live (the caller holds the cache's lock)."""
        key = self.store.engine_key(doc["id"] + SUFFIX)
        has = key in self.ecpu_proxies
        if self._proxied(doc) and has:
            self.ecpu_proxies[key].limiter.rate = ecpu_maximum(doc)
            return
        servers = [
            s
            for s in (self.engines.get(doc["id"] + SUFFIX, n) for n in (PRIMARY_NODE, REPLICA_NODE))
            if isinstance(s, RedisServer) and s.running()
        ]
        lead_id = doc.get("primary_node") or PRIMARY_NODE
        lead = self.engines.get(doc["id"] + SUFFIX, lead_id)
        if self._proxied(doc):  # the endpoint moves from the engine to the proxy
            if isinstance(lead, RedisServer):
                await run_blocking(lead.set_binds, [])
            await self._open_ecpu(doc)  # (a routed memcached cache's direct clients are cut there)
            for server in servers:  # direct clients reconnect, through the proxy
                await run_blocking(server.drop_clients)
        elif has:  # and back
            lead_address, reads = node_addresses(doc)
            if doc["engine"] == "memcached":  # (so routed) new connections go to the node from now on
                await run_blocking(self._route_writer, doc, (lead_address, doc["port"]))
            if self.router is not None:
                await run_blocking(
                    self.router.set_route,
                    self._reader_route_of(doc),  # type: ignore[attr-defined]
                    doc["reader_port"],
                    [(reads, doc["port"])],
                )
            await self._close_ecpu(doc)
            if isinstance(lead, RedisServer):
                await run_blocking(lead.set_binds, [PRIMARY])

    async def _close_all_ecpu(self) -> None:
        for found in list(self.ecpu_proxies.values()):
            for proxy in (found.writer, found.reader):
                if proxy is not None:
                    await proxy.close()
        self.ecpu_proxies.clear()
