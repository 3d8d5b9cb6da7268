"""Global Datastore: a primary replication group whose writes reach secondary replication groups in
other regions by the engine's own replication.

A global datastore's record (kind `global_group`, kept in the scope of the region it was created
in, found from every region of its account) names its members: one PRIMARY group and up to two
SECONDARY groups, at most one per region. A secondary group's primary node is itself a replica
(REPLICAOF) of the primary group's primary endpoint, so a failover inside the primary group is
followed without any change; its own replicas replicate from it (chained replication), and every
node of a secondary group is read-only, as on AWS.

FailoverGlobalReplicationGroup pauses writes on the old primary (CLIENT PAUSE WRITE), waits until
the promoted group's primary has read the old primary's whole stream, promotes it (REPLICAOF NO
ONE) and points the old primary group (and any other secondary) at it: nothing acknowledged is lost.
DisassociateGlobalReplicationGroup promotes a secondary into a standalone group.

IDs are formed as AWS forms them: the creating region's prefix, a hyphen, the suffix given
("ldgnf-my-store" in us-east-1).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import redis

from strata.context import RequestContext
from strata.engines.process import wait_until
from strata.engines.redis import RedisServer
from strata.services.base import run_blocking
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import ElastiCacheCore, now_iso
from strata.services.elasticache.errors import combination, fault, invalid
from strata.services.elasticache.nodes import PRIMARY

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

log = logging.getLogger("strata.elasticache")

# the prefix of global datastore IDs created in each region (AWS's "Using global datastores (CLI)")
REGION_PREFIXES = {
    "us-east-2": "fpkhr",
    "us-east-1": "ldgnf",
    "us-west-1": "virxk",
    "us-west-2": "sgaui",
    "ca-central-1": "bxodz",
    "ap-south-1": "erpgt",
    "ap-northeast-1": "quwsw",
    "ap-northeast-2": "lfqnh",
    "ap-northeast-3": "nlapn",
    "ap-southeast-1": "vlqxn",
    "ap-southeast-2": "vbgxd",
    "eu-central-1": "iudkw",
    "eu-west-1": "gxeiz",
    "eu-west-2": "okuqm",
    "eu-west-3": "fgjhi",
    "sa-east-1": "juxlw",
    "cn-north-1": "emvgo",
    "cn-northwest-1": "ckbem",
    "ap-east-1": "knjmp",
}
MAX_SECONDARIES = 2
UNSUPPORTED_NODE_FAMILIES = ("cache.t2.", "cache.t3.", "cache.t4g.")
CATCH_UP_TIMEOUT = 60.0  # seconds the promoted primary may take to read the old primary's stream
PAUSE_MS = 30_000  # writes on the old primary wait at most this long during a failover


def _not_found(gid: str | None) -> Exception:
    return fault("GlobalReplicationGroupNotFoundFault", f"GlobalReplicationGroup {gid} not found.")


class GlobalDatastoreOperations(ElastiCacheCore):
    """A mixin of ElastiCacheProvider."""

    # -- records ------------------------------------------------------------------------------------

    def _global_doc(self, gid: str | None, account: str) -> dict:
        for doc in self.store.every_scope("global_group"):
            if doc["id"] == (gid or "").lower() and self.store.owner(doc) == account:
                return doc
        raise _not_found(gid)

    def _save_global(self, doc: dict) -> None:
        with self.store.acting_for(doc):
            self.store.put_doc("global_group", doc["id"], doc)

    def _in_region(self, account: str, region: str) -> AbstractContextManager[None]:
        return self.store.acting_as(account, region)

    def _member_group(self, account: str, member: dict) -> dict:
        with self._in_region(account, member["region"]):
            return self._group_doc(member["group"])  # type: ignore[attr-defined]

    def _global_primary(self, gdoc: dict) -> dict:
        return next(m for m in gdoc["members"] if m["role"] == "PRIMARY")

    def _global_upstream(self, group: dict) -> tuple[str, int] | None:
        """What a group's primary node replicates from: the global datastore primary group's
        primary endpoint when the group is a secondary member, else None."""
        if not group.get("global"):
            return None
        account, region = self.store.owner(group), self.store.region_of(group)
        try:
            gdoc = self._global_doc(group["global"], account)
        except Exception:  # noqa: BLE001 - the record is gone: the group stands alone
            return None
        primary = self._global_primary(gdoc)
        if (primary["region"], primary["group"]) == (region, group["id"]):
            return None
        with self._in_region(account, primary["region"]):
            upstream = self.store.get_doc("group", primary["group"])
        return (PRIMARY, upstream["port"]) if upstream else None

    def _global_role(self, group: dict) -> str | None:
        if not group.get("global"):
            return None
        return "SECONDARY" if self._global_upstream(group) else "PRIMARY"

    def _render_global(self, gdoc: dict, show_members: bool, status: str | None = None) -> dict:
        account = self.store.owner(gdoc)
        out: dict = {
            "GlobalReplicationGroupId": gdoc["id"],
            "GlobalReplicationGroupDescription": gdoc.get("description") or "",
            "Status": status or ("available" if len(gdoc["members"]) > 1 else "primary-only"),
            "CacheNodeType": gdoc["node_type"],
            "Engine": gdoc["engine"],
            "EngineVersion": gdoc["engine_version"],
            "ClusterEnabled": False,
            "AuthTokenEnabled": bool(gdoc.get("auth")),
            "TransitEncryptionEnabled": bool(gdoc.get("transit")),
            "AtRestEncryptionEnabled": False,
            "ARN": f"arn:aws:elasticache::{account}:globalreplicationgroup:{gdoc['id']}",
        }
        if show_members:
            members = []
            for m in gdoc["members"]:
                try:
                    group = self._member_group(account, m)
                except Exception:  # noqa: BLE001 - shown without its failover setting
                    group = {}
                members.append(
                    {
                        "ReplicationGroupId": m["group"],
                        "ReplicationGroupRegion": m["region"],
                        "Role": m["role"],
                        "AutomaticFailover": "enabled" if group.get("automatic_failover") else "disabled",
                        "Status": "associated",
                    }
                )
            out["Members"] = members
        return out

    # -- CreateGlobalReplicationGroup -----------------------------------------------------------------

    async def create_global_replication_group(self, ctx: RequestContext, req: dict) -> dict:
        prefix = REGION_PREFIXES.get(ctx.region)
        if prefix is None:
            raise invalid(f"Global datastores are not available in region {ctx.region}.")
        suffix = v.identifier(req.get("GlobalReplicationGroupIdSuffix"), "GlobalReplicationGroupIdSuffix", 40)
        gid = f"{prefix}-{suffix}"
        group = self._group_doc(req.get("PrimaryReplicationGroupId"))  # type: ignore[attr-defined]
        try:
            self._global_doc(gid, ctx.account_id)
        except Exception:  # noqa: BLE001 - the id is free
            pass
        else:
            raise fault(
                "GlobalReplicationGroupAlreadyExistsFault", f"Global replication group {gid} already exists."
            )
        async with self._resource_lock(group["id"]):
            group = self._group_doc(group["id"])  # type: ignore[attr-defined]
            if group["status"] != "available":
                raise fault(
                    "InvalidReplicationGroupStateFault",
                    f"Replication group {group['id']} must be in available state, it is {group['status']}.",
                )
            if group.get("global"):
                raise fault(
                    "InvalidReplicationGroupStateFault",
                    f"Replication group {group['id']} is already a member of global datastore {group['global']}.",
                )
            if group["node_type"].startswith(UNSUPPORTED_NODE_FAMILIES):
                raise invalid(f"Global datastores are not supported on node type {group['node_type']}.")
            if group.get("cluster_mode"):
                raise combination(
                    "Strata does not support global datastores of cluster-mode replication groups."
                )
            if group.get("user_groups") or group.get("at_rest"):
                raise combination(
                    "Strata does not support global datastores of replication groups with user groups "
                    "or encryption at rest."
                )
            gdoc = {
                "id": gid,
                "description": req.get("GlobalReplicationGroupDescription") or "",
                "created": now_iso(),
                "engine": group["engine"],
                "engine_version": group["engine_version"],
                "node_type": group["node_type"],
                "transit": bool(group.get("transit")),
                "auth": group.get("auth"),
                "members": [{"group": group["id"], "region": ctx.region, "role": "PRIMARY"}],
                "tags": v.tags(req.get("Tags")),
            }
            self.store.put_doc("global_group", gid, gdoc)
            group["global"] = gid
            self.store.put_doc("group", group["id"], group)
        return {"GlobalReplicationGroup": self._render_global(gdoc, True, "creating")}

    # -- joining: CreateReplicationGroup with GlobalReplicationGroupId ---------------------------------

    def _joining_request(self, ctx: RequestContext, req: dict) -> dict:
        """The request of a secondary group joining a global datastore: its settings come from the
        datastore (a request naming other ones is refused)."""
        gdoc = self._global_doc(req["GlobalReplicationGroupId"], ctx.account_id)
        if any(m["region"] == ctx.region for m in gdoc["members"]):
            raise invalid(f"Global datastore {gdoc['id']} already has a member in region {ctx.region}.")
        if len(gdoc["members"]) > MAX_SECONDARIES:
            raise invalid(f"Global datastore {gdoc['id']} already has {MAX_SECONDARIES} secondary members.")
        inherited = {
            "Engine": gdoc["engine"],
            "CacheNodeType": gdoc["node_type"],
            "TransitEncryptionEnabled": gdoc["transit"],
        }
        for name, value in inherited.items():
            if req.get(name) not in (None, value) and not (
                name == "Engine" and str(req[name]).lower() == value
            ):
                raise combination(f"{name} of a global datastore's member is the datastore's ({value}).")
        for name in (
            "SnapshotName",
            "PrimaryClusterId",
            "UserGroupIds",
            "AuthToken",
            "AtRestEncryptionEnabled",
        ):
            if req.get(name):
                raise combination(f"{name} cannot be given for a member of global datastore {gdoc['id']}.")
        if req.get("ClusterMode") == "enabled" or (req.get("NumNodeGroups") or 1) > 1:
            raise combination("Strata does not support global datastores of cluster-mode replication groups.")
        if req.get("EngineVersion"):
            v.engine_version(req["EngineVersion"], gdoc["engine_version"], gdoc["engine"])
        out = {**req, **inherited, "EngineVersion": gdoc["engine_version"]}
        if gdoc.get("auth"):
            out["AuthToken"] = gdoc["auth"]
        return out

    def _joined(self, ctx: RequestContext, group: dict) -> None:
        """Record a new secondary group as a member of its global datastore."""
        gdoc = self._global_doc(group["global"], ctx.account_id)
        gdoc["members"].append({"group": group["id"], "region": ctx.region, "role": "SECONDARY"})
        self._save_global(gdoc)

    def _upstream_server(self: ElastiCacheProvider, group: dict) -> RedisServer | None:
        """The node a secondary group ultimately replicates from: the global primary group's primary."""
        if self._global_upstream(group) is None:
            return None
        account = self.store.owner(group)
        primary = self._global_primary(self._global_doc(group["global"], account))
        with self._in_region(account, primary["region"]):
            upstream = self._group_doc(primary["group"])
            return self.engines.redis(upstream["node_groups"][0]["primary"])

    def _wait_for_upstream(self: ElastiCacheProvider, group: dict) -> None:
        """After a secondary group started: wait (bounded) until its primary has read what the
        global primary had written, so "available" shows the data (blocking)."""
        upstream = self._upstream_server(group)
        if upstream is None:
            return
        try:
            offset = upstream.primary_offset()
        except (redis.RedisError, OSError):
            return
        server = self._server(group["node_groups"][0]["primary"])
        if not wait_until(lambda: server.caught_up(offset), CATCH_UP_TIMEOUT):
            log.warning("global datastore secondary %s did not catch up with its primary", group["id"])

    # -- DescribeGlobalReplicationGroups --------------------------------------------------------------

    def describe_global_replication_groups(self, ctx: RequestContext, req: dict) -> dict:
        from strata.services.elasticache.core import paginate

        if req.get("GlobalReplicationGroupId"):
            docs = [self._global_doc(req["GlobalReplicationGroupId"], ctx.account_id)]
        else:
            docs = sorted(
                (d for d in self.store.every_scope("global_group") if self.store.owner(d) == ctx.account_id),
                key=lambda d: d["id"],
            )
        page, marker = paginate(docs, req)
        out: dict = {
            "GlobalReplicationGroups": [self._render_global(d, bool(req.get("ShowMemberInfo"))) for d in page]
        }
        if marker:
            out["Marker"] = marker
        return out

    # -- ModifyGlobalReplicationGroup -----------------------------------------------------------------

    async def modify_global_replication_group(
        self: ElastiCacheProvider, ctx: RequestContext, req: dict
    ) -> dict:
        """Description, node type and automatic failover of every member at once (ApplyImmediately
        must be true: AWS applies these to a global datastore at once, never in a window)."""
        account = ctx.account_id
        gdoc = self._global_doc(req.get("GlobalReplicationGroupId"), account)
        if not req.get("ApplyImmediately"):
            raise invalid("ApplyImmediately must be true: a global datastore's changes are applied at once.")
        if req.get("Engine") and req["Engine"].lower() != gdoc["engine"]:
            raise combination(f"Strata cannot change the engine of global datastore {gdoc['id']}.")
        if req.get("EngineVersion"):
            v.engine_version(req["EngineVersion"], gdoc["engine_version"], gdoc["engine"])
        node_type = v.node_type(req["CacheNodeType"]) if req.get("CacheNodeType") else None
        if node_type and node_type.startswith(UNSUPPORTED_NODE_FAMILIES):
            raise invalid(f"Global datastores are not supported on node type {node_type}.")
        failover = req.get("AutomaticFailoverEnabled")
        groups = [(m, self._member_group(account, m)) for m in gdoc["members"]]
        if failover:
            for _, g in groups:
                if len(g["node_groups"][0]["members"]) < 2:
                    raise combination(f"Automatic failover requires at least one read replica in {g['id']}.")
        for m, g in groups:
            with self._in_region(account, m["region"]):
                async with self._resource_lock(g["id"]):
                    g = self._group_doc(g["id"])
                    if failover is not None:
                        g["automatic_failover"] = bool(failover)
                        g["multi_az"] = g.get("multi_az") and bool(failover)
                    if node_type:
                        g["node_type"] = node_type
                        await run_blocking(self._apply_node_type, g, list(self._members(g).values()))
                    self.store.put_doc("group", g["id"], g)
        if node_type:
            gdoc["node_type"] = node_type
        if "GlobalReplicationGroupDescription" in req:
            gdoc["description"] = req["GlobalReplicationGroupDescription"] or ""
        self._save_global(gdoc)
        return {"GlobalReplicationGroup": self._render_global(gdoc, True, "modifying")}

    # -- FailoverGlobalReplicationGroup ---------------------------------------------------------------

    async def failover_global_replication_group(
        self: ElastiCacheProvider, ctx: RequestContext, req: dict
    ) -> dict:
        account = ctx.account_id
        gdoc = self._global_doc(req.get("GlobalReplicationGroupId"), account)
        region, target_id = req.get("PrimaryRegion"), (req.get("PrimaryReplicationGroupId") or "").lower()
        member = next((m for m in gdoc["members"] if (m["region"], m["group"]) == (region, target_id)), None)
        if member is None:
            raise invalid(
                f"Replication group {target_id} in region {region} is not a member of global datastore {gdoc['id']}."
            )
        if member["role"] == "PRIMARY":
            raise fault(
                "InvalidGlobalReplicationGroupStateFault",
                f"Replication group {target_id} is already the primary of global datastore {gdoc['id']}.",
            )
        old = self._global_primary(gdoc)
        old_group, new_group = self._member_group(account, old), self._member_group(account, member)
        for g in (old_group, new_group):
            if g["status"] != "available":
                raise fault(
                    "InvalidGlobalReplicationGroupStateFault",
                    f"Replication group {g['id']} must be available to fail over, it is {g['status']}.",
                )
        locks = {}
        for m, g in ((old, old_group), (member, new_group)):
            with self._in_region(account, m["region"]):
                locks[self.store.engine_key(g["id"])] = self._resource_lock(g["id"])
        first, second = (locks[k] for k in sorted(locks))  # one order: two failovers cannot deadlock
        async with first, second:
            await run_blocking(self._swap_global_primary, gdoc, old, member)
        return {"GlobalReplicationGroup": self._render_global(gdoc, True, "modifying")}

    def _swap_global_primary(self: ElastiCacheProvider, gdoc: dict, old: dict, new: dict) -> None:
        """Promote `new`'s group to the datastore's primary without losing an acknowledged write
        (blocking; see the module docstring)."""
        account = self.store.owner(gdoc)
        with self._in_region(account, old["region"]):
            old_group = self._group_doc(old["group"])
            old_server = self._server(old_group["node_groups"][0]["primary"])
        with self._in_region(account, new["region"]):
            new_group = self._group_doc(new["group"])
            new_server = self._server(new_group["node_groups"][0]["primary"])
        with old_server.client() as c:
            c.execute_command("CLIENT", "PAUSE", str(PAUSE_MS), "WRITE")
            try:
                offset = int(c.info("replication").get("master_repl_offset") or 0)
                if not wait_until(lambda: new_server.caught_up(offset), CATCH_UP_TIMEOUT):
                    raise fault(
                        "InvalidGlobalReplicationGroupStateFault",
                        f"Replication group {new['group']} did not catch up with the primary; not failed over.",
                    )
                new_server.replicate(None)
                old["role"], new["role"] = "SECONDARY", "PRIMARY"
                self._save_global(gdoc)
                old_server.replicate((PRIMARY, new_group["port"]))
            finally:
                c.execute_command("CLIENT", "UNPAUSE")
        for m in gdoc["members"]:
            if m is old or m is new:
                continue
            with self._in_region(account, m["region"]):
                other = self._group_doc(m["group"])
                self._server(other["node_groups"][0]["primary"]).replicate((PRIMARY, new_group["port"]))
        old_server.drop_clients()  # clients of the old primary reconnect and find a replica
        log.info("global datastore %s: primary is now %s in %s", gdoc["id"], new["group"], new["region"])

    # -- DisassociateGlobalReplicationGroup -----------------------------------------------------------

    async def disassociate_global_replication_group(
        self: ElastiCacheProvider, ctx: RequestContext, req: dict
    ) -> dict:
        account = ctx.account_id
        gdoc = self._global_doc(req.get("GlobalReplicationGroupId"), account)
        gid, region = (req.get("ReplicationGroupId") or "").lower(), req.get("ReplicationGroupRegion")
        member = next((m for m in gdoc["members"] if (m["region"], m["group"]) == (region, gid)), None)
        if member is None:
            raise invalid(f"Replication group {gid} in region {region} is not a member of {gdoc['id']}.")
        if member["role"] == "PRIMARY":
            raise combination(
                f"The primary replication group {gid} cannot be disassociated from global datastore {gdoc['id']}."
            )
        with self._in_region(account, member["region"]):
            async with self._resource_lock(gid):
                group = self._group_doc(gid)
                server = self._server(group["node_groups"][0]["primary"])
                await run_blocking(server.replicate, None)
                group.pop("global", None)
                self.store.put_doc("group", gid, group)
        gdoc["members"].remove(member)
        self._save_global(gdoc)
        return {"GlobalReplicationGroup": self._render_global(gdoc, True, "modifying")}

    # -- DeleteGlobalReplicationGroup -----------------------------------------------------------------

    async def delete_global_replication_group(
        self: ElastiCacheProvider, ctx: RequestContext, req: dict
    ) -> dict:
        account = ctx.account_id
        gdoc = self._global_doc(req.get("GlobalReplicationGroupId"), account)
        if len(gdoc["members"]) > 1:
            raise fault(
                "InvalidGlobalReplicationGroupStateFault",
                f"Global datastore {gdoc['id']} still has secondary members: disassociate them first.",
            )
        if not req.get("RetainPrimaryReplicationGroup"):
            raise combination(
                "RetainPrimaryReplicationGroup must be true: Strata deletes a global datastore only "
                "keeping its primary replication group."
            )
        rendered = self._render_global(gdoc, True, "deleting")
        primary = self._global_primary(gdoc)
        with self._in_region(account, primary["region"]):
            group = self.store.get_doc("group", primary["group"])
            if group is not None:
                group.pop("global", None)
                self.store.put_doc("group", group["id"], group)
        with self.store.acting_for(gdoc):
            self.store.delete_doc("global_group", gdoc["id"])
        return {"GlobalReplicationGroup": rendered}
