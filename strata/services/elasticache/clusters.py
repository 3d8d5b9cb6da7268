"""Cache clusters: Create/Describe/Modify/Reboot/DeleteCacheCluster (standalone clusters and
the member clusters of replication groups)."""

from __future__ import annotations

import logging

from strata.context import RequestContext
from strata.engines.memcached import binary as memcached_binary
from strata.engines.process import EngineError
from strata.engines.redis import server_binary
from strata.services.base import run_blocking
from strata.services.elasticache import events, exposure, security, subnets
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import START_ATTEMPTS, now_iso, paginate, start_attempt_failed
from strata.services.elasticache.errors import combination, fault, invalid
from strata.services.elasticache.maintenance import MaintenanceOperations, hold
from strata.services.elasticache.membership import new_port_owner
from strata.services.elasticache.nodes import PRIMARY, free_address_index, node_address, port_owner
from strata.services.iam.service_roles import ensure_service_linked_role
from strata.sim.meter import meter

log = logging.getLogger("strata.elasticache")


# settings of a replication group's member that belong to the group (ModifyReplicationGroup)
_GROUP_SETTINGS = (
    "CacheParameterGroupName",
    "CacheNodeType",
    "PreferredMaintenanceWindow",
    "SnapshotRetentionLimit",
    "SnapshotWindow",
    "AuthToken",
)


class CacheClusterOperations(MaintenanceOperations):
    # -- CreateCacheCluster ---------------------------------------------------------------------------

    async def create_cache_cluster(self, ctx: RequestContext, req: dict) -> dict:
        cid = v.identifier(req.get("CacheClusterId"), "CacheClusterId", 50)
        if req.get("ReplicationGroupId"):
            if req.get("SecurityGroupIds"):
                raise combination("A replication group's member takes the group's SecurityGroupIds.")
            return await self._add_member_cluster(ctx, req, cid)
        subnet_group = subnets.find(self, ctx, req.get("CacheSubnetGroupName"))
        groups = security.security_groups(self, ctx, req.get("SecurityGroupIds"), subnet_group["id"])
        if self.store.get_doc("cluster", cid) is not None:
            raise fault("CacheClusterAlreadyExistsFault", "Cache cluster already exists")
        eng = v.engine(req.get("Engine"))
        count = req.get("NumCacheNodes", 1)
        if eng in v.REDIS_LIKE and count != 1:
            raise invalid("Cannot create a Redis cluster with a NumCacheNodes parameter greater than 1.")
        if not 1 <= count <= self.settings.limit("elasticache_max_memcached_nodes", v.MAX_MEMCACHED_NODES):
            raise fault(
                "NodeQuotaForClusterExceededFault",
                f"NumCacheNodes must be between 1 and {v.MAX_MEMCACHED_NODES}",
            )
        transit = bool(req.get("TransitEncryptionEnabled"))
        version = v.engine_version(req.get("EngineVersion"), self._version(eng, transit), eng)
        param_group = self._parameter_group_for(req.get("CacheParameterGroupName"), eng, version, None)
        restore = self._snapshot_for_restore(req.get("SnapshotName"), eng, shards=1, version=version)
        if restore and restore.get("_dek"):
            raise combination(
                f"Snapshot {restore['SnapshotName']} is encrypted at rest: restore it into a replication "
                "group with AtRestEncryptionEnabled (a standalone cache cluster is not encrypted)."
            )
        created = now_iso()
        zones = req.get("PreferredAvailabilityZones") or []
        doc: dict = {
            "id": cid,
            "group": None,
            "status": "creating",
            "created": created,
            "engine": eng,
            "engine_version": version,
            "node_type": v.node_type(req.get("CacheNodeType")),
            "port": 0,
            "auth": v.auth_token(req.get("AuthToken"), transit, eng),
            "transit": transit,
            "at_rest": False,
            "retention": v.retention(req.get("SnapshotRetentionLimit")) if eng != "memcached" else 0,
            "window": v.snapshot_window(req.get("SnapshotWindow")),
            "maintenance_window": req.get("PreferredMaintenanceWindow") or "sun:23:00-mon:01:30",
            "tags": v.tags(req.get("Tags")),
            "nodes": [],
            "security_groups": groups,
            "sg_scope": [ctx.account_id, ctx.region],
            **subnets.placement(self, ctx, subnet_group),
            "param_group": param_group,
        }
        for i in range(count):
            az = v.availability_zone(
                ctx.region,
                zones[i] if i < len(zones) else req.get("PreferredAvailabilityZone"),
                i,
                doc.get("zones"),
            )
            doc["nodes"].append(
                {"id": f"{i + 1:04d}", "address": node_address(i + 1), "created": created, "az": az}
            )
        doc["az"] = doc["nodes"][0]["az"]
        if doc["auth"]:
            doc["auth_modified"] = created
        ensure_service_linked_role(self.settings, ctx.account_id, "elasticache.amazonaws.com")  # as AWS does
        self.store.put_doc("cluster", cid, doc)
        owner = doc["port_owner"] = new_port_owner("cluster", cid)
        async with self._resource_lock(cid):
            try:
                await self._start_new_cluster(doc, owner, restore, req.get("Port"))
                doc["status"] = "available"
                self.store.put_doc("cluster", cid, doc)
            except BaseException:
                # A Create answers with the new cluster or leaves none: the error may be one SDKs
                # retry (a 500), whose retry would otherwise meet CacheClusterAlreadyExists.
                await self._forget_new_cluster(cid, owner)
                raise
            self._hold_status("cluster", doc, "creating", "elasticache_create")  # --timings aws
            events.record(self.store, cid, "cache-cluster", "Cache cluster created")
        meter.record(
            "elasticache", "NodeCreated", len(doc["nodes"]), "node", node_type=doc["node_type"], cluster=cid
        )
        return {"CacheCluster": self._render(ctx, {**doc, "status": "creating"}, show_nodes=False)}

    async def _start_new_cluster(self, doc: dict, owner: str, restore: dict | None, port: int | None) -> None:
        """Guard and start a new standalone cluster's nodes; on another port when its port was
        taken before its engine bound it (or the start failed otherwise), START_ATTEMPTS times."""
        cid = doc["id"]
        for attempt in range(START_ATTEMPTS):
            doc["port"] = self._allocate_port(owner, attempt, port)
            self.store.put_doc("cluster", cid, doc)
            try:
                await run_blocking(security.guard, self, owner, doc)
                await run_blocking(self._start_standalone, doc, restore)
                if doc["engine"] == "memcached":
                    await self._open_discovery(doc, PRIMARY)
                return
            except (EngineError, OSError) as e:
                await self._close_discovery(cid)
                await run_blocking(self.engines.stop_cluster, cid, True)
                self.ports.release(owner)
                start_attempt_failed(f"cache cluster {cid}", attempt, doc["port"], e)

    async def _forget_new_cluster(self, cid: str, owner: str) -> None:
        """Remove a just-recorded cluster whose Create call failed: its engines, port, guard, record."""
        try:
            await self._close_discovery(cid)
            await run_blocking(self.engines.stop_cluster, cid, True)
            await run_blocking(security.unguard, self, owner)
        except Exception:  # noqa: BLE001 - the record must go regardless; the rest is logged
            log.exception("cleaning up the failed new cache cluster %s", cid)
        self.ports.release(owner)
        self.store.delete_doc("cluster", cid)

    def _version(self, eng: str, tls: bool = False) -> str:
        """The version the new nodes will run (the TLS-capable build when in-transit encryption is on)."""
        return memcached_binary()[1] if eng == "memcached" else server_binary(eng, tls=tls).version

    def _start_standalone(self, doc: dict, restore: dict | None) -> None:
        """Start (or restart) every node of a standalone cache cluster; blocking."""
        addresses = [n["address"] for n in doc["nodes"]]
        exposure.expose(self.router, self.settings.exposed_engines, doc["port"], addresses)
        servers = []
        for i, node in enumerate(doc["nodes"]):
            binds = [PRIMARY] if i == 0 else []
            if doc["engine"] == "memcached":  # its configuration endpoint is a DiscoveryEndpoint
                servers.append(self.engines.build_memcached(doc, doc["id"], node))
            else:
                server = self.engines.build_redis(doc, doc["id"], node, binds=binds)
                if restore:
                    self._place_snapshot_file(restore, 0, server.config.data_dir)
                servers.append(server)
        self.engines.start_all(servers)

    # -- DescribeCacheClusters ------------------------------------------------------------------------

    def describe_cache_clusters(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("CacheClusterId"):
            docs = [self._cluster_doc(req["CacheClusterId"])]
        else:
            docs = self.store.list_docs("cluster")
            if req.get("ShowCacheClustersNotInReplicationGroups"):
                docs = [d for d in docs if not d.get("group")]
        page, marker = paginate(docs, req)
        out: dict = {
            "CacheClusters": [self._render(ctx, d, bool(req.get("ShowCacheNodeInfo"))) for d in page]
        }
        if marker:
            out["Marker"] = marker
        return out

    # -- ModifyCacheCluster ---------------------------------------------------------------------------

    async def modify_cache_cluster(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._cluster_doc(req.get("CacheClusterId"))
        if doc.get("group"):
            dep_key = doc["group"]
        else:
            dep_key = doc["id"]
        async with self._resource_lock(dep_key):
            doc = self._cluster_doc(doc["id"])
            if doc["status"] != "available":
                raise fault(
                    "InvalidCacheClusterStateFault", f"Cache cluster {doc['id']} is not in available state."
                )
            dep = self._deployment_of(doc)
            if req.get("SecurityGroupIds"):
                if dep is not doc:
                    raise combination("A replication group's member takes the group's SecurityGroupIds.")
                doc["security_groups"] = security.security_groups(
                    self, ctx, req["SecurityGroupIds"], doc.get("subnet_group")
                )
                doc["sg_scope"] = [ctx.account_id, ctx.region]
            v.engine_version(req.get("EngineVersion"), dep["engine_version"], dep["engine"])
            for member in _GROUP_SETTINGS:  # were accepted and ignored on a member before
                if dep is not doc and req.get(member) is not None:
                    raise combination(f"A replication group's member takes the group's {member}.")
            values: dict = {}  # node changes: held for the maintenance window (maintenance.py)
            count = req.get("NumCacheNodes")
            if count is not None and count != len(doc["nodes"]):
                if dep["engine"] != "memcached":
                    raise invalid(
                        "Cannot modify a Redis cluster with a NumCacheNodes parameter greater than 1."
                    )
                remove = req.get("CacheNodeIdsToRemove") or []
                self._check_resize(doc, count, remove)
                values.update(NumCacheNodes=count, CacheNodeIdsToRemove=remove)
            elif req.get("CacheNodeIdsToRemove"):
                raise invalid(
                    "CacheNodeIdsToRemove requires NumCacheNodes to be the new, smaller number of nodes."
                )
            elif count is not None and dep is doc:
                values["NumCacheNodes"] = count  # what runs: cancels a held change
            if dep is doc and req.get("CacheNodeType"):
                values["CacheNodeType"] = v.node_type(req["CacheNodeType"])
            if dep is doc:
                now = hold(doc, values, bool(req.get("ApplyImmediately")))
                await self._apply_cluster_changes(doc, now, ctx.region)
                if req.get("CacheParameterGroupName"):
                    doc["param_group"] = self._parameter_group_for(
                        req["CacheParameterGroupName"], doc["engine"], doc["engine_version"], None
                    )
                    await run_blocking(self._apply_parameters, doc)
                if "SnapshotRetentionLimit" in req and dep["engine"] != "memcached":
                    doc["retention"] = v.retention(req["SnapshotRetentionLimit"])
                if "SnapshotWindow" in req:
                    doc["window"] = v.snapshot_window(req["SnapshotWindow"])
                if req.get("PreferredMaintenanceWindow"):
                    doc["maintenance_window"] = req["PreferredMaintenanceWindow"]
                if req.get("AuthToken") is not None:
                    token = v.auth_token(req["AuthToken"], bool(doc.get("transit")), doc["engine"])
                    await run_blocking(
                        self._apply_auth_token,
                        doc,
                        [doc],
                        token,
                        req.get("AuthTokenUpdateStrategy") or "ROTATE",
                    )
                    doc["auth"], doc["auth_modified"] = token, now_iso()
            self.store.put_doc("cluster", doc["id"], doc)
            if req.get("SecurityGroupIds"):
                await run_blocking(security.guard, self, port_owner(doc, "cluster"), doc)
            if dep is doc:
                self._hold_status("cluster", doc, "modifying", "elasticache_modify")  # --timings aws
            return {"CacheCluster": self._render(ctx, doc)}

    def _check_resize(self, doc: dict, count: int, remove: list[str]) -> list[str]:
        """Check a change of a Memcached cluster's NumCacheNodes (now, or before it is held for
        the maintenance window); the nodes it removes."""
        limit = self.settings.limit("elasticache_max_memcached_nodes", v.MAX_MEMCACHED_NODES)
        if not 1 <= count <= limit:
            raise fault("NodeQuotaForClusterExceededFault", f"NumCacheNodes must be between 1 and {limit}")
        have = [n["id"] for n in doc["nodes"]]
        if count > len(have):
            if remove:
                raise invalid("CacheNodeIdsToRemove cannot be given when adding nodes.")
            return []
        remove = remove or have[count:]
        unknown = [n for n in remove if n not in have]
        if unknown:
            raise invalid(f"Cache node(s) {', '.join(unknown)} not found in cache cluster {doc['id']}.")
        if len(have) - len(set(remove)) != count:
            raise invalid(
                f"The number of cache nodes to remove ({len(set(remove))}) does not take the cluster "
                f"from {len(have)} to {count} nodes."
            )
        return remove

    async def _resize_memcached(self, doc: dict, count: int, remove: list[str], region: str) -> None:
        remove = self._check_resize(doc, count, remove)
        have = [n["id"] for n in doc["nodes"]]
        if count > len(have):
            created = now_iso()
            top = max(int(n) for n in have)
            new = []
            for i in range(count - len(have)):
                index = free_address_index([n["address"] for n in doc["nodes"] + new])
                new.append(
                    {
                        "id": f"{top + i + 1:04d}",
                        "address": node_address(index),
                        "created": created,
                        "az": v.availability_zone(region, None, top + i, doc.get("zones")),
                    }
                )
            servers = [self.engines.build_memcached(doc, doc["id"], n) for n in new]
            await run_blocking(self.engines.start_all, servers)
            doc["nodes"].extend(new)
            return
        for nid in remove:  # the configuration endpoint then forwards to the new first node
            await run_blocking(self.engines.stop, doc["id"], nid, True)
        doc["nodes"] = [n for n in doc["nodes"] if n["id"] not in remove]

    def _apply_node_type(self, dep: dict, clusters: list[dict]) -> None:
        """Resize the memory cap of running redis nodes (memcached takes it at its next restart)."""
        if dep["engine"] == "memcached":
            return
        self._apply_parameters(dep)  # maxmemory follows the node type, less the reserved memory

    def _apply_auth_token(self, dep: dict, clusters: list[dict], token: str, strategy: str) -> None:
        """New AUTH token on every node: ROTATE keeps the old one valid too, SET replaces it."""
        strategy = strategy.upper()
        if strategy not in ("ROTATE", "SET"):
            raise invalid(f"Invalid AuthTokenUpdateStrategy: {strategy}. Strata supports ROTATE and SET.")
        for cluster in clusters:
            server = self.engines.get(cluster["id"])
            if server is None or not server.running():
                continue
            with server.client() as c:  # type: ignore[union-attr]
                args = ["ACL", "SETUSER", "default", "on"] + (["resetpass"] if strategy == "SET" else [])
                c.execute_command(*args, f">{token}")
                server.admin(c, "CONFIG", "SET", "masterauth", token)  # type: ignore[union-attr]
            server.config.password = token  # type: ignore[union-attr]
            server.write_config()  # type: ignore[union-attr]

    # -- RebootCacheCluster ---------------------------------------------------------------------------

    async def reboot_cache_cluster(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._cluster_doc(req.get("CacheClusterId"))
        ids = req.get("CacheNodeIdsToReboot") or []
        unknown = [n for n in ids if n not in {x["id"] for x in doc["nodes"]}]
        if not ids or unknown:
            raise invalid(f"Invalid cache node ids to reboot: {', '.join(unknown) or '(none)'}")
        async with self._resource_lock(doc.get("group") or doc["id"]):
            doc = self._cluster_doc(doc["id"])
            if doc["status"] != "available":
                raise fault(
                    "InvalidCacheClusterStateFault", f"Cache cluster {doc['id']} is not in available state."
                )
            await run_blocking(self._reboot_nodes, doc, ids)
            for node_id in ids:  # AWS's event, one per node
                events.record(self.store, doc["id"], "cache-cluster", f"Cache node {node_id} restarted")
            meter.record("elasticache", "NodeReboot", len(ids), "node", cluster=doc["id"])
        return {"CacheCluster": self._render(ctx, {**doc, "status": "rebooting cache cluster nodes"})}

    def _reboot_nodes(self, doc: dict, ids: list[str]) -> None:
        """Restart the nodes, each with its group's current parameters (static ones apply now)."""
        dep = self._deployment_of(doc)
        for nid in ids:
            server = self.engines.get(doc["id"], nid)
            if server is not None:
                server.stop()
                self.engines.configure(dep, server.config)
                server.start()

    # -- DeleteCacheCluster ---------------------------------------------------------------------------

    async def delete_cache_cluster(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._cluster_doc(req.get("CacheClusterId"))
        if doc.get("group"):
            return await self._delete_member_cluster(ctx, doc, req)
        async with self._resource_lock(doc["id"]):
            doc = self._cluster_doc(doc["id"])
            if doc["status"] not in ("available", "incompatible-parameters"):
                raise fault(
                    "InvalidCacheClusterStateFault", f"Cache cluster {doc['id']} is not in available state."
                )
            if req.get("FinalSnapshotIdentifier"):
                if doc["engine"] == "memcached":
                    raise fault(
                        "SnapshotFeatureNotSupportedFault", "Snapshots are not supported for memcached."
                    )
                await self._take_snapshot(req["FinalSnapshotIdentifier"], "manual", cluster=doc)
            rendered = self._render(ctx, {**doc, "status": "deleting"}, show_nodes=False)
            self._meter_usage(doc)
            await self._close_discovery(doc["id"])
            await run_blocking(self.engines.stop_cluster, doc["id"], True)
            await run_blocking(exposure.unexpose, self.router, doc["port"])
            self.store.delete_doc("cluster", doc["id"])
            await run_blocking(security.unguard, self, port_owner(doc, "cluster"))
            self.ports.release_prefix(port_owner(doc, "cluster"))
            self._delete_automatic_snapshots(cluster_id=doc["id"])
            events.record(self.store, doc["id"], "cache-cluster", "Cache cluster deleted")
        return {"CacheCluster": rendered}
