"""State and helpers shared by the ElastiCache topic modules: records, engines, ports, the
monitor that restarts dead nodes, and pagination (automatic snapshots: snapshots.py).

`ElastiCacheCore` is the base of every `*Operations` class; provider.py composes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis

from strata.context import RequestContext
from strata.engines.conn_kill import can_kill
from strata.engines.endpoint import EndpointRouter, Router
from strata.engines.lag_relay import LagRelay
from strata.engines.ports import PortAllocator
from strata.engines.redis import RedisServer
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime, run_blocking
from strata.services.elasticache import cache_parameters as cp
from strata.services.elasticache import exposure, security
from strata.services.elasticache.errors import combination, fault, invalid
from strata.services.elasticache.nodes import PRIMARY, Engines, Server, durable_nodes
from strata.services.elasticache.render import endpoint, render_cluster
from strata.services.owned_docs import OwnedDocs
from strata.sim import timings
from strata.sim.clock import clock
from strata.sim.meter import meter
from strata.sim.scheduler import scheduler
from strata.storage.encrypted_volumes import EncryptedVolumes
from strata.storage.shared import open_store

if TYPE_CHECKING:
    from strata.services.elasticache.discovery import DiscoveryEndpoint

log = logging.getLogger("strata.elasticache")
MONITOR_INTERVAL = 1.0
START_ATTEMPTS = 3  # a freshly allocated port can be taken by another program before the engine binds it


def start_attempt_failed(what: str, attempt: int, port: int, error: Exception) -> None:
    """After a failed start of a new deployment's engines: InsufficientCacheClusterCapacityFault
    when it was the last of START_ATTEMPTS, else a warning (the caller tries another port)."""
    if attempt + 1 == START_ATTEMPTS:
        raise fault(
            "InsufficientCacheClusterCapacityFault", f"The engines of {what} could not be started: {error}"
        ) from error
    log.warning("starting %s on port %s failed (%s); trying another port", what, port, error)


def now_iso() -> str:
    return clock.now().isoformat()


_TAKEN = {
    "cluster": ("CacheClusterAlreadyExistsFault", "Cache cluster already exists"),
    "group": ("ReplicationGroupAlreadyExistsFault", "Replication group already exists."),
    "snapshot": ("SnapshotAlreadyExistsFault", "Snapshot already exists."),
    "serverless": ("ServerlessCacheAlreadyExistsFault", "Serverless cache already exists."),
    "global_group": ("GlobalReplicationGroupAlreadyExistsFault", "Global replication group already exists."),
    "serverless_snapshot": (
        "ServerlessCacheSnapshotAlreadyExistsFault",
        "Serverless cache snapshot already exists.",
    ),
}


def _taken(kind: str, ident: str) -> ServiceError:
    """Another account held this identifier before identifiers were per account (see owned_docs)."""
    shape, message = _TAKEN.get(kind, ("InvalidParameterValueException", f"{ident} is in use."))
    return fault(shape, message)


class ElastiCacheCore:
    """State and helpers every ElastiCache operation class shares."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        # In this gateway's SQLite even with --metadata: its engines run here (storage.shared).
        self.store = OwnedDocs(
            open_store(
                runtime.data_dir / "elasticache.db", "elasticache", url=None, fsync=runtime.settings.fsync
            ),
            default_account=runtime.settings.account_id,
            default_region=runtime.settings.region,
            per_account=frozenset(
                {
                    "cluster",
                    "group",
                    "snapshot",
                    "user",
                    "user_group",
                    "subnet_group",
                    "param_group",
                    "serverless",
                    "global_group",
                    "serverless_snapshot",
                    "event",  # events.py
                }
            ),
            taken=_taken,
        )
        self.engines = Engines(
            runtime.data_dir,
            runtime.settings.data_dir,
            key=self.store.engine_key,
            encrypted_root=lambda cluster_id: self._encrypted_root(cluster_id),
            parameters=self._engine_parameters,
            announce=lambda dep, address: exposure.announced(
                self.router, self.settings.exposed_engines, dep, address
            ),
            append_only=durable_nodes(runtime.settings.metadata),
        )
        # groups encrypted at rest and their snapshots: `<data>/elasticache/volumes/` (at_rest.py)
        self.volumes = EncryptedVolumes(runtime.data_dir)
        self._encrypting: set[str] = set()  # groups whose volume is being made (not yet recorded)
        self.ports = PortAllocator.for_settings(runtime.settings)
        self.snapshot_root = runtime.data_dir / "snapshots"
        self._locks: dict[str, asyncio.Lock] = {}
        self._monitor: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deferred: set[asyncio.Task] = set()  # automatic snapshots waiting for a busy deployment
        self.discovery: dict[str, DiscoveryEndpoint] = {}  # memcached configuration endpoints
        # reader endpoints, spread over the replicas (None: one replica binds the address instead)
        self.router: Router | None = None
        # engine keys of members whose zone has no power (FIS, az_power.py): nothing restarts them
        self.unpowered: set[str] = set()
        # group engine key -> member id -> the relay holding that replica back (FIS, replica_lag.py)
        self.lag_relays: dict[str, dict[str, LagRelay]] = {}
        # serverless cache engine key -> its ECPU proxy (serverless_ecpu.py)
        self.ecpu_proxies: dict[str, Any] = {}

    # -- life -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring every deployment's engines back (after a restart), then watch them."""
        self._loop = asyncio.get_running_loop()
        try:
            router = EndpointRouter(
                self.runtime.data_dir / "endpoints",
                name="elasticache",
                any_loopback=True,
                exposed=self.settings.exposed_engines,
            )
            await run_blocking(router.start)
            self.router = router
            await run_blocking(can_kill)  # tried once here, off the event loop (serverless_ecpu.py)
        except Exception:  # noqa: BLE001 - reader endpoints then stay on one replica each
            log.warning("no endpoint router for reader endpoints; each stays on one replica", exc_info=True)
        given = await run_blocking(security.guard_old_records, self)  # type: ignore[arg-type]
        if given:
            log.info("ElastiCache: %d deployments recorded without security groups now carry defaults", given)
        # Side by side: a cluster-mode group alone waits ~2 s for the engine to accept writes.
        await asyncio.gather(
            *(
                self._restore(self._start_standalone, c, "cluster")
                for c in self.store.list_docs("cluster")
                if not c.get("group")
            ),
            *(self._restore(self._start_group, g, "group") for g in self.store.list_docs("group")),
            *(self._restore_serverless(d) for d in self.store.list_docs("serverless")),  # type: ignore[attr-defined]
        )
        # metering and automatic snapshots: each window's opening is reached within 30 minutes
        # the rule is an operation class's method (snapshots.py `_snapshot_rule`), found on the composed provider
        scheduler.register("elasticache.snapshots", self._snapshot_rule, every=1800.0)
        # node changes held for the maintenance window (maintenance.py): windows last 60 minutes at least
        scheduler.register("elasticache.maintenance", self._maintenance_rule, every=1800.0)
        self._monitor = asyncio.create_task(self._watch())

    async def _restore(self, start: Any, doc: dict, kind: str) -> None:
        with self.store.acting_for(doc):  # this coroutine runs as its own task: the scope stays in it
            await self._restore_scoped(start, doc, kind)

    async def _restore_scoped(self, start: Any, doc: dict, kind: str) -> None:
        try:
            await run_blocking(start, doc, None)
            if doc.get("engine") == "memcached":
                await self._open_discovery(doc, PRIMARY)
            if kind == "group":
                self._save_group(doc, "available")
            elif doc["status"] != "available":
                doc["status"] = "available"
                self.store.put_doc(kind, doc["id"], doc)
        except Exception:  # noqa: BLE001 - one broken deployment must not keep Strata down
            log.exception("could not restart ElastiCache %s %s", kind, doc["id"])

    async def stop(self) -> None:
        scheduler.unregister("elasticache.snapshots")
        scheduler.unregister("elasticache.maintenance")
        for task in list(self._deferred):
            task.cancel()
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._monitor
        for relays in self.lag_relays.values():
            for relay in relays.values():
                await relay.close()
        await self._close_all_ecpu()  # type: ignore[attr-defined]
        for key in list(self.discovery):
            account, region, cluster_id = self.store.split_engine_key(key)
            with self.store.acting_as(account, region):
                await self._close_discovery(cluster_id)
        await run_blocking(self.engines.stop_everything)
        if self.router is not None:
            await run_blocking(self.router.stop)

    def _powered(self, cid: str) -> bool:
        """False while the member's Availability Zone has no power: nothing may start it."""
        return self.store.engine_key(cid) not in self.unpowered

    def health(self) -> str:
        return "running"

    def _resource_lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(self.store.engine_key(key), asyncio.Lock())

    # -- records --------------------------------------------------------------------------------------

    def _cluster_doc(self, cluster_id: str | None) -> dict:
        doc = self.store.get_doc("cluster", (cluster_id or "").lower())
        if doc is None:
            raise fault("CacheClusterNotFoundFault", f"CacheCluster not found: {cluster_id}")
        return doc

    def _group_doc(self, group_id: str | None) -> dict:
        doc = self.store.get_doc("group", (group_id or "").lower())
        if doc is None:
            raise fault("ReplicationGroupNotFoundFault", f"ReplicationGroup not found: {group_id}")
        return doc

    def _hold_status(self, kind: str, doc: dict, status: str, name: str) -> bool:
        """Under `--timings aws`: the cache cluster (`kind` "cluster") or replication group
        ("group") `doc`, its members with it, shows `status` (creating, modifying) for the
        profile's `name` duration (strata.sim.timings), then `available`; its engines serve
        meanwhile, as an application that ignores the status would find. False (nothing done)
        under the fast profile."""
        hold = timings.seconds(self.settings, name)
        if not hold:
            return False
        self._set_dep_status(kind, doc, status)
        task = asyncio.get_running_loop().create_task(self._end_hold(kind, doc, status, hold))
        self._deferred.add(task)
        task.add_done_callback(self._deferred.discard)
        return True

    async def _end_hold(self, kind: str, doc: dict, status: str, hold: float) -> None:
        with self.store.acting_for(doc):  # a task of its own: the request's scope is not kept
            await timings.wait_async(hold)
            async with self._resource_lock(doc["id"]):
                now = self.store.get_doc(kind, doc["id"])
                if now is not None and now["status"] == status:  # not deleted or failed meanwhile
                    self._set_dep_status(kind, now, "available")

    def _set_dep_status(self, kind: str, doc: dict, status: str) -> None:
        doc["status"] = status
        self.store.put_doc(kind, doc["id"], doc)
        members = [m for ng in doc.get("node_groups", []) for m in ng["members"]] if kind == "group" else []
        for cid in members:
            member = self.store.get_doc("cluster", cid)
            if member is not None and member["status"] != status:
                member["status"] = status
                self.store.put_doc("cluster", cid, member)

    def _deployment_of(self, cluster: dict) -> dict:
        return self._group_doc(cluster["group"]) if cluster.get("group") else cluster

    def _render(self, ctx: RequestContext, cluster: dict, show_nodes: bool = True) -> dict:
        dep = self._deployment_of(cluster)
        pending = self._pending_reboot(cluster, dep)
        out = render_cluster(cluster, dep, ctx.region, ctx.account_id, show_nodes, pending)
        exposed = self.settings.exposed_engines
        if exposed is None:
            return out
        if out.get("CacheNodes") and dep is cluster and dep["engine"] != "memcached":
            # a standalone redis cluster's one node also holds PRIMARY (clusters.py), served there
            out["CacheNodes"][0]["Endpoint"] = endpoint(PRIMARY, dep["port"])
        return exposure.advertise(out, exposed, self.router)

    # -- cache parameter groups (operations: parameter_groups.py) ------------------------------------

    def _param_group_doc(self, name: str | None) -> dict:
        """A parameter group by name: a stored one, or the default group of a family Strata runs."""
        key = (name or "").lower()
        doc = self.store.get_doc("param_group", key)
        if doc is not None:
            return doc
        family, cluster_on = default_group_family(key)
        if family is None:
            raise fault("CacheParameterGroupNotFoundFault", f"CacheParameterGroup {name} not found.")
        params = {"cluster-enabled": "yes"} if cluster_on else {}
        return {"id": key, "name": key, "family": family, "params": params, "default": True, "tags": []}

    def _engine_parameters(self, dep: dict) -> dict[str, str]:
        """A deployment's effective cache parameters ({} for an engine version without a catalogue)."""
        family = cp.family_of(dep["engine"], dep["engine_version"])
        if family not in cp.CATALOGUES:
            return {}
        group = self.store.get_doc("param_group", dep["param_group"]) if dep.get("param_group") else None
        return cp.effective(family, (group or {}).get("params", {}))

    def _parameter_group_for(
        self, name: str | None, engine: str, version: str, cluster_mode: bool | None
    ) -> str | None:
        """The custom group a deployment of `engine` `version` is to use (None: its default group),
        checked as ElastiCache checks it: it exists, is of the deployment's family, and agrees with
        the deployment's cluster mode (None: a standalone cache cluster)."""
        if not name:
            return None
        group = self._param_group_doc(name)
        family = cp.family_of(engine, version)
        if group["family"] != family:
            raise combination(
                f"Expected a parameter group of family {family} but found one of family {group['family']}"
            )
        enabled = group["params"].get("cluster-enabled", "no") == "yes"
        if cluster_mode is None and enabled:
            raise combination(
                f"Cache parameter group {group['name']} has cluster-enabled yes: a standalone cache "
                "cluster cannot use it."
            )
        if cluster_mode is not None and enabled != cluster_mode:
            raise combination(
                f"Cache parameter group {group['name']} has cluster-enabled {'yes' if enabled else 'no'}, "
                f"which does not match the replication group's cluster mode."
            )
        return None if group.get("default") else group["id"]

    def _servers_of(self, dep: dict) -> list[Server]:
        """The engine processes of a deployment (a standalone cluster, or every member of a group)."""
        ids = [c for ng in dep["node_groups"] for c in ng["members"]] if "node_groups" in dep else [dep["id"]]
        keys = {self.store.engine_key(c) for c in ids}
        return [s for (key, _), s in list(self.engines.servers.items()) if key in keys]

    def _apply_parameters(self, dep: dict) -> None:
        """Send the deployment's settings that change at once to its running redis/valkey nodes with
        CONFIG SET (blocking). Memcached nodes take theirs at their next reboot."""
        for server in self._servers_of(dep):
            if not isinstance(server, RedisServer) or not server.running():
                continue
            config = server.config
            before = (dict(config.parameters), config.maxmemory)
            self.engines.configure(dep, config)
            changed = {k: v for k, v in config.parameters.items() if before[0].get(k) != v}
            if config.maxmemory != before[1]:
                changed["maxmemory"] = str(config.maxmemory)
            try:
                with server.client() as c:
                    for name, value in changed.items():
                        server.admin(c, "CONFIG", "SET", name, value)
            except redis.ResponseError as e:
                config.parameters, config.maxmemory = before
                raise invalid(f"The engine refused the parameter change: {e}") from e

    def _pending_reboot(self, cluster: dict, dep: dict) -> list[str]:
        """Nodes still running with other static parameters than their group's (memcached: every
        parameter waits for a reboot, as on ElastiCache)."""
        if dep["engine"] != "memcached":
            return []
        wanted = self._engine_parameters(dep)
        options = cp.memcached_options(wanted) if wanted else []
        pending = []
        for node in cluster["nodes"]:
            server = self.engines.get(cluster["id"], node["id"])
            if server is not None and getattr(server.config, "options", options) != options:
                pending.append(node["id"])
        return pending

    def _meter_usage(self, dep: dict) -> None:
        """Record the node-hours a deployment used since it was last metered (the caller saves `dep`).

        Called whenever its node count is about to change, when it is deleted, and on every
        advance of the simulated clock, so a bill covers simulated months too.
        """
        now = clock.now()
        since = datetime.fromisoformat(dep.get("metered_at") or dep["created"])
        hours = max(0.0, (now - since).total_seconds() / 3600)
        nodes = len(dep["nodes"]) if "nodes" in dep else sum(len(ng["members"]) for ng in dep["node_groups"])
        if hours > 0 and nodes:
            kind = "replication_group" if "node_groups" in dep else "cache_cluster"
            meter.record(
                "elasticache",
                "NodeHours",
                hours * nodes,
                "hour",
                node_type=dep["node_type"],
                engine=dep["engine"],
                **{kind: dep["id"]},
            )
        dep["metered_at"] = now.isoformat()

    def _allocate_port(self, owner: str, attempt: int, requested: int | None = None) -> int:
        """The deployment's port: the one the request asked for (`Port`) when it is free, else the
        lowest free one of the engine range; after a failed start (another program took the port
        between allocation and bind), a random free one."""
        if attempt == 0:
            return self.ports.allocate(owner, preferred=requested)
        return self.ports.allocate(owner, preferred=random.randint(self.ports.low, self.ports.high))

    # -- the monitor ------------------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Restart nodes whose process died (failing over first when it was a primary)."""
        while True:
            await asyncio.sleep(MONITOR_INTERVAL)
            try:
                for key, node_id in self.engines.dead():
                    account, region, cluster_id = self.store.split_engine_key(key)
                    with self.store.acting_as(account, region):
                        await self._recover(cluster_id, node_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the watcher must keep watching
                log.exception("ElastiCache monitor")

    async def _recover(self, cluster_id: str, node_id: str) -> None:
        if cluster_id.endswith("~serverless"):  # a serverless cache's node (serverless.py)
            await self._recover_serverless(cluster_id, node_id)  # type: ignore[attr-defined]
            return
        cluster = self.store.get_doc("cluster", cluster_id)
        if cluster is None:
            return
        key = cluster.get("group") or cluster_id
        lock = self._resource_lock(key)
        if lock.locked():
            return  # an operation on it is running; look again next round
        async with lock:
            server = self.engines.get(cluster_id, node_id)
            if server is None or server.running():
                return
            powered = self._powered(cluster_id)
            from strata.services.elasticache import events  # events.py builds on this module

            if powered:
                log.warning("ElastiCache node %s/%s exited; recovering", cluster_id, node_id)
                meter.record("elasticache", "NodeReplaced", 1, "node", cluster=cluster_id)
                events.record(self.store, cluster_id, "cache-cluster", f"Recovering cache nodes {node_id}")
            if cluster.get("group"):
                # without power, only a failover away from it happens (_recover_member)
                await self._recover_member(self._group_doc(cluster["group"]), cluster_id)
            elif powered:
                await run_blocking(server.start)
            if powered:
                events.record(
                    self.store, cluster_id, "cache-cluster", f"Finished recovery for cache nodes {node_id}"
                )


def default_group_family(name: str) -> tuple[str | None, bool]:
    """(family, cluster mode) of a default group name Strata serves ("default.redis7.cluster.on"),
    (None, False) for any other name."""
    if not name.startswith("default."):
        return None, False
    family = name[len("default.") :]
    cluster_on = family.endswith(".cluster.on")
    family = family.removesuffix(".cluster.on")
    if family not in cp.CATALOGUES or (cluster_on and family.startswith("memcached")):
        return None, False
    return family, cluster_on


def paginate(docs: list[dict], req: dict, key: str = "id") -> tuple[list[dict], str | None]:
    """One page of `docs` after `Marker`, `MaxRecords` long (20-100, default 100)."""
    size = req.get("MaxRecords") or 100
    if not 20 <= size <= 100:
        raise invalid("MaxRecords must be between 20 and 100.")
    marker = req.get("Marker")
    if marker:
        docs = [d for d in docs if d[key] > marker]
    page = docs[:size]
    return page, (page[-1][key] if len(docs) > size else None)
