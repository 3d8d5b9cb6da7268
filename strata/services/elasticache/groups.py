"""Replication groups: a primary and replicas using the engine's own replication, or (cluster mode)
a real Redis Cluster with the hash slots spread over node groups.

Roles: in a group without cluster mode the record names each node group's primary and Strata
sets roles with REPLICAOF; in cluster mode the engine owns the roles (CLUSTER FAILOVER) and
Strata asks it. Endpoints (see nodes.py) are addresses the role holder also binds, so the primary
endpoint follows a failover without any client change.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis

from strata.context import RequestContext
from strata.engines import redis_cluster
from strata.engines.process import EngineError
from strata.services.base import run_blocking
from strata.services.elasticache import events, exposure, security, subnets
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import START_ATTEMPTS, now_iso, start_attempt_failed
from strata.services.elasticache.errors import combination, fault, invalid
from strata.services.elasticache.failover import FailoverOperations
from strata.services.elasticache.group_members import GroupMemberOperations
from strata.services.elasticache.maintenance import hold
from strata.services.elasticache.membership import MembershipOperations, new_port_owner
from strata.services.elasticache.nodes import node_address, port_owner
from strata.services.elasticache.replicas import ReplicaOperations, ng_members
from strata.services.iam.service_roles import ensure_service_linked_role
from strata.sim.meter import meter

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

log = logging.getLogger("strata.elasticache")


class ReplicationGroupOperations(
    GroupMemberOperations, FailoverOperations, MembershipOperations, ReplicaOperations
):
    """Operations on replication groups (a mixin of ElastiCacheProvider); their members' roles,
    endpoints and start are group_members.py's."""

    # -- CreateReplicationGroup ------------------------------------------------------------------------

    async def create_replication_group(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        gid = v.identifier(req.get("ReplicationGroupId"), "ReplicationGroupId", 40)
        if not req.get("ReplicationGroupDescription"):
            raise invalid("The parameter ReplicationGroupDescription must be provided and must not be blank.")
        if self.store.get_doc("group", gid) is not None or self._group_volume(gid) in self._encrypting:
            raise fault("ReplicationGroupAlreadyExistsFault", f"Replication group {gid} already exists.")
        if req.get("GlobalReplicationGroupId"):  # a secondary member: settings from the datastore
            req = self._joining_request(ctx, req)
        if req.get("PrimaryClusterId") and req.get("SecurityGroupIds"):
            raise combination("SecurityGroupIds cannot be used with PrimaryClusterId in Strata.")
        subnet_group = subnets.find(self, ctx, req.get("CacheSubnetGroupName"))
        groups = security.security_groups(self, ctx, req.get("SecurityGroupIds"), subnet_group["id"])
        if req.get("PrimaryClusterId"):
            if req.get("AtRestEncryptionEnabled") or req.get("KmsKeyId"):
                raise combination(
                    "AtRestEncryptionEnabled cannot be used with PrimaryClusterId: the primary's data "
                    "is not encrypted at rest."
                )
            return await self._create_group_from_cluster(ctx, req, gid)
        eng = v.engine(req.get("Engine"))
        if eng == "memcached":
            raise invalid("Replication groups are only available for the Valkey and Redis OSS engines.")
        layout = req.get("NodeGroupConfiguration") or []
        named_group = req.get("CacheParameterGroupName")
        cluster_mode = (
            req.get("ClusterMode") == "enabled"
            or (req.get("NumNodeGroups") or 1) > 1
            or len(layout) > 1
            or bool(
                named_group and self._param_group_doc(named_group)["params"].get("cluster-enabled") == "yes"
            )
        )
        shards = req.get("NumNodeGroups") or max(1, len(layout))
        if not 1 <= shards <= v.MAX_NODE_GROUPS:
            raise invalid(f"NumNodeGroups must be between 1 and {v.MAX_NODE_GROUPS}.")
        if layout and len(layout) != shards:
            raise combination("NodeGroupConfiguration must have one entry per node group (NumNodeGroups).")
        if cluster_mode:
            replicas = [
                req.get("ReplicasPerNodeGroup") or 0
                if (not layout or layout[i].get("ReplicaCount") is None)
                else layout[i]["ReplicaCount"]
                for i in range(shards)
            ]
        else:
            if req.get("NumCacheClusters") is not None:
                total = req["NumCacheClusters"]
            elif req.get("ReplicasPerNodeGroup") is not None:
                total = req["ReplicasPerNodeGroup"] + 1
            elif layout and layout[0].get("ReplicaCount") is not None:
                total = layout[0]["ReplicaCount"] + 1
            else:
                total = 1
            if not 1 <= total <= v.MAX_CLUSTERS_PER_GROUP:
                raise invalid(f"NumCacheClusters must be between 1 and {v.MAX_CLUSTERS_PER_GROUP}.")
            replicas = [total - 1]
        if any(not 0 <= r <= v.MAX_CLUSTERS_PER_GROUP - 1 for r in replicas):
            raise invalid("ReplicasPerNodeGroup must be between 0 and 5.")
        failover = req.get("AutomaticFailoverEnabled")
        if failover is None:
            failover = cluster_mode
        if cluster_mode and not failover:
            raise combination("Redis OSS with cluster mode enabled requires AutomaticFailoverEnabled.")
        if failover and not cluster_mode and replicas[0] < 1:
            raise combination(
                "Automatic failover requires at least one read replica (NumCacheClusters >= 2)."
            )
        if req.get("MultiAZEnabled") and not failover:
            raise combination("MultiAZEnabled requires AutomaticFailoverEnabled.")
        transit = bool(req.get("TransitEncryptionEnabled"))
        version = v.engine_version(req.get("EngineVersion"), self._version(eng, transit), eng)
        param_group = self._parameter_group_for(named_group, eng, version, cluster_mode)
        restore = self._snapshot_for_restore(req.get("SnapshotName"), eng, shards=shards, version=version)
        kms_arn = self._at_rest_key(req, restore, ctx.region, ctx.account_id)
        created = now_iso()
        group: dict = {
            "id": gid,
            "description": req["ReplicationGroupDescription"],
            "status": "creating",
            "created": created,
            "engine": eng,
            "engine_version": version,
            "node_type": v.node_type(req.get("CacheNodeType")),
            "port": 0,
            "bus_port": None,
            "cluster_mode": cluster_mode,
            "auth": v.auth_token(req.get("AuthToken"), transit, eng),
            "transit": transit,
            "at_rest": kms_arn is not None,
            "kms_key_id": kms_arn,
            "_kms_arn": kms_arn,
            "retention": v.retention(req.get("SnapshotRetentionLimit")),
            "window": v.snapshot_window(req.get("SnapshotWindow")),
            "maintenance_window": req.get("PreferredMaintenanceWindow") or "sun:23:00-mon:01:30",
            "tags": v.tags(req.get("Tags")),
            "automatic_failover": bool(failover),
            "multi_az": bool(req.get("MultiAZEnabled")),
            "snapshotting_cluster": None,
            "config_holder": None,
            "node_groups": [],
            "port_owner": new_port_owner("group", gid),
            "security_groups": groups,
            "sg_scope": [ctx.account_id, ctx.region],
            **subnets.placement(self, ctx, subnet_group),
            "param_group": param_group,
        }
        if req.get("GlobalReplicationGroupId"):
            group["global"] = req["GlobalReplicationGroupId"].lower()
        if group["auth"]:
            group["auth_modified"] = created
        group["user_groups"] = self._user_groups_for(req.get("UserGroupIds") or [], group)
        group["acl"] = self._acl_lines(group["user_groups"])
        slot_ranges = redis_cluster.slot_ranges(shards)
        zones = req.get("PreferredCacheClusterAZs") or []
        pending: list[dict] = []
        for i in range(shards):
            conf = layout[i] if layout else {}
            ng_id = conf.get("NodeGroupId") or f"{i + 1:04d}"
            low, high = redis_cluster.parse_slots(conf["Slots"]) if conf.get("Slots") else slot_ranges[i]
            ng = {
                "id": ng_id,
                "slots": f"{low}-{high}" if cluster_mode else None,
                "primary": None,
                "members": [],
            }
            group["node_groups"].append(ng)
            ng_zones = [conf.get("PrimaryAvailabilityZone"), *(conf.get("ReplicaAvailabilityZones") or [])]
            for j in range(replicas[i] + 1):
                az = (
                    zones[len(pending)]
                    if len(pending) < len(zones)
                    else (ng_zones[j] if j < len(ng_zones) else None)
                )
                zone = v.availability_zone(ctx.region, az, len(pending), group.get("zones"))
                prefix = f"{gid}-{ng_id}-" if cluster_mode else f"{gid}-"
                member = {
                    "id": f"{prefix}{j + 1:03d}" if cluster_mode else f"{prefix}{len(pending) + 1:03d}",
                    "group": gid,
                    "node_group": ng_id,
                    "status": "creating",
                    "created": created,
                    "az": zone,
                    "nodes": [
                        {
                            "id": "0001",
                            "address": node_address(len(pending) + 1),
                            "created": created,
                            "az": zone,
                        }
                    ],
                }
                if self.store.get_doc("cluster", member["id"]) is not None:
                    raise fault(
                        "CacheClusterAlreadyExistsFault", f"Cache cluster {member['id']} already exists."
                    )
                ng["members"].append(member["id"])
                pending.append(member)
            ng["primary"] = ng["members"][0]
        group["config_holder"] = group["node_groups"][0]["members"][0] if cluster_mode else None
        await self._encrypt_group(group)
        ensure_service_linked_role(self.settings, ctx.account_id, "elasticache.amazonaws.com")  # as AWS does
        for member in pending:
            self.store.put_doc("cluster", member["id"], member)
        self.store.put_doc("group", gid, group)
        async with self._resource_lock(gid):
            try:
                await self._start_new_group(group, restore, req.get("Port"))
                self._save_group(group, "available")
            except BaseException:
                # A Create answers with the new group or leaves none: the error may be one SDKs
                # retry (a 500), whose retry would otherwise meet ReplicationGroupAlreadyExists.
                await self._discard_group(group)
                raise
            self._hold_status("group", group, "creating", "elasticache_create")  # --timings aws
            events.record(self.store, gid, "replication-group", f"Replication group {gid} created")
            if group.get("global"):
                self._joined(ctx, group)
        meter.record(
            "elasticache", "NodeCreated", len(pending), "node", node_type=group["node_type"], group=gid
        )
        return {"ReplicationGroup": self._render_group(ctx, group, "creating")}

    async def _start_new_group(
        self: ElastiCacheProvider, group: dict, restore: dict | None, port: int | None
    ) -> None:
        """Guard and start a new group's nodes; on other ports when a port was taken before its
        engine bound it (or the start failed otherwise), START_ATTEMPTS times."""
        cluster_mode = group.get("cluster_mode")
        for attempt in range(START_ATTEMPTS):
            group["port"] = self._allocate_port(group["port_owner"], attempt, port)
            if cluster_mode:
                group["bus_port"] = self._allocate_port(group["port_owner"] + "/bus", attempt)
            self.store.put_doc("group", group["id"], group)
            try:
                await run_blocking(security.guard, self, group["port_owner"], group)
                await run_blocking(self._start_group, group, restore)
                await run_blocking(self._wait_for_upstream, group)
                return
            except (EngineError, OSError, redis.RedisError) as e:
                for cid in ng_members(group):
                    await run_blocking(self.engines.stop_cluster, cid, True)
                self.ports.release_prefix(group["port_owner"])
                start_attempt_failed(f"replication group {group['id']}", attempt, group["port"], e)

    async def _discard_group(self: ElastiCacheProvider, group: dict) -> None:
        await run_blocking(self._drop_reader_route, group)
        await run_blocking(exposure.unexpose, self.router, group["port"])
        for cid in [c for ng in group["node_groups"] for c in ng["members"]]:
            await run_blocking(self.engines.stop_cluster, cid, True)
            self.store.delete_doc("cluster", cid)
        await self._remove_group_volume(group)
        self.store.delete_doc("group", group["id"])
        await run_blocking(security.unguard, self, port_owner(group, "group"))
        self.ports.release_prefix(port_owner(group, "group"))

    # -- DescribeReplicationGroups ---------------------------------------------------------------------

    async def describe_replication_groups(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        from strata.services.elasticache.core import paginate

        if req.get("ReplicationGroupId"):
            docs = [self._group_doc(req["ReplicationGroupId"])]
        else:
            docs = self.store.list_docs("group")
        page, marker = paginate(docs, req)
        rendered = [await run_blocking(self._render_group, ctx, g) for g in page]
        out: dict = {"ReplicationGroups": rendered}
        if marker:
            out["Marker"] = marker
        return out

    # -- ModifyReplicationGroup ------------------------------------------------------------------------

    async def modify_replication_group(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        group = self._group_doc(req.get("ReplicationGroupId"))
        async with self._resource_lock(group["id"]):
            group = self._group_doc(group["id"])
            self._available(group)
            v.engine_version(req.get("EngineVersion"), group["engine_version"], group["engine"])
            if req.get("CacheParameterGroupName"):
                param_group = self._parameter_group_for(
                    req["CacheParameterGroupName"],
                    group["engine"],
                    group["engine_version"],
                    bool(group.get("cluster_mode")),
                )
            _refuse_changes(group, req)
            values = {"CacheNodeType": v.node_type(req["CacheNodeType"])} if req.get("CacheNodeType") else {}
            user_groups = self._modified_user_groups(group, req)
            if req.get("AuthToken") is not None and (group.get("user_groups") or user_groups):
                raise combination("An AUTH token cannot be used together with user groups.")
            if req.get("SecurityGroupIds"):
                group["security_groups"] = security.security_groups(
                    self, ctx, req["SecurityGroupIds"], group.get("subnet_group")
                )
                group["sg_scope"] = [ctx.account_id, ctx.region]
            if req.get("ReplicationGroupDescription"):
                group["description"] = req["ReplicationGroupDescription"]
            if req.get("AutomaticFailoverEnabled") is not None:
                if not req["AutomaticFailoverEnabled"] and group.get("cluster_mode"):
                    raise combination("Automatic failover cannot be disabled with cluster mode enabled.")
                if req["AutomaticFailoverEnabled"] and len(group["node_groups"][0]["members"]) < 2:
                    raise combination("Automatic failover requires at least one read replica.")
                group["automatic_failover"] = bool(req["AutomaticFailoverEnabled"])
                if not group["automatic_failover"]:
                    group["multi_az"] = False
            if req.get("MultiAZEnabled") is not None:
                if req["MultiAZEnabled"] and not group["automatic_failover"]:
                    raise combination("MultiAZEnabled requires AutomaticFailoverEnabled.")
                group["multi_az"] = bool(req["MultiAZEnabled"])
            if "SnapshotRetentionLimit" in req:
                group["retention"] = v.retention(req["SnapshotRetentionLimit"])
            if "SnapshotWindow" in req:
                group["window"] = v.snapshot_window(req["SnapshotWindow"])
            if req.get("PreferredMaintenanceWindow"):
                group["maintenance_window"] = req["PreferredMaintenanceWindow"]
            if req.get("SnapshottingClusterId"):
                if req["SnapshottingClusterId"].lower() not in self._members(group):
                    raise invalid(
                        f"Cache cluster {req['SnapshottingClusterId']} is not a member of {group['id']}."
                    )
                group["snapshotting_cluster"] = req["SnapshottingClusterId"].lower()
            members = list(self._members(group).values())
            if req.get("CacheParameterGroupName"):
                group["param_group"] = param_group
                await run_blocking(self._apply_parameters, group)
            now = hold(group, values, bool(req.get("ApplyImmediately")))  # maintenance.py
            if now.get("CacheNodeType"):
                group["node_type"] = now["CacheNodeType"]
                await run_blocking(self._apply_node_type, group, members)
                events.record(
                    self.store,
                    group["id"],
                    "replication-group",
                    f"Finished modifying cache node type to {group['node_type']}",
                )
            if req.get("AuthToken") is not None:
                token = v.auth_token(req["AuthToken"], bool(group.get("transit")), group["engine"])
                await run_blocking(
                    self._apply_auth_token,
                    group,
                    members,
                    token,
                    req.get("AuthTokenUpdateStrategy") or "ROTATE",
                )
                group["auth"], group["auth_modified"] = token, now_iso()
            if user_groups is not None:
                await self._use_user_groups(group, user_groups)
            if req.get("PrimaryClusterId") and not group.get("cluster_mode"):
                target = req["PrimaryClusterId"].lower()
                ng = group["node_groups"][0]
                if target not in ng["members"]:
                    raise invalid(f"Cache cluster {target} is not a member of {group['id']}.")
                if target != ng["primary"]:
                    await run_blocking(self._failover, group, target, None)
            self._save_group(group)
            if req.get("SecurityGroupIds"):
                await run_blocking(security.guard, self, port_owner(group, "group"), group)
            self._hold_status("group", group, "modifying", "elasticache_modify")  # --timings aws
            return {"ReplicationGroup": await run_blocking(self._render_group, ctx, group)}

    # -- DeleteReplicationGroup ----------------------------------------------------------------------------

    async def delete_replication_group(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        group = self._group_doc(req.get("ReplicationGroupId"))
        async with self._resource_lock(group["id"]):
            group = self._group_doc(group["id"])
            if group["status"] not in ("available", "create-failed"):
                raise fault(
                    "InvalidReplicationGroupStateFault",
                    f"Replication group {group['id']} is {group['status']}.",
                )
            if group.get("global"):
                raise fault(
                    "InvalidReplicationGroupStateFault",
                    f"Replication group {group['id']} is a member of global datastore {group['global']}: "
                    "disassociate it (or delete the global datastore) first.",
                )
            if req.get("RetainPrimaryCluster") and group.get("_dek"):
                raise combination(
                    "Strata cannot retain the primary of a replication group encrypted at rest: "
                    "a standalone cache cluster is not encrypted."
                )
            if req.get("FinalSnapshotIdentifier"):
                await self._take_snapshot(req["FinalSnapshotIdentifier"], "manual", group=group)
            rendered = await run_blocking(self._render_group, ctx, group, "deleting")
            self._meter_usage(group)
            if req.get("RetainPrimaryCluster"):
                await self._retain_primary(group)
                self.store.delete_doc("group", group["id"])
            else:
                await self._discard_group(group)
            self._delete_automatic_snapshots(group_id=group["id"])
            events.record(
                self.store, group["id"], "replication-group", f"Replication group {group['id']} deleted"
            )
        return {"ReplicationGroup": rendered}


def _refuse_changes(group: dict, req: dict) -> None:
    """Settings of a replication group Strata cannot change in place: asking to is refused."""
    mode = "enabled" if group.get("cluster_mode") else "disabled"
    if req.get("ClusterMode") and req["ClusterMode"] != mode:
        raise combination(
            f"Strata cannot change ClusterMode of an existing replication group (it is {mode})."
        )
    transit = req.get("TransitEncryptionEnabled")
    if transit is not None and bool(transit) != bool(group.get("transit")):
        raise combination("Strata cannot change in-transit encryption of an existing replication group.")
    if req.get("NodeGroupId") or (req.get("PrimaryClusterId") and group.get("cluster_mode")):
        raise combination("Choosing the primary of one shard (NodeGroupId) is not supported by Strata.")
