"""Serverless caches: Create/Describe/Modify/DeleteServerlessCache on real engines.

A serverless cache is one deployment of its own (record kind `serverless`): a Valkey/Redis OSS
primary and one replica forming a one-shard Redis Cluster (AWS's serverless caches run cluster
mode enabled: cluster clients work; SELECT and multi-key commands across hash slots are refused
by the engine), or one memcached node; always with in-transit encryption, as on AWS. `Endpoint`
is the primary endpoint address (PRIMARY) on the cache's port; `ReaderEndpoint` is a second port
on the same address, a route of the endpoint router to the replica (memcached: to the node
itself), as AWS serves reads on 6380 beside 6379; as on any cluster replica, a connection reads
there after READONLY.

Usage limits: DataStorage.Maximum is the engine's memory cap (redis `maxmemory` with
`volatile-lru`: at the maximum, keys with a TTL are evicted LRU-first, and with none left a write
gets the engine's OOM error, as AWS documents; memcached `-m`, evicting LRU). DataStorage.Minimum
and ECPUPerSecond.Minimum are billing floors (AWS bills at least them). ECPUPerSecond.Maximum
throttles requests: the cache is then served through an ECPU proxy (serverless_ecpu.py).

Metering (on every clock advance and at delete): `ServerlessStorageGBHours`, the engine's used
memory (at least the minimum: 1 GB, 100 MB for Valkey) times the hours; `ServerlessECPUs`, the
proxy's count when the cache has one, else the commands the engine processed or the kilobytes it
moved, whichever is more (AWS: 1 ECPU per simple command per KB transferred, at least 1).

The engine nodes are named `<name>~serverless` (a `~` is in no cache cluster id, so they never
collide with a cluster's) and are restarted by the service's monitor like every node.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from strata.context import RequestContext
from strata.engines import redis_cluster
from strata.engines.process import EngineError, wait_until
from strata.engines.redis import RedisServer
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.elasticache import events, exposure, security, subnets
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import START_ATTEMPTS, ElastiCacheCore, now_iso
from strata.services.elasticache.errors import combination, fault, invalid
from strata.services.elasticache.membership import new_port_owner
from strata.services.elasticache.nodes import PRIMARY, node_address
from strata.services.elasticache.render import arn, endpoint, ts
from strata.services.elasticache.serverless_ecpu import (
    PRIMARY_NODE,
    REPLICA_NODE,
    SUFFIX,
    ServerlessEcpuOperations,
    node_addresses,
)
from strata.services.iam.service_roles import ensure_service_linked_role
from strata.sim.clock import clock
from strata.sim.meter import meter

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

log = logging.getLogger("strata.elasticache")

GIB = 1024**3
MAX_STORAGE_GB = 5000
ECPU_RANGE = (1000, 15_000_000)
MAX_SERVERLESS_CACHES = 40  # per account and region (the default quota)
MIN_BILLED_GB = {"valkey": 0.1, "redis": 1.0, "memcached": 1.0}
MEMCACHED_UNLIMITED_MB = MAX_STORAGE_GB * 1024


def lead_node(doc: dict) -> str:
    """The node id of a serverless cache's primary (it changes when a replica takes over)."""
    return doc.get("primary_node") or PRIMARY_NODE


def engine_id(name: str) -> str:
    """The engine-side cluster id of a serverless cache's nodes."""
    return name + SUFFIX


def major(eng: str, version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:2]) if eng == "memcached" else parts[0]


def _not_found(name: str | None) -> ServiceError:
    return fault("ServerlessCacheNotFoundFault", f"Serverless cache {name} not found.")


def usage_limits(value: dict | None) -> dict:
    """CacheUsageLimits checked as AWS checks them (GB 1-5000, ECPU/s 1,000-15,000,000, minimum
    at most the maximum)."""
    value = value or {}
    out: dict = {}
    storage = value.get("DataStorage")
    if storage:
        if storage.get("Unit") != "GB":
            raise invalid("The parameter CacheUsageLimits.DataStorage.Unit must be GB.")
        low, high = storage.get("Minimum"), storage.get("Maximum")
        for what, n in (("Minimum", low), ("Maximum", high)):
            if n is not None and not 1 <= n <= MAX_STORAGE_GB:
                raise invalid(
                    f"CacheUsageLimits.DataStorage.{what} must be between 1 and {MAX_STORAGE_GB} GB."
                )
        if low is None and high is None:
            raise invalid("CacheUsageLimits.DataStorage needs a Minimum or a Maximum.")
        if low is not None and high is not None and low > high:
            raise invalid("CacheUsageLimits.DataStorage.Minimum cannot exceed its Maximum.")
        out["DataStorage"] = {
            k: storage[k] for k in ("Maximum", "Minimum", "Unit") if storage.get(k) is not None
        }
    ecpu = value.get("ECPUPerSecond")
    if ecpu:
        low, high = ecpu.get("Minimum"), ecpu.get("Maximum")
        for what, n in (("Minimum", low), ("Maximum", high)):
            if n is not None and not ECPU_RANGE[0] <= n <= ECPU_RANGE[1]:
                raise invalid(
                    f"CacheUsageLimits.ECPUPerSecond.{what} must be between {ECPU_RANGE[0]} and {ECPU_RANGE[1]}."
                )
        if low is None and high is None:
            raise invalid("CacheUsageLimits.ECPUPerSecond needs a Minimum or a Maximum.")
        if low is not None and high is not None and low > high:
            raise invalid("CacheUsageLimits.ECPUPerSecond.Minimum cannot exceed its Maximum.")
        out["ECPUPerSecond"] = {k: ecpu[k] for k in ("Maximum", "Minimum") if ecpu.get(k) is not None}
    return out


def storage_cap(doc: dict, gb_bytes: int = GIB) -> int:
    """The engine's memory cap in bytes (0: none); `gb_bytes`: what one GB of DataStorage is."""
    gb = (doc.get("limits") or {}).get("DataStorage", {}).get("Maximum")
    return int(gb * gb_bytes) if gb else 0


class ServerlessOperations(ServerlessEcpuOperations, ElastiCacheCore):
    """A mixin of ElastiCacheProvider."""

    # -- records and rendering ----------------------------------------------------------------------

    def _serverless_doc(self, name: str | None) -> dict:
        doc = self.store.get_doc("serverless", (name or "").lower())
        if doc is None:
            raise _not_found(name)
        return doc

    def _reader_route_of(self, doc: dict) -> str:
        return f"serverless-reader-{self.store.engine_key(doc['id'])}"

    def _render_serverless(self, ctx: RequestContext, doc: dict, status: str | None = None) -> dict:
        reader = (PRIMARY, doc["reader_port"]) if self.router is not None else (PRIMARY, doc["port"])
        out: dict = {
            "ServerlessCacheName": doc["id"],
            "CreateTime": ts(doc["created"]),
            "Status": status or doc["status"],
            "Engine": doc["engine"],
            "MajorEngineVersion": major(doc["engine"], doc["engine_version"]),
            "FullEngineVersion": doc["engine_version"],
            "CacheUsageLimits": doc.get("limits") or {},
            "SecurityGroupIds": list(doc.get("security_groups") or []),
            "Endpoint": endpoint(PRIMARY, doc["port"]),
            "ReaderEndpoint": endpoint(*reader),
            "ARN": arn(ctx.region, ctx.account_id, "serverlesscache", doc["id"]),
            "SubnetIds": list(doc.get("subnets") or []),
            "NetworkType": "ipv4",
            "ConnectionType": "vpc",
        }
        if doc.get("description"):
            out["Description"] = doc["description"]
        if doc.get("user_group"):
            out["UserGroupId"] = doc["user_group"]
        if doc.get("_kms_arn"):
            out["KmsKeyId"] = doc["_kms_arn"]
        if doc["engine"] in v.REDIS_LIKE:
            out["SnapshotRetentionLimit"] = doc.get("retention") or 0
            out["DailySnapshotTime"] = doc.get("snapshot_time") or "00:00"
        return exposure.advertise(out, self.settings.exposed_engines, self.router)

    # -- engines ------------------------------------------------------------------------------------

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

    def _meter_serverless(self, doc: dict) -> None:
        """Record storage GB-hours and ECPUs since the cache was last metered (the caller saves it)."""
        now = clock.now()
        since = datetime.fromisoformat(doc.get("metered_at") or doc["created"])
        seconds = max(0.0, (now - since).total_seconds())
        doc["metered_at"] = now.isoformat()
        if seconds <= 0:
            return
        server = self.engines.get(engine_id(doc["id"]), lead_node(doc))
        used, commands, moved = 0, 0, 0
        if server is not None and server.running():
            try:
                if isinstance(server, RedisServer):
                    used = server.used_memory()
                    stats = server.info("stats")
                    commands = int(stats.get("total_commands_processed", 0))
                    moved = int(stats.get("total_net_input_bytes", 0)) + int(
                        stats.get("total_net_output_bytes", 0)
                    )
                else:
                    stats = server.stats()
                    used = int(stats.get("bytes", 0))
                    commands = int(stats.get("cmd_get", 0)) + int(stats.get("cmd_set", 0))
                    moved = int(stats.get("bytes_read", 0)) + int(stats.get("bytes_written", 0))
            except (redis.RedisError, OSError, EngineError):
                log.warning("serverless cache %s: could not read its usage", doc["id"], exc_info=True)
        limits = doc.get("limits") or {}
        floor_gb = limits.get("DataStorage", {}).get("Minimum") or MIN_BILLED_GB[doc["engine"]]
        dims = {"engine": doc["engine"], "serverless_cache": doc["id"]}
        gb = max(used / GIB, float(floor_gb))
        meter.record("elasticache", "ServerlessStorageGBHours", gb * seconds / 3600, "GB-hour", **dims)
        base_commands, base_moved = doc.get("ecpu_base") or (0, 0)
        if commands < base_commands or moved < base_moved:  # the engine restarted: its counters too
            base_commands, base_moved = 0, 0
        doc["ecpu_base"] = [commands, moved]
        used_ecpus = max(commands - base_commands, (moved - base_moved) / 1024)
        counted = self._unmetered_ecpus(doc["id"])
        if counted is not None:  # the proxy counted them
            used_ecpus = counted
        floor_ecpu = limits.get("ECPUPerSecond", {}).get("Minimum", 0) * seconds
        ecpus = max(used_ecpus, floor_ecpu)
        if ecpus > 0:
            meter.record("elasticache", "ServerlessECPUs", ecpus, "ECPU", **dims)

    def _meter_all_serverless(self) -> None:
        """Every serverless cache's usage since it was last metered (the scheduler's rule; blocking)."""
        for doc in self.store.list_docs("serverless"):
            with self.store.acting_for(doc):
                if doc["status"] == "available":
                    self._meter_serverless(doc)
                    self.store.put_doc("serverless", doc["id"], doc)

    # -- CreateServerlessCache ------------------------------------------------------------------------

    def _placement(self, ctx: RequestContext, subnet_ids: list[str] | None) -> tuple[list[str], str | None]:
        """(subnet ids, their VPC): the ones given, which must exist and share one VPC, or the
        default VPC's default subnets."""
        net = subnets.network(self)
        if net is None:
            if subnet_ids:
                raise invalid("SubnetIds need Strata's EC2 service")
            return [], None
        if not subnet_ids:
            found = [s for s in net.subnets(ctx.account_id, ctx.region) if s.get("default")]
            return [s["id"] for s in found], (found[0]["vpc"] if found else None)
        vpcs = set()
        for sid in dict.fromkeys(subnet_ids):
            subnet = net.subnet(ctx.account_id, ctx.region, sid)
            if subnet is None:
                raise invalid(f"The subnet ID {sid} does not exist")
            vpcs.add(subnet["vpc"])
        if len(vpcs) > 1:
            raise invalid("The subnets of a serverless cache must all be in one VPC.")
        return list(dict.fromkeys(subnet_ids)), vpcs.pop()

    def _security_groups_in(
        self: ElastiCacheProvider, ctx: RequestContext, ids: list[str] | None, vpc: str | None
    ) -> list[str]:
        sgs = security._groups(self)
        if sgs is None:
            if ids:
                raise invalid("SecurityGroupIds need Strata's EC2 service")
            return []
        try:
            return sgs.check_attachable(ctx.account_id, ctx.region, list(ids or []), vpc)
        except ServiceError as e:
            raise (combination if e.code == "InvalidParameterCombination" else invalid)(e.message) from None

    async def create_serverless_cache(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        name = v.identifier(req.get("ServerlessCacheName"), "ServerlessCacheName", 40)
        if self.store.get_doc("serverless", name) is not None:
            raise fault("ServerlessCacheAlreadyExistsFault", f"Serverless cache {name} already exists.")
        limit = self.settings.limit("elasticache_max_serverless_caches", MAX_SERVERLESS_CACHES)
        if len(self.store.list_docs("serverless")) >= limit:
            raise fault(
                "ServerlessCacheQuotaForCustomerExceededFault",
                f"You have reached the maximum number of serverless caches ({limit}) in this region.",
            )
        eng = req.get("Engine") or ""
        if eng.lower() not in ("redis", "valkey", "memcached"):
            raise invalid(
                f"Invalid value for parameter Engine: {eng}. Valid values are: redis, valkey, memcached"
            )
        eng = eng.lower()
        version = self._version(eng, tls=True)
        wanted = req.get("MajorEngineVersion")
        if wanted and wanted != major(eng, version):
            raise combination(f"Cannot find version {wanted} for {eng}")
        limits = usage_limits(req.get("CacheUsageLimits"))
        restore = self._sls_restore_source(ctx, req.get("SnapshotArnsToRestore"), eng)
        kms_key = self._sls_kms_key(ctx, req, restore)
        if eng not in v.REDIS_LIKE and (req.get("SnapshotRetentionLimit") or req.get("DailySnapshotTime")):
            raise combination("Snapshots of serverless caches are supported for Valkey and Redis OSS only.")
        subnet_ids, vpc = self._placement(ctx, req.get("SubnetIds"))
        groups = self._security_groups_in(ctx, req.get("SecurityGroupIds"), vpc)
        created = now_iso()
        doc: dict = {
            "id": name,
            "description": req.get("Description") or "",
            "status": "creating",
            "created": created,
            "engine": eng,
            "engine_version": version,
            "node_type": "cache.serverless",
            "transit": True,
            "auth": None,
            "cluster_mode": eng in v.REDIS_LIKE,
            "bus_port": None,
            "limits": limits,
            "security_groups": groups,
            "sg_scope": [ctx.account_id, ctx.region],
            "subnets": subnet_ids,
            "tags": v.tags(req.get("Tags")),
            "port": 0,
            "reader_port": 0,
            "port_owner": new_port_owner("serverless", name),
            "user_group": None,
            "acl": [],
            "retention": v.retention(req.get("SnapshotRetentionLimit")),
            "snapshot_time": v.daily_time(req["DailySnapshotTime"]) if req.get("DailySnapshotTime") else None,
        }
        if req.get("UserGroupId"):
            doc["user_group"] = self._user_groups_for([req["UserGroupId"]], doc)[0]
            doc["acl"] = self._acl_lines([doc["user_group"]])
        self.store.put_doc("serverless", name, doc)
        if kms_key:  # its volume first: no node of it ever writes outside (serverless_at_rest.py)
            doc["_kms_arn"] = kms_key
            try:
                await self._encrypt_serverless(doc)
            except ServiceError:
                self.store.delete_doc("serverless", name)
                raise
            self.store.put_doc("serverless", name, doc)
        owner = doc["port_owner"]
        async with self._resource_lock(engine_id(name)):
            for attempt in range(START_ATTEMPTS):
                doc["port"] = self._allocate_port(owner, attempt)
                doc["reader_port"] = self._allocate_port(owner + "/reader", attempt)
                if doc["cluster_mode"]:
                    doc["bus_port"] = self._allocate_port(owner + "/bus", attempt)
                self.store.put_doc("serverless", name, doc)
                await run_blocking(self._guard_serverless, doc)
                try:
                    await run_blocking(self._start_serverless, doc, restore)
                    if self._proxied(doc):
                        await self._open_ecpu(doc)
                    break
                except (EngineError, OSError, redis.RedisError) as e:
                    await self._close_ecpu(doc)
                    await run_blocking(self._stop_serverless, doc)
                    await run_blocking(self._unguard_serverless, doc)
                    if attempt + 1 == START_ATTEMPTS:
                        await self._remove_serverless_volume(doc)
                        self.store.delete_doc("serverless", name)
                        raise fault(
                            "InsufficientCacheClusterCapacityFault", f"The engines could not be started: {e}"
                        ) from e
                    log.warning("starting serverless cache %s failed (%s); trying other ports", name, e)
            doc["status"] = "available"
            doc["metered_at"] = now_iso()
            self.store.put_doc("serverless", name, doc)
            events.record(self.store, name, "serverless-cache", f"Serverless cache {name} created")
        ensure_service_linked_role(self.settings, ctx.account_id, "elasticache.amazonaws.com")
        return {"ServerlessCache": self._render_serverless(ctx, doc, "creating")}

    # -- DescribeServerlessCaches ---------------------------------------------------------------------

    def describe_serverless_caches(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("ServerlessCacheName"):
            docs = [self._serverless_doc(req["ServerlessCacheName"])]
        else:
            docs = sorted(self.store.list_docs("serverless"), key=lambda d: d["id"])
        size = req.get("MaxResults") or 50
        if not 1 <= size <= 100:
            raise invalid("MaxResults must be between 1 and 100.")
        token = req.get("NextToken")
        if token:
            docs = [d for d in docs if d["id"] > token]
        out: dict = {"ServerlessCaches": [self._render_serverless(ctx, d) for d in docs[:size]]}
        if len(docs) > size:
            out["NextToken"] = docs[size - 1]["id"]
        return out

    # -- ModifyServerlessCache ------------------------------------------------------------------------

    async def modify_serverless_cache(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        doc = self._serverless_doc(req.get("ServerlessCacheName"))
        async with self._resource_lock(engine_id(doc["id"])):
            doc = self._serverless_doc(doc["id"])
            if doc["status"] != "available":
                raise fault(
                    "InvalidServerlessCacheStateFault",
                    f"Serverless cache {doc['id']} is not in available state.",
                )
            eng = (req.get("Engine") or doc["engine"]).lower()
            if eng != doc["engine"] or (
                req.get("MajorEngineVersion")
                and req["MajorEngineVersion"] != major(doc["engine"], doc["engine_version"])
            ):
                raise combination("Strata cannot change the engine or engine version of a serverless cache.")
            if req.get("RemoveUserGroup") and req.get("UserGroupId"):
                raise combination("RemoveUserGroup cannot be combined with UserGroupId.")
            user_group = doc.get("user_group")
            if req.get("UserGroupId"):
                user_group = self._user_groups_for([req["UserGroupId"]], doc)[0]
            elif req.get("RemoveUserGroup"):
                user_group = None
            limits = usage_limits(req["CacheUsageLimits"]) if "CacheUsageLimits" in req else None
            if req.get("SecurityGroupIds"):
                vpc = None
                net = subnets.network(self)
                if net is not None and doc.get("subnets"):
                    first = net.subnet(ctx.account_id, ctx.region, doc["subnets"][0])
                    vpc = first["vpc"] if first else None
                doc["security_groups"] = self._security_groups_in(ctx, req["SecurityGroupIds"], vpc)
                doc["sg_scope"] = [ctx.account_id, ctx.region]
            if "Description" in req:
                doc["description"] = req["Description"] or ""
            if "SnapshotRetentionLimit" in req or req.get("DailySnapshotTime"):
                if doc["engine"] not in v.REDIS_LIKE:
                    raise combination(
                        "Snapshots of serverless caches are supported for Valkey and Redis OSS only."
                    )
                if "SnapshotRetentionLimit" in req:
                    doc["retention"] = v.retention(req["SnapshotRetentionLimit"])
                if req.get("DailySnapshotTime"):
                    doc["snapshot_time"] = v.daily_time(req["DailySnapshotTime"])
            if limits is not None:
                self._meter_serverless(doc)  # the old floors up to now
                doc["limits"] = limits
                await run_blocking(self._apply_storage_cap, doc)
                await self._apply_ecpu(doc)
            if user_group != doc.get("user_group"):
                before = list(doc.get("acl") or [])
                doc["user_group"] = user_group
                doc["acl"] = self._acl_lines([user_group] if user_group else [])
                await run_blocking(self._apply_serverless_acl, doc, before)
            self.store.put_doc("serverless", doc["id"], doc)
            if req.get("SecurityGroupIds"):
                await run_blocking(self._guard_serverless, doc)
            return {"ServerlessCache": self._render_serverless(ctx, doc, "modifying")}

    def _apply_serverless_acl(self, doc: dict, before: list[str]) -> None:
        from strata.services.elasticache.users import _apply_to_node

        gone = {line.split()[0] for line in before} - {line.split()[0] for line in doc["acl"]} - {"default"}
        for server in self._serverless_servers(doc):
            if server.running():
                _apply_to_node(server, doc["acl"], gone)

    async def _reapply_serverless(self: ElastiCacheProvider, user_group_ids: set[str]) -> None:
        """A user or user group changed: the serverless caches using it get the new ACL."""
        for doc in self.store.list_docs("serverless"):
            if doc.get("user_group") not in user_group_ids:
                continue
            async with self._resource_lock(engine_id(doc["id"])):
                fresh = self.store.get_doc("serverless", doc["id"])
                if fresh is None:
                    continue
                before = list(fresh.get("acl") or [])
                fresh["acl"] = self._acl_lines([fresh["user_group"]])
                await run_blocking(self._apply_serverless_acl, fresh, before)
                self.store.put_doc("serverless", fresh["id"], fresh)

    # -- DeleteServerlessCache ------------------------------------------------------------------------

    async def delete_serverless_cache(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        doc = self._serverless_doc(req.get("ServerlessCacheName"))
        async with self._resource_lock(engine_id(doc["id"])):
            doc = self._serverless_doc(doc["id"])
            if doc["status"] != "available":
                raise fault(
                    "InvalidServerlessCacheStateFault",
                    f"Serverless cache {doc['id']} is not in available state.",
                )
            if req.get("FinalSnapshotName"):
                final = v.identifier(req["FinalSnapshotName"], "FinalSnapshotName", 255)
                await self._take_sls_snapshot(final, doc, "manual")
            rendered = self._render_serverless(ctx, doc, "deleting")
            await run_blocking(self._meter_serverless, doc)
            await self._close_ecpu(doc)
            await run_blocking(self._stop_serverless, doc)
            await run_blocking(self._unguard_serverless, doc)
            await self._remove_serverless_volume(doc)
            self.store.delete_doc("serverless", doc["id"])
            for snap in self.store.list_docs("serverless_snapshot"):  # automatic ones go with the cache
                if snap["cache"] == doc["id"] and snap["type"] == "automated":
                    self._drop_sls_snapshot(snap["name"])
            events.record(self.store, doc["id"], "serverless-cache", f"Serverless cache {doc['id']} deleted")
        return {"ServerlessCache": rendered}

    # -- restart ---------------------------------------------------------------------------------------

    async def _restore_serverless(self, doc: dict) -> None:
        with self.store.acting_for(doc):
            try:
                if not security.engines_guarded(self, doc["port_owner"], doc):  # recorded before they were
                    await run_blocking(self._guard_serverless, doc)
                await run_blocking(self._start_serverless, doc)
                if self._proxied(doc):
                    await self._open_ecpu(doc)
                if doc["status"] != "available":
                    doc["status"] = "available"
                    self.store.put_doc("serverless", doc["id"], doc)
            except Exception:  # noqa: BLE001 - one broken cache must not keep Strata down
                log.exception("could not restart serverless cache %s", doc["id"])
