"""Cache subnet groups (Create/Describe/Modify/DeleteCacheSubnetGroup) over EC2's subnets, and
what a cache cluster or replication group takes from its CacheSubnetGroupName: its VPC (its
security groups must be of that VPC, its default group is that VPC's) and its nodes' zones (the
group's zones in turn, a requested zone must be one of them).

As on AWS, the "default" group always exists: the default VPC's default subnets. A group names
subnets of one VPC (InvalidSubnet otherwise), twenty at most; a group in use by a cluster cannot
be deleted (CacheSubnetGroupInUse) nor moved to another VPC.
"""

from __future__ import annotations

import re
from typing import Any

from strata.context import RequestContext
from strata.services.elasticache import events
from strata.services.elasticache.core import ElastiCacheCore, paginate
from strata.services.elasticache.errors import fault, invalid
from strata.services.elasticache.render import arn
from strata.services.elasticache.subnets import DEFAULT, find, network, not_found, subnets_in

SUBNETS_PER_GROUP = 20  # AWS's quota
GROUPS_PER_ACCOUNT = 50
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,254}$")


class CacheSubnetGroupOperations(ElastiCacheCore):
    def _check_subnets(self, ctx: RequestContext, ids: list[str] | None) -> list[str]:
        ids = list(dict.fromkeys(ids or []))
        if not ids:
            raise invalid("The parameter SubnetIds must be provided.")
        if len(ids) > SUBNETS_PER_GROUP:
            raise fault(
                "CacheSubnetQuotaExceededFault",
                f"A cache subnet group can have at most {SUBNETS_PER_GROUP} subnets.",
            )
        net = network(self)
        if net is None:
            raise invalid("SubnetIds need Strata's EC2 service")
        subnets = [net.subnet(ctx.account_id, ctx.region, i) for i in ids]
        unknown = [i for i, s in zip(ids, subnets, strict=True) if s is None]
        if unknown:
            raise fault("InvalidSubnet", f"Some input subnets in :[{', '.join(unknown)}] are invalid.")
        if len({s["vpc"] for s in subnets if s}) > 1:
            raise fault(
                "InvalidSubnet",
                "The requested subnet is invalid, or multiple subnets were requested that are not "
                "all in a common VPC.",
            )
        return ids

    def _users_of(self, name: str) -> list[dict]:
        return [
            d
            for kind in ("cluster", "group")
            for d in self.store.list_docs(kind)
            if (d.get("subnet_group") or DEFAULT) == name and (kind == "group" or not d.get("group"))
        ]

    def _subnet_group_out(self, ctx: RequestContext, g: dict) -> dict:
        subnets = subnets_in(self, ctx, g)
        net = network(self)
        vpc = subnets[0]["vpc"] if subnets else (net.vpcs(ctx.account_id, ctx.region)[0]["id"] if net else "")
        return {
            "CacheSubnetGroupName": g["id"],
            "CacheSubnetGroupDescription": g["description"],
            "VpcId": vpc,
            "Subnets": [
                {
                    "SubnetIdentifier": s["id"],
                    "SubnetAvailabilityZone": {"Name": s["az"]},
                    "SupportedNetworkTypes": ["ipv4"],
                }
                for s in subnets
            ],
            "ARN": arn(ctx.region, ctx.account_id, "subnetgroup", g["id"]),
            "SupportedNetworkTypes": ["ipv4"],
        }

    def create_cache_subnet_group(self, ctx: RequestContext, req: dict) -> dict:
        name = (req.get("CacheSubnetGroupName") or "").lower()
        if not _NAME.match(name) or name.endswith("-") or "--" in name:
            raise invalid(
                "CacheSubnetGroupName must be 1 to 255 letters, digits or hyphens, begin with a letter "
                "or digit, and not end with a hyphen or contain two consecutive hyphens."
            )
        if not req.get("CacheSubnetGroupDescription"):
            raise invalid("The parameter CacheSubnetGroupDescription must be provided and must not be blank.")
        if name == DEFAULT or self.store.get_doc("subnet_group", name) is not None:
            raise fault("CacheSubnetGroupAlreadyExistsFault", f"Cache subnet group {name} already exists.")
        if len(self.store.list_docs("subnet_group")) >= GROUPS_PER_ACCOUNT:
            raise fault(
                "CacheSubnetGroupQuotaExceededFault",
                f"An account can have at most {GROUPS_PER_ACCOUNT} cache subnet groups.",
            )
        doc: dict[str, Any] = {
            "id": name,
            "description": req["CacheSubnetGroupDescription"],
            "subnets": self._check_subnets(ctx, req.get("SubnetIds")),
            "tags": {t["Key"]: t.get("Value", "") for t in req.get("Tags") or []},
        }
        self.store.put_doc("subnet_group", name, doc)
        events.record(self.store, name, "cache-subnet-group", f"Cache subnet group {name} created")
        return {"CacheSubnetGroup": self._subnet_group_out(ctx, doc)}

    def describe_cache_subnet_groups(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("CacheSubnetGroupName"):
            docs = [find(self, ctx, req["CacheSubnetGroupName"])]
        else:
            docs = sorted(self.store.list_docs("subnet_group"), key=lambda d: d["id"])
        shown, marker = paginate(docs, req)
        out: dict[str, Any] = {"CacheSubnetGroups": [self._subnet_group_out(ctx, g) for g in shown]}
        if marker:
            out["Marker"] = marker
        return out

    def modify_cache_subnet_group(self, ctx: RequestContext, req: dict) -> dict:
        name = (req.get("CacheSubnetGroupName") or "").lower()
        doc = self.store.get_doc("subnet_group", name)
        if doc is None:
            raise (
                not_found(name)
                if name != DEFAULT
                else invalid("The default cache subnet group cannot be modified.")
            )
        if req.get("SubnetIds"):
            ids = self._check_subnets(ctx, req["SubnetIds"])
            before = subnets_in(self, ctx, doc)
            after = subnets_in(self, ctx, {"subnets": ids})
            if self._users_of(name) and before and after and before[0]["vpc"] != after[0]["vpc"]:
                raise fault(
                    "SubnetInUse",
                    f"Cache subnet group {name} is in use: its subnets cannot move to another VPC.",
                )
            doc["subnets"] = ids
        if req.get("CacheSubnetGroupDescription"):
            doc["description"] = req["CacheSubnetGroupDescription"]
        self.store.put_doc("subnet_group", name, doc)
        events.record(self.store, name, "cache-subnet-group", f"Cache subnet group {name} modified")
        return {"CacheSubnetGroup": self._subnet_group_out(ctx, doc)}

    def delete_cache_subnet_group(self, ctx: RequestContext, req: dict) -> dict:
        name = (req.get("CacheSubnetGroupName") or "").lower()
        if name == DEFAULT:
            raise invalid("Cannot delete default cache subnet group.")
        if self.store.get_doc("subnet_group", name) is None:
            raise not_found(name)
        if self._users_of(name):
            raise fault(
                "CacheSubnetGroupInUse", f"Cache subnet group {name} is currently in use by a cache cluster."
            )
        self.store.delete_doc("subnet_group", name)
        events.record(self.store, name, "cache-subnet-group", f"Cache subnet group {name} deleted")
        return {}
