"""Cache parameter groups: Create/Describe/Modify/Reset/DeleteCacheParameterGroup,
DescribeCacheParameters and DescribeEngineDefaultParameters, applied to the real engines.

A deployment (standalone cache cluster or replication group) names its custom group in
`param_group` (None: its family's default group, `default.redis7`, `default.valkey8.cluster.on`,
...). Its engines run with the group's values over the family defaults (cache_parameters.py):
redis/valkey settings are written to redis.conf and, when a group or a deployment's group
changes, sent at once with CONFIG SET (every redis parameter Strata serves is "immediate");
memcached settings are command-line options, so a change waits for RebootCacheCluster and the
cluster shows `pending-reboot` with the nodes to reboot until then, as on ElastiCache.
"""

from __future__ import annotations

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.elasticache import cache_parameters as cp
from strata.services.elasticache import events
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import ElastiCacheCore, paginate
from strata.services.elasticache.errors import combination, fault, invalid
from strata.services.elasticache.render import arn

MAX_GROUPS = 150  # custom cache parameter groups per account and region (ElastiCache quota)
SOURCES = ("user", "system", "engine-default")


def _default_groups() -> list[dict]:
    out = []
    for family in cp.CATALOGUES:
        out.append({"id": f"default.{family}", "name": f"default.{family}", "family": family})
        if not family.startswith("memcached"):
            out.append(
                {
                    "id": f"default.{family}.cluster.on",
                    "name": f"default.{family}.cluster.on",
                    "family": family,
                }
            )
    return out


class CacheParameterGroupOperations(ElastiCacheCore):
    def _group_out(self, ctx: RequestContext, g: dict) -> dict:
        description = g.get("description") or f"Default parameter group for {g['family']}"
        return {
            "CacheParameterGroupName": g["name"],
            "CacheParameterGroupFamily": g["family"],
            "Description": description,
            "IsGlobal": False,
            "ARN": arn(ctx.region, ctx.account_id, "parametergroup", g["name"]),
        }

    def _deployments_using(self, name: str) -> list[dict]:
        standalone = [c for c in self.store.list_docs("cluster") if not c.get("group")]
        return [d for d in standalone + self.store.list_docs("group") if d.get("param_group") == name]

    def _custom_group(self, name: str | None, action: str) -> dict:
        if not name:
            raise invalid("The parameter CacheParameterGroupName must be provided and must not be blank.")
        group = self._param_group_doc(name)
        if group.get("default"):
            raise invalid(f"Cannot {action} default cache parameter group {group['name']}.")
        return group

    # -- CreateCacheParameterGroup ---------------------------------------------------------------------

    def create_cache_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        name = v.identifier(req.get("CacheParameterGroupName"), "CacheParameterGroupName", 255)
        family = req.get("CacheParameterGroupFamily") or ""
        if not req.get("Description"):
            raise invalid("The parameter Description must be provided and must not be blank.")
        if family not in cp.CATALOGUES:
            raise invalid(
                f"The parameter CacheParameterGroupFamily is not valid: {family}. Strata runs "
                f"{', '.join(cp.CATALOGUES)}."
            )
        if name.startswith("default."):
            raise invalid("Cache parameter group names must not begin with 'default.'.")
        if self.store.get_doc("param_group", name) is not None:
            raise fault("CacheParameterGroupAlreadyExistsFault", f"Parameter group {name} already exists.")
        if len(self.store.list_docs("param_group")) >= MAX_GROUPS:
            raise fault(
                "CacheParameterGroupQuotaExceededFault",
                f"Cannot create more than {MAX_GROUPS} cache parameter groups.",
            )
        group = {
            "id": name,
            "name": name,
            "family": family,
            "description": req["Description"],
            "params": {},
            "tags": v.tags(req.get("Tags")),
        }
        self.store.put_doc("param_group", name, group)
        events.record(self.store, name, "cache-parameter-group", f"Cache parameter group {name} created")
        return {"CacheParameterGroup": self._group_out(ctx, group)}

    # -- DescribeCacheParameterGroups ------------------------------------------------------------------

    def describe_cache_parameter_groups(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("CacheParameterGroupName"):
            groups = [self._param_group_doc(req["CacheParameterGroupName"])]
        else:
            groups = sorted(_default_groups() + self.store.list_docs("param_group"), key=lambda g: g["id"])
        page, marker = paginate(groups, req)
        out: dict = {"CacheParameterGroups": [self._group_out(ctx, g) for g in page]}
        if marker:
            out["Marker"] = marker
        return out

    # -- ModifyCacheParameterGroup / ResetCacheParameterGroup ------------------------------------------

    async def modify_cache_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        group = self._custom_group(req.get("CacheParameterGroupName"), "modify")
        entries = req.get("ParameterNameValues") or []
        if not entries:
            raise invalid("The parameter ParameterNameValues must be provided and must not be empty.")
        await self._change_group(group, cp.changes(group["family"], entries, reset=False))
        return {"CacheParameterGroupName": group["name"]}

    async def reset_cache_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        group = self._custom_group(req.get("CacheParameterGroupName"), "reset")
        entries = req.get("ParameterNameValues") or []
        if req.get("ResetAllParameters"):
            if entries:
                raise combination("ResetAllParameters cannot be used together with ParameterNameValues.")
            changes: dict[str, str | None] = dict.fromkeys(group["params"])
        elif entries:
            changes = cp.changes(group["family"], entries, reset=True)
        else:
            raise combination("Either ResetAllParameters or ParameterNameValues must be given.")
        await self._change_group(group, changes)
        return {"CacheParameterGroupName": group["name"]}

    async def _change_group(self, group: dict, changes: dict[str, str | None]) -> None:
        """Store the new values, then bring every deployment using the group up to them."""
        known = cp.catalogue(group["family"])
        users = self._deployments_using(group["id"])
        for name in changes:
            if known[name].apply == "creation" and users:
                raise fault(
                    "InvalidCacheParameterGroupStateFault",
                    f"Parameter {name} cannot be modified while cache parameter group {group['name']} "
                    "is used by a cluster.",
                )
        before = dict(group["params"])
        for name, value in changes.items():
            if value is None:
                group["params"].pop(name, None)
            else:
                group["params"][name] = value
        self.store.put_doc("param_group", group["id"], group)
        try:
            for dep in users:
                async with self._resource_lock(dep["id"]):
                    await run_blocking(self._apply_parameters, dep)
        except Exception:
            group["params"] = before
            self.store.put_doc("param_group", group["id"], group)
            for dep in users:
                await run_blocking(self._apply_parameters, dep)
            raise
        events.record(
            self.store,
            group["id"],
            "cache-parameter-group",
            f"Updated parameters {', '.join(sorted(changes))} of cache parameter group {group['name']}",
        )
        for dep in users:
            kind = "replication-group" if "node_groups" in dep else "cache-cluster"
            events.record(
                self.store, dep["id"], kind, f"Applied changes of cache parameter group {group['name']}"
            )

    # -- DeleteCacheParameterGroup ---------------------------------------------------------------------

    def delete_cache_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        group = self._custom_group(req.get("CacheParameterGroupName"), "delete")
        users = self._deployments_using(group["id"])
        if users:
            raise fault(
                "InvalidCacheParameterGroupStateFault",
                f"Cache parameter group {group['name']} is in use by {', '.join(d['id'] for d in users)}.",
            )
        self.store.delete_doc("param_group", group["id"])
        events.record(
            self.store, group["id"], "cache-parameter-group", f"Cache parameter group {group['name']} deleted"
        )
        return {}

    # -- DescribeCacheParameters / DescribeEngineDefaultParameters -------------------------------------

    def describe_cache_parameters(self, ctx: RequestContext, req: dict) -> dict:
        group = self._param_group_doc(req.get("CacheParameterGroupName"))
        source = req.get("Source")
        if source is not None and source not in SOURCES:
            raise invalid(f"Invalid value for parameter Source: {source}. Valid values: {', '.join(SOURCES)}")
        params = self._parameters_out(group["family"], group["params"], user=not group.get("default"))
        if source:
            params = [p for p in params if p["Source"] == source]
        return self._parameters_page(group["family"], params, req)

    def describe_engine_default_parameters(self, ctx: RequestContext, req: dict) -> dict:
        family = req.get("CacheParameterGroupFamily") or ""
        if family not in cp.CATALOGUES:
            raise invalid(f"The parameter CacheParameterGroupFamily is not valid: {family}.")
        params = [{**p, "Source": "engine-default"} for p in self._parameters_out(family, {})]
        page = self._parameters_page(family, params, req)
        return {"EngineDefaults": {"CacheParameterGroupFamily": family, **page}}

    def _parameters_out(self, family: str, values: dict[str, str], user: bool = True) -> list[dict]:
        """Every parameter of the family; `values` over the defaults (Source user when `user`)."""
        out = []
        for name, p in sorted(cp.catalogue(family).items()):
            entry = {
                "ParameterName": name,
                "ParameterValue": values.get(name, p.default),
                "Description": p.description,
                "Source": "user" if user and name in values else "system",
                "DataType": p.data_type,
                "IsModifiable": p.modifiable,
                "MinimumEngineVersion": p.minimum_version,
                "ChangeType": p.change,
            }
            if p.allowed:
                entry["AllowedValues"] = p.allowed
            out.append(entry)
        return out

    def _parameters_page(self, family: str, params: list[dict], req: dict) -> dict:
        keyed = [{**p, "id": p["ParameterName"]} for p in params]
        page, marker = paginate(keyed, req)
        out: dict = {"Parameters": [{k: val for k, val in p.items() if k != "id"} for p in page]}
        if not req.get("Marker"):  # the node-type values come once, with the first page
            out["CacheNodeTypeSpecificParameters"] = [_node_memory_parameter(family)]
        if marker:
            out["Marker"] = marker
        return out


def _node_memory_parameter(family: str) -> dict:
    """maxmemory (redis/valkey, bytes) or max_cache_memory (memcached, MiB) of each node type."""
    memcached = family.startswith("memcached")
    scale = 1 if memcached else 1024 * 1024
    return {
        "ParameterName": "max_cache_memory" if memcached else "maxmemory",
        "Description": "The maximum memory of a node of this type.",
        "Source": "system",
        "DataType": "integer",
        "IsModifiable": False,
        "MinimumEngineVersion": "1.4.5" if memcached else "2.6.13",
        "CacheNodeTypeSpecificValues": [
            {"CacheNodeType": node_type, "Value": str(mb * scale)}
            for node_type, mb in sorted(v.NODE_MEMORY_MB.items())
        ],
        "ChangeType": cp.REBOOT,
    }
