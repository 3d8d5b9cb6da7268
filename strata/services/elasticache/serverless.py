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

This module holds the API and the records; the engine nodes (start, stop, memory cap, security
groups, recovery) are in serverless_nodes.py, the metering (ServerlessStorageGBHours,
ServerlessECPUs) in serverless_meter.py, snapshots in serverless_snapshots.py.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis

from strata.context import RequestContext
from strata.engines.process import EngineError
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.elasticache import events, exposure, security, subnets
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import START_ATTEMPTS, ElastiCacheCore, now_iso
from strata.services.elasticache.errors import combination, fault, invalid
from strata.services.elasticache.membership import new_port_owner
from strata.services.elasticache.nodes import PRIMARY
from strata.services.elasticache.render import arn, endpoint, ts
from strata.services.elasticache.serverless_ecpu import SUFFIX
from strata.services.elasticache.serverless_meter import ServerlessMeterOperations
from strata.services.elasticache.serverless_nodes import (
    MAX_STORAGE_GB,
    ServerlessNodeOperations,
    engine_id,
    lead_node,
)
from strata.services.iam.service_roles import ensure_service_linked_role

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

log = logging.getLogger("strata.elasticache")

# Names other modules import from here (SUFFIX, engine_id, lead_node live in serverless_ecpu.py and
# serverless_nodes.py).
__all__ = ["SUFFIX", "ServerlessOperations", "engine_id", "lead_node", "major", "usage_limits"]

ECPU_RANGE = (1000, 15_000_000)
MAX_SERVERLESS_CACHES = 40  # per account and region (the default quota)


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


class ServerlessOperations(ServerlessNodeOperations, ServerlessMeterOperations, ElastiCacheCore):
    """A mixin of ElastiCacheProvider."""

    # -- records and rendering ----------------------------------------------------------------------

    def _serverless_doc(self, name: str | None) -> dict:
        doc = self.store.get_doc("serverless", (name or "").lower())
        if doc is None:
            raise _not_found(name)
        return doc

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
